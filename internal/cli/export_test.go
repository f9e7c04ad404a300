package cli

import "github.com/spf13/cobra"

// NewRoot exposes the root command to the tests, which walk its commands.
func NewRoot() *cobra.Command { return newRoot(nil, nil) }

// SetDemoRace makes fn run in every demo between finding no chat and
// creating one, until the test ends.
func SetDemoRace(t interface{ Cleanup(func()) }, fn func()) {
	demoRace = fn
	t.Cleanup(func() { demoRace = nil })
}
