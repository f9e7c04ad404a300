// Command chatdb manages a chatdb database. Run `chatdb --help` for the commands;
// they are implemented in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/chatdb/chatdb/internal/cli"
)

func main() {
	// Cancel on Ctrl-C or SIGTERM rather than dying at once, so that commands can
	// drop the temporary databases they created.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
