package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
	// ExitAttention means the command ran and found something that needs a
	// person's attention: `chatdb doctor` failed a check (unreachable database,
	// pending migrations, ...), `migrate status` found pending migrations,
	// `migrate lint` an error-level finding. The command says what is wrong and
	// what to do.
	ExitAttention = 3
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
	if h := hint(err); h != "" {
		fmt.Fprintf(stderr, "hint: %s\n", h)
	}
	var a *attentionError
	if errors.As(err, &a) {
		return ExitAttention
	}
	return ExitError
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "chatdb",
		Short: "chatdb runs the chat database: demo, seed data, health checks and migrations",
		Long: `chatdb runs chatdb's chat database: a demo that shows it working, seed data at
scale, a health check, and versioned migrations.

The database is --url, else $DATABASE_URL, else the SQLite file chatdb.db in the
working directory. URLs are postgres://user:pass@host:5432/db?sslmode=disable,
sqlite://path or a bare file path. Passwords are never printed.

Environment (the same as database.ConfigFromEnv):
  DATABASE_URL                database URL
  CHATDB_PG_DRIVER            pgx (default) or pq
  CHATDB_POOLER               transaction behind PgBouncer in transaction mode
                              (default none)
  CHATDB_MIGRATION_URL        direct connection that migrations run on
  CHATDB_MAX_OPEN_CONNS       connections open at once (default 30)
  CHATDB_MAX_IDLE_CONNS       connections kept idle (default 20)
  CHATDB_CONN_MAX_LIFETIME    recycle a connection after (default 30m)
  CHATDB_CONN_MAX_IDLE_TIME   close a connection idle for (default 5m)
  CHATDB_HEALTH_CHECK_AFTER   ping a connection idle for longer than (default 1s)
  CHATDB_CONNECT_TIMEOUT      bound on dialling one connection (default 5s)
  CHATDB_OPEN_RETRY_WINDOW    how long to retry an unreachable server (default 10s)
  CHATDB_SQLITE_BUSY_TIMEOUT  how long an SQLite writer waits for the lock (default 5s)
  CHATDB_LOG_QUERIES          1 to log SQL statements, never their arguments
  CHATDB_LOG_LEVEL            debug, info, warn (default) or error
  CHATDB_REQUIRE_TLS          1 to refuse a PostgreSQL URL whose sslmode is missing
                              or may not encrypt: only require, verify-ca and
                              verify-full pass (set it in production)
  CHATDB_REPLICA_URLS         PostgreSQL standbys that serve reads, comma-separated
  CHATDB_MAX_REPLICA_LAG      skip a replica further behind than (default 5s)
  CHATDB_REPLICA_CHECK_INTERVAL  check each replica's health and lag every (default 1s)

Exit codes:
  0  success
  1  the command failed; the reason is on stderr
  2  wrong command line (unknown command or flag, bad argument)
  3  the command ran and found something that needs attention: a failed doctor
     check, pending migrations (migrate status), an error-level lint finding`,
		Example: `  chatdb demo
  chatdb doctor --url postgres://postgres@127.0.0.1:5432/chat?sslmode=disable
  chatdb seed --users 1000 --chats 2000 --messages 1000000 --seed 42
  chatdb migrate apply`,
		// Errors are printed once, by Main, without the usage text drowning them.
		SilenceErrors: true,
		SilenceUsage:  true,
		// cobra's own default, which it applies only where subcommand does
		// not let it look: "dcotor" is 2 edits from "doctor".
		SuggestionsMinimumDistance: 2,
		Args:                       subcommand,
		RunE:                       func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Cobra reports flag errors before RunE; mark them so that Main can tell a
	// wrong command line from a failure.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c.CommandPath(), err: err}
	})
	s := addRootFlags(root)
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return s.prepare(c, stderr) }
	root.AddCommand(newDemo(), newSeed(), newDoctor(), newMigrate())
	root.SetHelpCommand(newHelp())
	return root
}

// newHelp is cobra's help command, except that a topic that is not a command
// is a wrong command line (exit status 2), with suggestions, as a mistyped
// command is.
func newHelp() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Help shows the help of any command: chatdb help migrate apply.",
		RunE: func(c *cobra.Command, args []string) error {
			root := c.Root()
			cmd, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				topic := strings.Join(args, " ")
				return &usageError{cmd: root.CommandPath(), err: withSuggestions(cmd, rest, fmt.Errorf("unknown help topic %q", topic))}
			}
			return cmd.Help()
		},
	}
}

// withSuggestions adds to err the commands under c whose names are close to
// what was typed, args[0], as cobra does for an unknown command.
func withSuggestions(c *cobra.Command, args []string, err error) error {
	if c == nil || len(args) == 0 {
		return err
	}
	s := c.SuggestionsFor(args[0])
	if len(s) == 0 {
		return err
	}
	return fmt.Errorf("%w\n\nDid you mean this?\n\t%s", err, strings.Join(s, "\n\t"))
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
		return &usageError{cmd: c.CommandPath(), err: withSuggestions(c, args, fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath()))}
	}
	return nil
}

// isPostgresURL reports whether u is a postgres:// URL (database.IsPostgresURL).
func isPostgresURL(u string) bool { return database.IsPostgresURL(u) }

// devURL picks the server for temporary dev databases: the flag, else the
// server DATABASE_URL names when it is PostgreSQL, else DefaultDevURL. Only a
// new database is created on the server, so DATABASE_URL is used for its
// server alone: through the maintenance database postgres, as createdb
// connects, since the database it names may not exist yet (and is not
// touched).
func devURL(flag string) string {
	if flag != "" {
		return flag
	}
	raw := os.Getenv("DATABASE_URL")
	if info, err := database.ParseURL(raw); raw == "" || err != nil || info.Dialect != database.Postgres {
		return DefaultDevURL
	}
	return serverDevURL(raw, "")
}

// openDB opens the database named by url, or by the environment
// (database.ConfigFromEnv) when url is empty, with the root flags' logger,
// query logging and driver.
func openDB(ctx context.Context, url string) (*database.DB, error) {
	cfg, err := config(ctx, url)
	if err != nil {
		return nil, err
	}
	return database.Open(ctx, cfg)
}

// noFileError is an SQLite database that does not exist, found by a command
// that only reads and so must not create it.
type noFileError struct {
	url, abs string
}

func (e *noFileError) Error() string {
	return fmt.Sprintf("%s: no such file (%s)", e.url, e.abs)
}

// sqliteMissing returns a *noFileError when url names an SQLite file that
// does not exist, and nil otherwise (PostgreSQL, ":memory:", a file that
// exists, a malformed URL that Open will refuse). Commands that only read
// call it before opening: opening an SQLite file creates it.
func sqliteMissing(url string) error {
	path, ok := database.SQLitePath(url)
	if !ok || path == ":memory:" {
		return nil
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return &noFileError{url: database.Redact(url), abs: abs}
}

// attentionError is a command that ran and found a problem; Main exits with
// ExitAttention.
type attentionError struct {
	msg string
}

func (e *attentionError) Error() string { return e.msg }
