package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"ariga.io/atlas/sql/migrate"
	"github.com/spf13/cobra"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
)

// DefaultMigrationsDir is the migrations root that `migrate diff` writes to: it
// holds one directory per dialect, as the repository's migrations/ does.
const DefaultMigrationsDir = "migrations"

func newMigrate() *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Plan, check and apply versioned schema migrations",
		Long: `Migrate plans, checks and applies chatdb's versioned migrations: Atlas
migration directories, one per dialect (migrations/postgres, migrations/sqlite),
each with an atlas.sum that pins its files.

The workflow: change a schema in schema/, run go generate ./..., then
chatdb migrate diff NAME writes the migration; review the SQL, run
chatdb migrate lint, commit; deploy with chatdb migrate apply or
database.Migrate at start-up.

Exit status: 0 on success; 1 when the command failed (the reason is on stderr),
including a directory that does not match its atlas.sum; 2 for a wrong command
line; 3 when the command ran and found something that needs attention:
migrations pending (status), an error-level finding (lint), schema changes that
no migration has yet (diff --check), drift from the applied migrations (drift).`,
		Example: `  chatdb migrate diff add_reactions
  chatdb migrate lint --latest 1
  chatdb migrate status || chatdb migrate apply`,
		Args:                       subcommand,
		SuggestionsMinimumDistance: 2, // as the root's
		RunE:                       func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newMigrateDiff(), newMigrateApply(), newMigrateStatus(), newMigrateValidate(), newMigrateHash(), newMigrateLint(), newMigrateDrift(), newMigrateDown())
	return c
}

func newMigrateDiff() *cobra.Command {
	var dialect, dir, dev string
	var check bool
	c := &cobra.Command{
		Use:   "diff NAME",
		Short: "Write a migration that brings the migration directories up to the ent schema",
		Long: `Diff compares each dialect's migration directory with the ent schema and writes
the difference as a new file, <timestamp>_NAME.sql, updating atlas.sum. A directory
already in sync gets nothing.

The directory's current state comes from replaying it on a clean dev database: a
temporary database, dropped afterwards, on the PostgreSQL server named by
--dev-url (default: the server DATABASE_URL names when it is a postgres:// URL,
reached through its postgres database, so the database DATABASE_URL names need
not exist; else the local server), and a private in-memory database for SQLite.
No real database is read or changed.

With --check, diff writes nothing and needs no NAME: it prints the SQL a new
migration would hold and exits with status 3 when there is one, for CI to refuse
a schema change without its migration.`,
		Example: `  chatdb migrate diff add_reactions
  chatdb migrate diff add_reactions --dialect sqlite
  chatdb migrate diff --check`,
		Args: func(c *cobra.Command, args []string) error {
			if check {
				return rangeArgs(0, 1, "at most one NAME")(c, args)
			}
			return exactArgs(1, "one NAME")(c, args)
		},
		RunE: func(c *cobra.Command, args []string) error {
			md := parseDir(dir)
			dialects, err := md.dialects(dialect)
			if err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			if check {
				return diffCheck(c, dialects, md, dev)
			}
			out := c.OutOrStdout()
			for _, d := range dialects {
				sub, local, err := md.create(d)
				if err != nil {
					return fmt.Errorf("migrate diff: %w", err)
				}
				url := ""
				if d == database.Postgres {
					url = devURL(dev)
					fmt.Fprintf(c.ErrOrStderr(), "%s: planning on a temporary database on %s\n", sub, database.Redact(url))
				}
				file, err := migration.Diff(c.Context(), d, local, args[0], url)
				if err != nil {
					return fmt.Errorf("migrate diff: %s: %w", sub, err)
				}
				if file == "" {
					fmt.Fprintf(out, "%s: no changes: %s is in sync with the schema\n", sub, local.Path())
					continue
				}
				fmt.Fprintf(out, "%s: wrote %s\n", sub, filepath.Join(local.Path(), file))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dialect, "dialect", "all", "dialect to plan for: postgres, sqlite or all")
	f.StringVar(&dir, "dir", DefaultMigrationsDir, dirFlagUsage)
	f.StringVar(&dev, "dev-url", "", "PostgreSQL server to create the temporary dev database on")
	f.BoolVar(&check, "check", false, "write nothing; exit with status 3 when a migration is missing")
	return c
}

// diffCheck is diff --check.
func diffCheck(c *cobra.Command, dialects []string, md migrationsDir, dev string) error {
	out := c.OutOrStdout()
	var missing []string
	for _, d := range dialects {
		sub, local, err := md.open(d)
		if err != nil {
			return fmt.Errorf("migrate diff: %s: %w", sub, err)
		}
		url := ""
		if d == database.Postgres {
			url = devURL(dev)
			fmt.Fprintf(c.ErrOrStderr(), "%s: planning on a temporary database on %s\n", sub, database.Redact(url))
		}
		f, err := migration.Check(c.Context(), d, local, url)
		if err != nil {
			return fmt.Errorf("migrate diff: %s: %w", sub, err)
		}
		if f == nil {
			fmt.Fprintf(out, "%s: no changes: %s is in sync with the schema\n", sub, local.Path())
			continue
		}
		missing = append(missing, sub)
		fmt.Fprintf(out, "%s: the schema has changes that no migration in %s has; `chatdb migrate diff NAME` would write:\n\n%s\n", sub, local.Path(), indent(string(f.Bytes())))
	}
	if len(missing) > 0 {
		return &attentionError{msg: fmt.Sprintf("migrate diff: %s out of sync with the schema: run `go generate ./...`, then `chatdb migrate diff NAME`, and commit the result", strings.Join(missing, ", "))}
	}
	return nil
}

// indent indents every line of s by four spaces.
func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "    " + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// rangeArgs is cobra.RangeArgs with the error marked as a usage error.
func rangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("%s takes %s, got %d argument(s)", c.CommandPath(), what, len(args))}
		}
		return nil
	}
}

