package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"ariga.io/atlas/sql/migrate"
	"github.com/spf13/cobra"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
	"github.com/chatdb/chatdb/migrations"
)

// DefaultMigrationsDir is the migrations root that `migrate diff` writes to: it
// holds one directory per dialect, as the repository's migrations/ does.
const DefaultMigrationsDir = "migrations"

func newMigrate() *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Plan and apply versioned schema migrations",
		Args:  subcommand,
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newMigrateDiff(), newMigrateApply())
	return c
}

func newMigrateDiff() *cobra.Command {
	var dialect, dir, dev string
	c := &cobra.Command{
		Use:   "diff NAME",
		Short: "Write a migration that brings the migration directories up to the ent schema",
		Long: `Diff compares each dialect's migration directory with the ent schema and writes
the difference as a new file, <timestamp>_NAME.sql, updating atlas.sum. A directory
already in sync gets nothing.

The directory's current state comes from replaying it on a clean dev database: a
temporary database, dropped afterwards, on the PostgreSQL server named by
--dev-url (default: DATABASE_URL when it is a postgres:// URL, else the local
server), and a private in-memory database for SQLite. No real database is read
or changed.`,
		Example: `  chatdb migrate diff add_reactions
  chatdb migrate diff add_reactions --dialect sqlite`,
		Args: exactArgs(1, "one NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			dialects, err := diffDialects(dialect)
			if err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			out := c.OutOrStdout()
			for _, d := range dialects {
				sub, err := migrations.DirName(d)
				if err != nil {
					return err
				}
				path := filepath.Join(dir, sub)
				if err := os.MkdirAll(path, 0o755); err != nil {
					return fmt.Errorf("migrate diff: %w", err)
				}
				local, err := migrate.NewLocalDir(path)
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
					fmt.Fprintf(out, "%s: no changes: %s is in sync with the schema\n", sub, path)
					continue
				}
				fmt.Fprintf(out, "%s: wrote %s\n", sub, filepath.Join(path, file))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dialect, "dialect", "all", "dialect to plan for: postgres, sqlite or all")
	f.StringVar(&dir, "dir", DefaultMigrationsDir, "migrations root holding one directory per dialect")
	f.StringVar(&dev, "dev-url", "", "PostgreSQL server to create the temporary dev database on")
	return c
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

func newMigrateApply() *cobra.Command {
	var url, dir string
	var dryRun bool
	c := &cobra.Command{
		Use:   "apply",
		Short: "Apply pending migrations to a database",
		Long: `Apply applies the migration files the database has not applied yet, each in a
transaction of its own, under a lock that keeps concurrent runs apart, after
checking the files against atlas.sum. Progress is recorded in the Atlas CLI's
revisions table.

The database is --url, else the environment (DATABASE_URL and CHATDB_*; an empty
DATABASE_URL means the SQLite file chatdb.db). The files are the ones built into
chatdb, unless --dir names a migrations root (such as ./migrations) to take the
dialect's directory from.`,
		Example: `  chatdb migrate apply --dry-run
  DATABASE_URL=postgres://app@db.internal/chat chatdb migrate apply`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			db, err := openDB(ctx, url)
			if err != nil {
				return err
			}
			defer db.Close()
			out := c.OutOrStdout()
			var opts []database.MigrateOption
			if dir != "" {
				sub, err := migrations.DirName(db.Dialect())
				if err != nil {
					return err
				}
				local, err := migrate.NewLocalDir(filepath.Join(dir, sub))
				if err != nil {
					return fmt.Errorf("migrate apply: %w", err)
				}
				opts = append(opts, database.WithDir(local))
			}
			n := 0
			if dryRun {
				opts = append(opts, database.WithDryRun(), database.WithProgress(func(m database.Migration) {
					n++
					fmt.Fprintf(out, "pending %s (%d statements)\n", m.File(), m.Statements)
				}))
			} else {
				opts = append(opts, database.WithProgress(func(m database.Migration) {
					n++
					fmt.Fprintf(out, "applied %s (%d statements, %s)\n", m.File(), m.Statements, m.Duration.Round(time.Millisecond))
				}))
			}
			if err := database.Migrate(ctx, db, opts...); err != nil {
				return fmt.Errorf("migrate apply: %w", err)
			}
			switch {
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
	f.StringVar(&dir, "dir", "", "migrations root to read instead of the built-in files")
	f.BoolVar(&dryRun, "dry-run", false, "list the pending files without applying them")
	return c
}
