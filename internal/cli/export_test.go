package cli

import "github.com/spf13/cobra"

// NewRoot exposes the root command to the tests, which walk its commands.
func NewRoot() *cobra.Command { return newRoot(nil, nil) }
