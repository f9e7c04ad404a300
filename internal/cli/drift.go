package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"ariga.io/atlas/sql/migrate"
	"github.com/spf13/cobra"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
)

func newMigrateDrift() *cobra.Command {
	var url, dir, dev string
	c := &cobra.Command{
		Use:   "drift",
		Short: "Compare a database's schema with what its applied migrations produce",
		Long: `Drift compares the live schema of a database with the schema that the
migration files it records as applied produce, and prints the differences as
the SQL that would bring the live schema back: a column or an index added,
dropped or changed by hand shows up here. Comments (COMMENT ON) are not
compared: they change nothing an application reads or writes.

The applied files, exactly those and in order, are replayed on a clean dev
database: a temporary database, dropped afterwards, on the PostgreSQL server
--dev-url names (default: the target's own server, reached through its postgres
database; the role needs CREATEDB), a private in-memory database for SQLite.
The target database is only read.

The database and the files are chosen as for apply: --url, else the environment
(CHATDB_MIGRATION_URL when set, else DATABASE_URL, and CHATDB_*); the files
built into chatdb, unless --dir names a migrations root or the dialect's
directory.

Exit status: 0 when there is no drift, 3 when there is, 1 when drift could not
tell.`,
		Example: `  chatdb migrate drift
  chatdb migrate drift --url postgres://app@db.internal/chat --dev-url postgres://admin@db.internal/postgres`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			cfg, _, err := migrateTarget(ctx, "migrate drift", url, "")
			if err != nil {
				return err
			}
			local, err := driftDir(cfg.URL, dir)
			if err != nil {
				return fmt.Errorf("migrate drift: %w", err)
			}
			if err := sqliteMissing(cfg.URL); err != nil {
				return fmt.Errorf("migrate drift: %w", err)
			}
			db, err := database.Open(ctx, cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			r, err := drift(ctx, c.ErrOrStderr(), db, cfg.URL, local, dev)
			if err != nil {
				return fmt.Errorf("migrate drift: %w", err)
			}
			out := c.OutOrStdout()
			if !r.Drifted() {
				fmt.Fprintf(out, "%s: no drift: the schema is what its %d applied migration(s) produce\n", db.URL(), len(r.Applied))
				return nil
			}
			fmt.Fprintf(out, "%s: drift: the schema differs from what its %d applied migration(s) produce:\n\n%s\nThese statements would bring it back:\n\n%s\n",
				db.URL(), len(r.Applied), indent(strings.Join(r.Differences, "\n")), indent(strings.Join(r.Changes, "\n")))
			return &attentionError{msg: fmt.Sprintf("migrate drift: %d difference(s) between %s and its applied migrations: undo the hand-made change (the SQL above does), or make it a migration of its own", len(r.Differences), db.URL())}
		},
	}
	f := c.Flags()
	f.StringVar(&url, "url", "", "database URL (default: from DATABASE_URL)")
	f.StringVar(&dir, "dir", "", "read the migrations from this directory instead of the built-in files: "+dirFlagUsage)
	f.StringVar(&dev, "dev-url", "", "PostgreSQL server to create the temporary dev database on (default: the database's own server)")
	return c
}

// driftDir opens the dialect's directory that --dir names, or returns nil for
// the files built into chatdb.
func driftDir(target, dir string) (migrate.Dir, error) {
	if dir == "" {
		return nil, nil
	}
	sub, local, err := parseDir(dir).open(dialectOf(target))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sub, err)
	}
	return local, nil
}

// drift runs migration.Drift on db, whose unredacted URL is target, saying on
// stderr where the dev database is made.
func drift(ctx context.Context, stderr io.Writer, db *database.DB, target string, dir migrate.Dir, dev string) (*migration.DriftReport, error) {
	if db.Dialect() == database.Postgres {
		dev = serverDevURL(target, dev)
		fmt.Fprintf(stderr, "replaying the applied migrations on a temporary database on %s\n", database.Redact(dev))
	}
	return migration.Drift(ctx, db, dir, dev)
}

// serverDevURL returns flag when it is set, else target's server reached
// through its postgres database, as createdb connects (database.OtherDatabase:
// a URL or a key/value string). A target that does not parse gives "", which
// the planners refuse (migration.ErrDevURL) without printing it.
func serverDevURL(target, flag string) string {
	if flag != "" {
		return flag
	}
	u, err := database.OtherDatabase(target, "postgres")
	if err != nil {
		return ""
	}
	return u
}

// driftBeforeApply refuses, unless allowed, to apply migrations to a database
// whose schema has drifted from its applied migrations. A database with none
// applied is not checked: there is nothing to compare, and Migrate refuses one
// with tables of its own (ErrNotClean).
func driftBeforeApply(ctx context.Context, stderr io.Writer, db *database.DB, target, dir, dev string) error {
	local, err := driftDir(target, dir)
	if err != nil {
		return err
	}
	var opts []database.MigrateOption
	if local != nil {
		opts = append(opts, database.WithDir(local))
	}
	st, err := database.Migrations(ctx, db, opts...)
	if err != nil || len(st.Applied) == 0 {
		return err // Migrate reports a bad directory as it does without the check
	}
	r, err := drift(ctx, stderr, db, target, local, dev)
	if errors.Is(err, migration.ErrUnknownRevision) {
		// The database is ahead of these files (an older chatdb in a rolling
		// deploy): there is nothing to compare with, and Migrate finds nothing
		// to apply; refusing would only break the deploy.
		fmt.Fprintf(stderr, "migrate apply: drift not checked: %v\n", err)
		return nil
	}
	if err != nil {
		if errors.Is(err, migration.ErrNoDev) {
			return fmt.Errorf("checking for drift: %w (give a server where a temporary database can be made with --dev-url, or skip the check with --allow-drift)", err)
		}
		return fmt.Errorf("checking for drift: %w", err)
	}
	if r.Drifted() {
		return &driftError{URL: db.URL(), Changes: len(r.Differences)}
	}
	return nil
}

// driftError is returned by migrate apply when the database's schema has
// drifted from its applied migrations.
type driftError struct {
	// URL is the database, password redacted.
	URL string
	// Changes is how many differences there are.
	Changes int
}

func (e *driftError) Error() string {
	return fmt.Sprintf("refusing to apply: the schema of %s has drifted from its applied migrations (%d difference(s)): see them with `chatdb migrate drift`, or apply anyway with --allow-drift", e.URL, e.Changes)
}
