package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatdb/chatdb/database"
)

func newDoctor() *cobra.Command {
	var url string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check the database: connection, server, pool, migrations",
		Long: `Doctor checks the database chatdb would use and prints one line per check,
OK, FAIL or SKIP, with what to do after each failure:

  database    the URL (password redacted), dialect and driver
  connect     the server can be reached and logged in to
  server      the server's product and version
  pool        the pool settings in effect (max open and idle, lifetimes) and,
              on PostgreSQL, whether a pooler in transaction mode (PgBouncer)
              is in between, and whether CHATDB_POOLER says so
  migrations  every migration built into chatdb is applied, none pending, and
              on PostgreSQL no index is invalid (left by a failed CREATE INDEX
              CONCURRENTLY; the line says how to repair it)
  drift       the schema is what the applied migrations produce, replayed on
              a temporary database made and dropped on the same server (in
              memory for SQLite); skipped when none can be made (chatdb
              migrate drift shows the differences)
  pool stats  the pool's statistics after the checks
  replica     each read replica of CHATDB_REPLICA_URLS: state, lag, replay position

It changes nothing: it applies no migration and does not create a missing
SQLite file. An unreachable server is tried once, unless --wait (or
CHATDB_OPEN_RETRY_WINDOW) gives it time to come up.

Exit status: 0 when every check passed, 3 when one failed, 1 when doctor itself
could not run, 2 for a wrong command line.`,
		Example: `  chatdb doctor
  chatdb doctor --url postgres://app:secret@db.internal:5432/chat?sslmode=require
  DATABASE_URL=./chat.db chatdb doctor
  chatdb doctor --wait 30s && ./start-server   # wait for the database, then start`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := config(c.Context(), url)
			if err != nil {
				// A malformed CHATDB_* variable is a finding, not a failure to run.
				return doctorConfigError(c.OutOrStdout(), err)
			}
			switch {
			case c.Flags().Changed("wait"):
				cfg.OpenRetryWindow = wait
			case os.Getenv("CHATDB_OPEN_RETRY_WINDOW") == "":
				cfg.OpenRetryWindow = -1 // one attempt: a health check should answer now
			}
			if cfg.OpenRetryWindow == 0 {
				cfg.OpenRetryWindow = -1
			}
			return doctor(c.Context(), c.OutOrStdout(), cfg)
		},
	}
	urlFlag(c.Flags(), &url)
	c.Flags().DurationVar(&wait, "wait", 0, "keep retrying an unreachable server for this long (default: one attempt)")
	return c
}

// checkNames lists doctor's checks in the order they run.
var checkNames = []string{"database", "connect", "server", "pool", "migrations", "drift", "pool stats"}

// report prints doctor's lines and counts the results.
type report struct {
	w                   io.Writer
	ok, failed, skipped int
	failedNames         []string
	warned              int
	// logged holds the warnings logged while the checks ran, which warnings
	// prints as rows of the table rather than as log lines among them.
	logged *loggedWarnings
}

// warnings prints the warnings logged since the last call, each once (with
// how many times it was logged), as WARN rows under the check's name.
func (r *report) warnings(name string) {
	if r.logged == nil {
		return
	}
	for _, w := range r.logged.take() {
		r.warned++
		if w.n > 1 {
			w.msg += fmt.Sprintf(" (%d times)", w.n)
		}
		fmt.Fprintf(r.w, "WARN  %-11s %s\n", name, w.msg)
	}
}

// summary is the table's last line.
func (r *report) summary() string {
	s := fmt.Sprintf("%d ok, %d failed, %d skipped", r.ok, r.failed, r.skipped)
	if r.warned > 0 {
		s += fmt.Sprintf(", %d warning(s)", r.warned)
	}
	return s
}

// loggedWarnings is a slog.Handler that keeps the records of warning level
// and above, for doctor's table, and passes the others to next.
type loggedWarnings struct {
	next slog.Handler
	all  *warningList
}

type warningList struct {
	mu   sync.Mutex
	msgs []warning
}

type warning struct {
	msg string
	n   int
}

func (h *loggedWarnings) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *loggedWarnings) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level < slog.LevelWarn {
		return h.next.Handle(ctx, rec)
	}
	h.all.mu.Lock()
	defer h.all.mu.Unlock()
	for i := range h.all.msgs {
		if h.all.msgs[i].msg == rec.Message {
			h.all.msgs[i].n++
			return nil
		}
	}
	h.all.msgs = append(h.all.msgs, warning{msg: rec.Message, n: 1})
	return nil
}

func (h *loggedWarnings) WithAttrs(as []slog.Attr) slog.Handler {
	return &loggedWarnings{next: h.next.WithAttrs(as), all: h.all}
}

func (h *loggedWarnings) WithGroup(name string) slog.Handler {
	return &loggedWarnings{next: h.next.WithGroup(name), all: h.all}
}

// take returns the warnings kept so far and forgets them.
func (h *loggedWarnings) take() []warning {
	h.all.mu.Lock()
	defer h.all.mu.Unlock()
	msgs := h.all.msgs
	h.all.msgs = nil
	return msgs
}

func (r *report) pass(name, format string, args ...any) {
	r.ok++
	fmt.Fprintf(r.w, "OK    %-11s %s\n", name, fmt.Sprintf(format, args...))
}

// fail prints a failed check and, when there is one, what to do about it.
func (r *report) fail(name, detail, todo string) {
	r.failed++
	r.failedNames = append(r.failedNames, name)
	fmt.Fprintf(r.w, "FAIL  %-11s %s\n", name, detail)
	if todo != "" {
		fmt.Fprintf(r.w, "      %-11s -> %s\n", "", todo)
	}
}

