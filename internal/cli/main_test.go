package cli_test

import (
	"context"
	"os"
	"os/signal"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
)

// testMain runs the tests, then stops the throwaway PostgreSQL cluster dbtest
// starts when no other server can be found.
type testMain struct{ m *testing.M }

func (t testMain) Run() int { return dbtest.Main(t.m) }

// TestMain also makes the test binary the "chatdb" command of the testscript
// scripts in testdata: a script's `exec chatdb ...` runs cli.Main, as
// cmd/chatdb does, in the script's directory and environment.
func TestMain(m *testing.M) {
	testscript.Main(testMain{m}, map[string]func(){
		"chatdb": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}
