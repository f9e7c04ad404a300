package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chatdb/chatdb/database"
)

// Exit codes of Main.
const (
	// ExitOK means the command did what was asked.
	ExitOK = 0
	// ExitError means the command failed; the reason is on stderr.
	ExitError = 1
	// ExitUsage means the command line was wrong: an unknown command or flag, or a
	// missing argument.
	ExitUsage = 2
)

// DefaultDevURL is the PostgreSQL server `migrate diff` creates its temporary dev
// database on when neither --dev-url nor a postgres:// DATABASE_URL says
// otherwise: the local server, as a developer machine or CI runner has it.
const DefaultDevURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Main runs the chatdb command with args (without the program name), writing
// results to stdout and diagnostics to stderr, and returns the exit code. ctx
// cancels the command: commands that create temporary databases drop them before
// returning.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "chatdb: %v\n", err)
	var u *usageError
	if errors.As(err, &u) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", u.cmd)
		return ExitUsage
	}
	return ExitError
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "chatdb",
		Short: "chatdb manages the chat database: migrations, and more to come",
		// Errors are printed once, by Main, without the usage text drowning them.
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          subcommand,
		RunE:          func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Cobra reports flag errors before RunE; mark them so that Main can tell a
	// wrong command line from a failure.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c.CommandPath(), err: err}
	})
	root.AddCommand(newMigrate())
	return root
}

// usageError is a wrong command line.
type usageError struct {
	cmd string
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// exactArgs is cobra.ExactArgs with the error marked as a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("%s takes %s, got %d argument(s)", c.CommandPath(), what, len(args))}
		}
		return nil
	}
}

// subcommand is the Args of a command that only groups subcommands: cobra hands
// it what matched none of them.
func subcommand(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())}
	}
	return nil
}

// isPostgresURL reports whether u names a PostgreSQL server.
func isPostgresURL(u string) bool {
	l := strings.ToLower(u)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// devURL picks the server for temporary dev databases: the flag, else
// DATABASE_URL when it is PostgreSQL (only a new database is created there; the
// one it names is not touched), else DefaultDevURL.
func devURL(flag string) string {
	if flag != "" {
		return flag
	}
	if u := os.Getenv("DATABASE_URL"); isPostgresURL(u) {
		return u
	}
	return DefaultDevURL
}

// openDB opens the database named by url, or by the environment
// (database.ConfigFromEnv) when url is empty.
func openDB(ctx context.Context, url string) (*database.DB, error) {
	cfg, err := database.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	if url != "" {
		cfg.URL = url
	}
	return database.Open(ctx, cfg)
}