// skipRest marks every check after the named one as not run.
func (r *report) skipRest(after, why string) {
	for i, n := range checkNames {
		if n == after {
			for _, rest := range checkNames[i+1:] {
				r.skipped++
				fmt.Fprintf(r.w, "SKIP  %-11s %s\n", rest, why)
			}
			return
		}
	}
}

// doctorConfigError reports a configuration that could not be read.
func doctorConfigError(w io.Writer, err error) error {
	r := &report{w: w}
	r.fail("database", err.Error(), "fix the variable, or unset it for its default (`chatdb --help` lists them)")
	r.skipRest("database", "no database to check")
	fmt.Fprintln(w, r.summary())
	return &attentionError{msg: "doctor: 1 check(s) failed: database"}
}

func doctor(ctx context.Context, w io.Writer, cfg database.Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &report{w: w, logged: &loggedWarnings{next: cfg.Logger.Handler(), all: &warningList{}}}
	cfg.Logger = slog.New(r.logged)
	defer func() {
		r.warnings("pool stats")
		fmt.Fprintln(w, r.summary())
	}()
	result := func() error {
		if r.failed == 0 {
			return nil
		}
		return &attentionError{msg: fmt.Sprintf("doctor: %d check(s) failed: %s", r.failed, strings.Join(r.failedNames, ", "))}
	}

	// database: what would be opened, without opening it yet.
	eff := cfg.WithDefaults()
	shown := database.Redact(cfg.URL)
	dialect, driver := database.Postgres, eff.Driver
	_, isSQLite := database.SQLitePath(cfg.URL)
	if isSQLite {
		dialect, driver = database.SQLite, "sqlite"
	}
	if _, err := database.ParseURL(cfg.URL); err != nil {
		r.fail("database", shown+": not a URL chatdb can open", "set --url or DATABASE_URL to postgres://user:pass@host:5432/db?sslmode=disable, sqlite://path or a file path")
		r.skipRest("database", "no database to check")
		return result()
	}
	if err := sqliteMissing(cfg.URL); err != nil {
		r.fail("database", err.Error(), hint(err))
		r.skipRest("database", "no database to check")
		return result()
	}
	r.pass("database", "%s (dialect %s, driver %s)", shown, dialect, driver)

	// connect
	start := time.Now()
	db, err := database.Open(ctx, cfg)
	r.warnings("connect")
	if err != nil {
		todo := hint(err)
		var ce *database.ConnectError
		if errors.As(err, &ce) && !isSQLite {
			todo = connectHint(ce) // hint's own may end with "run doctor"
		}
		r.fail("connect", err.Error(), todo)
		r.skipRest("connect", "not connected")
		return result()
	}
	defer db.Close()
	r.pass("connect", "reached %s in %s", db.URL(), roundDuration(time.Since(start)))

	// server
	if v, err := db.ServerVersion(ctx); err != nil {
		r.fail("server", err.Error(), "")
	} else {
		r.pass("server", "%s", v)
	}

	// pool
	idle := fmt.Sprint(eff.MaxIdleConns)
	if eff.MaxIdleConns < 0 {
		idle = "0"
	}
	poolLine := fmt.Sprintf("max open %s, max idle %s, max lifetime %s, max idle time %s, health check after %s",
		limit(db.Stats().MaxOpenConnections), idle,
		forever(eff.ConnMaxLifetime), forever(eff.ConnMaxIdleTime), eff.HealthCheckAfter)
	if note, mismatch, todo := poolerFinding(ctx, db, cfg); mismatch != "" {
		r.fail("pool", poolLine+"; "+mismatch, todo)
	} else {
		r.pass("pool", "%s%s", poolLine, note)
	}

	// migrations, and the invalid indexes a failed concurrent build left
	st, err := database.Migrations(ctx, db)
	invalid, repair, _, ierr := invalidIndexes(ctx, db)
	switch {
	case err == nil && ierr != nil:
		r.fail("migrations", ierr.Error(), "")
	case err == nil && invalid != "" && len(st.Pending) == 0:
		r.fail("migrations", fmt.Sprintf("%d applied, 0 pending; %s", len(st.Applied), invalid), repair)
	case err != nil:
		r.fail("migrations", err.Error(), "compare the database's revisions table with this chatdb's migrations (`chatdb migrate apply --dry-run`)")
	case len(st.Pending) > 0:
		files := make([]string, len(st.Pending))
		for i, m := range st.Pending {
			files[i] = m.File()
		}
		r.fail("migrations", fmt.Sprintf("%d applied, %d pending: %s", len(st.Applied), len(st.Pending), strings.Join(files, ", ")),
			"apply them with `chatdb migrate apply` (add --dry-run to list them first)")
	default:
		latest := "none"
		if n := len(st.Applied); n > 0 {
			latest = st.Applied[n-1].File()
		}
		r.pass("migrations", "%d applied, 0 pending (latest %s)", len(st.Applied), latest)
	}
	driftCheck(ctx, r, db, cfg, err == nil)

	// pool stats
	s := db.Stats()
	r.pass("pool stats", "open %d (in use %d, idle %d), waited %d time(s) for %s, closed %d idle, %d idle-time, %d lifetime",
		s.OpenConnections, s.InUse, s.Idle, s.WaitCount, roundDuration(s.WaitDuration),
		s.MaxIdleClosed, s.MaxIdleTimeClosed, s.MaxLifetimeClosed)
	replicaChecks(r, db)
	return result()
}

// limit prints a connection limit, where 0 means none.
func limit(n int) string {
	if n <= 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

// forever prints a pool duration, where a negative one means none.
func forever(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return d.String()
}

// roundDuration rounds d for people: milliseconds below a minute.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}