func diffDialects(flag string) ([]string, error) {
	switch flag {
	case "all":
		return migration.Dialects(), nil
	case "postgres", "postgresql":
		return []string{database.Postgres}, nil
	case "sqlite", "sqlite3":
		return []string{database.SQLite}, nil
	}
	return nil, fmt.Errorf("--dialect %q: want postgres, sqlite or all", flag)
}

// DefaultLockTimeout is how long `migrate apply` waits for the migration lock
// that another migrator holds, unless --lock-timeout says otherwise.
const DefaultLockTimeout = time.Minute

func newMigrateApply() *cobra.Command {
	var url, dir, dev string
	var dryRun, allowDrift bool
	var lockTimeout, stmtLockTimeout time.Duration
	var lockRetries int
	c := &cobra.Command{
		Use:   "apply",
		Short: "Apply pending migrations to a database",
		Long: `Apply applies the migration files the database has not applied yet, each in a
transaction of its own, under a lock that keeps concurrent runs apart, after
checking the files against atlas.sum. Progress is recorded in the Atlas CLI's
revisions table.

The database is --url, else the environment (CHATDB_MIGRATION_URL when set, else
DATABASE_URL, and CHATDB_*; an empty DATABASE_URL means the SQLite file
chatdb.db). Behind a PgBouncer in transaction mode (CHATDB_POOLER=transaction)
the lock does not hold, and apply refuses: give it a direct connection with
--url or CHATDB_MIGRATION_URL. The files are the ones built into
chatdb, unless --dir names a migrations root (./migrations) to take the
dialect's directory from, or the dialect's directory itself
(file://migrations/postgres, as atlas --dir takes it).

While another migrator holds the lock (another chatdb, or atlas migrate apply
on PostgreSQL; any writer of the file on SQLite), apply says so once and waits
for --lock-timeout (default 1m; 0 waits until the lock is free or Ctrl-C),
then fails with exit status 1, having applied nothing more.

On PostgreSQL each statement runs with a lock_timeout of
--statement-lock-timeout (default 5s; 0 for none; a file's
"-- chatdb:lock_timeout 10s" comment at its top overrides it), so that a
statement waiting for a table's lock behind a long transaction does not hold
up the table's readers and writers queued behind it. A statement that times
out is tried again after a backoff, up to --lock-retries more times (default
5), then apply fails with exit status 1 naming the file and the statement,
that file rolled back. SQLite ignores both flags.

Before applying, apply checks a database that has applied migrations for drift
(see chatdb migrate drift, whose --dev-url it takes) and refuses, with exit
status 1, when its schema differs from what they produce; --allow-drift skips
the check.`,
		Example: `  chatdb migrate apply --dry-run
  DATABASE_URL=postgres://app@db.internal/chat chatdb migrate apply`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			if stmtLockTimeout < 0 || lockRetries < 0 {
				return &usageError{cmd: c.CommandPath(), err: errors.New("--statement-lock-timeout and --lock-retries must not be negative")}
			}
			ctx := c.Context()
			cfg, opts, err := migrateTarget(ctx, "migrate apply", url, dir)
			if err != nil {
				return err
			}
			// A dry run creates nothing: what apply would do to a file that
			// does not exist is what it would do to an empty database, which
			// a private in-memory one is.
			newFile := ""
			if dryRun && sqliteMissing(cfg.URL) != nil {
				newFile, cfg.URL = database.Redact(cfg.URL), ":memory:"
			}
			db, err := database.Open(ctx, cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			if !allowDrift {
				if err := driftBeforeApply(ctx, c.ErrOrStderr(), db, cfg.URL, dir, dev); err != nil {
					return fmt.Errorf("migrate apply: %w", err)
				}
			}
			out := c.OutOrStdout()
			opts = append(opts, database.WithStatementLockTimeout(stmtLockTimeout), database.WithStatementLockRetries(lockRetries))
			opts = append(opts, database.WithLockTimeout(lockTimeout), database.WithLockWait(func() {
				fmt.Fprintf(c.ErrOrStderr(), "migrate apply: %s\n", lockWaitMessage(db, lockTimeout))
			}))
			n := 0
			var pending []database.Migration
			if dryRun {
				opts = append(opts, database.WithDryRun(), database.WithProgress(func(m database.Migration) {
					n++
					pending = append(pending, m)
				}))
			} else {
				// Each file as it is committed; the columns of status cannot be
				// known ahead.
				opts = append(opts, database.WithProgress(func(m database.Migration) {
					n++
					fmt.Fprintf(out, "applied  %s  %s  %s\n", m.File(), statements(m.Statements), roundDuration(m.Duration))
				}))
			}
			if err := database.Migrate(ctx, db, opts...); err != nil {
				return fmt.Errorf("migrate apply: %w", err)
			}
			if err := printMigrations(out, database.MigrationStatus{Pending: pending}); err != nil {
				return err
			}
			switch {
			case newFile != "":
				fmt.Fprintf(out, "dry run: %s does not exist; apply would create it and apply %d file(s)\n", newFile, n)
			case n == 0:
				fmt.Fprintf(out, "%s is up to date\n", db.URL())
			case dryRun:
				fmt.Fprintf(out, "dry run: %d file(s) would be applied to %s\n", n, db.URL())
			default:
				fmt.Fprintf(out, "applied %d file(s) to %s\n", n, db.URL())
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&url, "url", "", "database URL (default: from DATABASE_URL)")
	f.StringVar(&dir, "dir", "", "read the migrations from this directory instead of the built-in files: "+dirFlagUsage)
	f.BoolVar(&dryRun, "dry-run", false, "list the pending files without applying them")
	f.DurationVar(&lockTimeout, "lock-timeout", DefaultLockTimeout, "how long to wait for the migration lock another migrator holds (0: until it is free)")
	f.DurationVar(&stmtLockTimeout, "statement-lock-timeout", database.DefaultStatementLockTimeout, "PostgreSQL lock_timeout of each migration statement (0: none)")
	f.IntVar(&lockRetries, "lock-retries", database.DefaultStatementLockRetries, "how many more times to try a statement that timed out waiting for its lock")
	f.BoolVar(&allowDrift, "allow-drift", false, "apply even when the schema has drifted from the applied migrations")
	f.StringVar(&dev, "dev-url", "", "PostgreSQL server for the drift check's temporary database (default: the database's own server)")
	return c
}

// printMigrations lists migration files as status and apply --dry-run show
// them, in aligned columns: applied or pending, the file, its statements, and
// for an applied file when it was applied and how long it took.
func printMigrations(w io.Writer, st database.MigrationStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, m := range st.Applied {
		fmt.Fprintf(tw, "applied\t%s\t%s\t%s\t%s\n", m.File(), statements(m.Statements), m.AppliedAt.UTC().Format("2006-01-02 15:04:05 UTC"), roundDuration(m.Duration))
	}
	for _, m := range st.Pending {
		fmt.Fprintf(tw, "pending\t%s\t%s\n", m.File(), statements(m.Statements))
	}
	return tw.Flush()
}

// statements says how many statements a file has.
func statements(n int) string {
	if n == 1 {
		return "1 statement"
	}
	return fmt.Sprintf("%d statements", n)
}

// lockWaitMessage says what apply waits for, and for how long.
func lockWaitMessage(db *database.DB, timeout time.Duration) string {
	what := "the migration lock held by another chatdb or atlas migrate apply on " + db.URL()
	if db.Dialect() == database.SQLite {
		what = "the write lock of " + db.URL() + ", held by another process (a migration, or a long write)"
	}
	until := "until it is free (--lock-timeout 0; Ctrl-C to stop)"
	if timeout > 0 {
		until = "for up to " + timeout.String() + " (--lock-timeout)"
	}
	return "waiting for " + what + " " + until
}

func newMigrateStatus() *cobra.Command {
	var url, dir string
	c := &cobra.Command{
		Use:   "status",
		Short: "List the migrations a database has applied and those pending",
		Long: `Status lists the migration files the database has applied, with when and how
long they took, and those it has not, in the order apply would apply them. It
changes nothing and takes no lock.

The database and the files are chosen as for apply: --url, else the environment
(DATABASE_URL, and CHATDB_*); the files built into chatdb, unless --dir names a
migrations root or the dialect's directory.

On PostgreSQL it also lists invalid indexes (pg_index.indisvalid false), which a
CREATE INDEX CONCURRENTLY that failed or was interrupted leaves behind (such as
one in a -- atlas:txmode none file), with how to repair each: DROP INDEX
CONCURRENTLY and create it again, or REINDEX INDEX CONCURRENTLY.

Exit status: 0 when nothing is pending, 3 when something is (so a deploy script
can ask whether to apply) or an index is invalid, 1 when status could not tell.`,
		Example: `  chatdb migrate status
  chatdb migrate status --url postgres://app@db.internal/chat?sslmode=require
  chatdb migrate status || chatdb migrate apply`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			cfg, opts, err := migrateTarget(ctx, "migrate status", url, dir)
			if err != nil {
				return err
			}
			if err := sqliteMissing(cfg.URL); err != nil {
				return fmt.Errorf("migrate status: %w", err)
			}
			db, err := database.Open(ctx, cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := database.Migrations(ctx, db, opts...)
			if err != nil {
				return fmt.Errorf("migrate status: %w", err)
			}
			out := c.OutOrStdout()
			if err := printMigrations(out, st); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: %d applied, %d pending\n", db.URL(), len(st.Applied), len(st.Pending))
			invalid, err := printInvalidIndexes(ctx, out, db)
			if err != nil {
				return fmt.Errorf("migrate status: %w", err)
			}
			var attention []string
			if len(st.Pending) > 0 {
				attention = append(attention, fmt.Sprintf("%d migration(s) pending; apply them with `chatdb migrate apply`", len(st.Pending)))
			}
			if invalid > 0 {
				attention = append(attention, fmt.Sprintf("%d invalid index(es); repair them as shown", invalid))
			}
			if len(attention) > 0 {
				return &attentionError{msg: "migrate status: " + strings.Join(attention, "; ")}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&url, "url", "", "database URL (default: from DATABASE_URL)")
	f.StringVar(&dir, "dir", "", "read the migrations from this directory instead of the built-in files: "+dirFlagUsage)
	return c
}

func newMigrateValidate() *cobra.Command {
	var dialect, dir string
	c := &cobra.Command{
		Use:   "validate",
		Short: "Check that the migration directories match their atlas.sum and parse",
		Long: `Validate checks each dialect's migration directory without a database: atlas.sum
matches the files (an edited, added or removed file is refused, as apply would
refuse it), every file is named <version>_<name>.sql with a version of its own,
and every file splits into SQL statements. Lint replays the files as well.`,
		Example: `  chatdb migrate validate
  chatdb migrate validate --dialect postgres --dir ./migrations`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			md := parseDir(dir)
			dialects, err := md.dialects(dialect)
			if err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			var errs []error
			for _, d := range dialects {
				sub, local, err := md.open(d)
				if err == nil {
					err = migration.Validate(d, local)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("migrate validate: %s: %w", sub, err))
					continue
				}
				files, err := local.Files()
				if err != nil {
					return fmt.Errorf("migrate validate: %w", err)
				}
				fmt.Fprintf(c.OutOrStdout(), "%s: %s is valid (%d files)\n", sub, local.Path(), len(files))
			}
			return errors.Join(errs...)
		},
	}
	f := c.Flags()
	f.StringVar(&dialect, "dialect", "all", "dialect to check: postgres, sqlite or all")
	f.StringVar(&dir, "dir", DefaultMigrationsDir, dirFlagUsage)
	return c
}

func newMigrateHash() *cobra.Command {
	var dialect, dir string
	c := &cobra.Command{
		Use:   "hash",
		Short: "Rewrite atlas.sum after a deliberate edit of a migration file",
		Long: `Hash recomputes atlas.sum from the files of each dialect's migration directory
and writes it, then validates the directory.

atlas.sum exists so that nobody edits a migration by accident: apply refuses a
directory that does not match it. Run hash only after an edit you mean, such as
adding an -- atlas:nolint directive with its reason, and review the edit like any
other change. A database that already applied the file does not apply it again,
so change a migration that has shipped only to fix what fails to apply; write a
new migration for anything else.`,
		Example: `  chatdb migrate hash
  chatdb migrate hash --dialect sqlite`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			md := parseDir(dir)
			dialects, err := md.dialects(dialect)
			if err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			out := c.OutOrStdout()
			for _, d := range dialects {
				sub, local, err := md.open(d)
				if err != nil {
					return fmt.Errorf("migrate hash: %s: %w", sub, err)
				}
				changed, err := migration.Hash(local)
				if err != nil {
					return fmt.Errorf("migrate hash: %s: %w", sub, err)
				}
				sum := filepath.Join(local.Path(), migrate.HashFileName)
				if changed {
					fmt.Fprintf(out, "%s: wrote %s\n", sub, sum)
				} else {
					fmt.Fprintf(out, "%s: %s is up to date\n", sub, sum)
				}
				if err := migration.Validate(d, local); err != nil {
					return fmt.Errorf("migrate hash: %s: %w", sub, err)
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dialect, "dialect", "all", "dialect to hash: postgres, sqlite or all")
	f.StringVar(&dir, "dir", DefaultMigrationsDir, dirFlagUsage)
	return c
}

func newMigrateLint() *cobra.Command {
	var dialect, dir, dev, gitBase string
	var latest int
	c := &cobra.Command{
		Use:   "lint",
		Short: "Analyse new migrations for destructive, data-dependent and incompatible changes",
		Long: `Lint runs Atlas's analyzers over the newest migration files of each dialect:

  destructive   dropping a schema, table or column (DS101-DS103)       error
  data_depend   changes that fail or not depending on the rows there:  error
                a unique index on an existing column, a NOT NULL column
                without a default on an existing table (MF101-MF104)
  incompatible  renaming a table or column under running code          error
                (BC101, BC102)
  condrop       dropping a foreign key with its column (CD101)         warning

On PostgreSQL chatdb adds analyzers of its own, which atlas migrate lint lacks:

  shard-readiness  keys and foreign keys that stop sharding by chat   warning
                   (SR101, SR102)
  zero-downtime    on a table the file does not create: an index     warning
                   built without CONCURRENTLY (ZD101), a column
                   type change that rewrites the table (ZD102), SET
                   NOT NULL (ZD103), a CHECK or FOREIGN KEY added
                   without NOT VALID (ZD104)
                   CONCURRENTLY in a file without -- atlas:txmode    error
                   none (ZD105)

The rules are atlas.hcl's, so atlas migrate lint agrees. The files under review
are the newest --latest N (default 1), or with --git-base REF those added since
the git revision REF. Lint first checks atlas.sum, then replays the directory on
a clean dev database, statement by statement: a temporary database on the
PostgreSQL server --dev-url names (default: the server DATABASE_URL names when it
is a postgres:// URL, reached through its postgres database; else the local
server), an in-memory one for SQLite.

Findings print as file:line: [analyzer code] message. When a change is intended,
say so in the file, right before the statement (or at the top of the file,
followed by a blank line, for all of it), with the analyzers or codes and the
reason, then run chatdb migrate hash:

  -- atlas:nolint destructive the column was never read (see #123)

A directive without analyzers or without a reason is itself an error.

Exit status: 0 when no finding is an error, 3 when one is, 1 when lint could not
run.`,
		Example: `  chatdb migrate lint
  chatdb migrate lint --latest 3 --dialect postgres
  chatdb migrate lint --git-base origin/main`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			md := parseDir(dir)
			dialects, err := md.dialects(dialect)
			if err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			if gitBase != "" && c.Flags().Changed("latest") {
				return &usageError{cmd: c.CommandPath(), err: errors.New("--git-base and --latest choose the files in different ways: give one")}
			}
			switch {
			case latest == 0:
				// A typo in CI must not pass a lint of nothing.
				return &usageError{cmd: c.CommandPath(), err: errors.New("--latest 0: lints nothing; want 1 or more")}
			case latest < 0:
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--latest %d: want 1 or more", latest)}
			}
			ctx := c.Context()
			out := c.OutOrStdout()
			var failed []string
			for _, d := range dialects {
				sub, local, err := md.open(d)
				if err != nil {
					return fmt.Errorf("migrate lint: %s: %w", sub, err)
				}
				n := latest
				if gitBase != "" {
					if n, err = migration.FilesAddedSince(ctx, local, local.Path(), gitBase); err != nil {
						return fmt.Errorf("migrate lint: %s: %w", sub, err)
					}
				}
				url := ""
				if d == database.Postgres && n > 0 {
					url = devURL(dev)
					fmt.Fprintf(c.ErrOrStderr(), "%s: replaying on a temporary database on %s\n", sub, database.Redact(url))
				}
				report, err := migration.Lint(ctx, d, local, n, url)
				if err != nil {
					return fmt.Errorf("migrate lint: %s: %w", sub, err)
				}
				errs, warns := 0, 0
				for _, f := range report.Findings {
					fmt.Fprintln(out, f)
					if f.Error {
						errs++
					} else {
						warns++
					}
				}
				fmt.Fprintf(out, "%s: %d file(s) linted (%s): %d error(s), %d warning(s)\n", sub, len(report.Files), filesSummary(report.Files), errs, warns)
				if report.Failed() {
					failed = append(failed, sub)
				}
			}
			if len(failed) > 0 {
				return &attentionError{msg: fmt.Sprintf("migrate lint: error-level findings in %s: change the migration, or add `-- atlas:nolint <analyzer> <reason>` before the statement and run `chatdb migrate hash`", strings.Join(failed, ", "))}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dialect, "dialect", "all", "dialect to lint: postgres, sqlite or all")
	f.StringVar(&dir, "dir", DefaultMigrationsDir, dirFlagUsage)
	f.StringVar(&dev, "dev-url", "", "PostgreSQL server to create the temporary dev database on")
	f.StringVar(&gitBase, "git-base", "", "lint the files added since this git revision (such as origin/main)")
	f.IntVar(&latest, "latest", 1, "lint the newest N files")
	return c
}

// migrateTarget returns the configuration of the database that apply and
// status (cmd) work on, and the options that make Migrate and Migrations
// read --dir (none when it is empty): --url, taken for a direct connection
// (not the pooler's of CHATDB_POOLER), else CHATDB_MIGRATION_URL, else
// DATABASE_URL. --dir is checked here, before anything is opened, so that a
// wrong one creates no database.
func migrateTarget(ctx context.Context, cmd, url, dir string) (database.Config, []database.MigrateOption, error) {
	cfg, err := config(ctx, url)
	if url != "" {
		cfg.Pooler, cfg.MigrationURL = "", ""
	}
	cfg = cfg.ForMigration()
	if err != nil || dir == "" {
		return cfg, nil, err
	}
	sub, local, err := parseDir(dir).open(dialectOf(cfg.URL))
	if err != nil {
		return cfg, nil, fmt.Errorf("%s: %s: %w", cmd, sub, err)
	}
	return cfg, []database.MigrateOption{database.WithDir(local)}, nil
}

// filesSummary names the linted files briefly.
func filesSummary(files []string) string {
	switch len(files) {
	case 0:
		return "none new"
	case 1:
		return files[0]
	}
	return files[0] + " to " + files[len(files)-1]
}
