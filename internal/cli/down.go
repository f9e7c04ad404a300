package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
)

func newMigrateDown() *cobra.Command {
	var url, dir, dev string
	var dryRun, allowDestructive bool
	var lockTimeout, stmtLockTimeout time.Duration
	var lockRetries int
	c := &cobra.Command{
		Use:   "down [N]",
		Short: "Revert the last N applied migrations (default 1)",
		Long: `Down reverts the newest N applied migration files (default 1), as atlas
migrate down does: the applied files except those N are replayed on a clean
dev database (as for drift: a temporary database on the PostgreSQL server
--dev-url names, dropped afterwards, or a private in-memory SQLite database),
and the statements that take the live schema to that earlier schema are
planned with Atlas. Because the plan starts from the live schema, a change
made by hand (see chatdb migrate drift) is undone too.

The plan is checked first: dropping a table that has rows, or a column that
has values, deletes data, and down refuses it unless --allow-destructive is
given. Dropping an empty table or an all-NULL column is not destructive.
--dry-run prints the plan and its findings and changes nothing.

The plan runs under the migration lock apply takes (see --lock-timeout), in
one transaction, each statement under apply's lock_timeout and retries
(--statement-lock-timeout, --lock-retries) on PostgreSQL, and the reverted files' rows are deleted from the Atlas
revisions table: migrate status, and atlas migrate status, then show them
pending, and migrate apply applies them again.

The database and the files are chosen as for apply.

Exit status: 0 when reverted (or planned, with --dry-run), 1 when down failed
or refused.`,
		Example: `  chatdb migrate down --dry-run
  chatdb migrate down 2 --allow-destructive`,
		Args: rangeArgs(0, 1, "at most one argument, the number of files to revert"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			if stmtLockTimeout < 0 || lockRetries < 0 {
				return &usageError{cmd: c.CommandPath(), err: errors.New("--statement-lock-timeout and --lock-retries must not be negative")}
			}
			n := 1
			if len(args) == 1 {
				v, err := strconv.Atoi(args[0])
				if err != nil || v < 1 {
					return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("migrate down: N must be a positive number of files, got %q", args[0])}
				}
				n = v
			}
			cfg, _, err := migrateTarget(ctx, "migrate down", url, "")
			if err != nil {
				return err
			}
			local, err := driftDir(cfg.URL, dir)
			if err != nil {
				return fmt.Errorf("migrate down: %w", err)
			}
			if err := sqliteMissing(cfg.URL); err != nil {
				return fmt.Errorf("migrate down: %w", err)
			}
			db, err := database.Open(ctx, cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			stderr := c.ErrOrStderr()
			if db.Dialect() == database.Postgres {
				dev = serverDevURL(cfg.URL, dev)
				fmt.Fprintf(stderr, "replaying the earlier migrations on a temporary database on %s\n", database.Redact(dev))
			}
			plan, err := migration.PlanDown(ctx, db, local, dev, n)
			if err != nil {
				return fmt.Errorf("migrate down: %w", err)
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "reverting %d file(s) on %s: %s\n", len(plan.Reverted), db.URL(), strings.Join(plan.Reverted, ", "))
			if len(plan.Changes) == 0 {
				fmt.Fprintf(out, "no schema change: only the revisions are removed\n")
			} else {
				fmt.Fprintf(out, "\n%s\n", indent(strings.Join(plan.Changes, "\n")))
			}
			for _, f := range plan.Destructive {
				fmt.Fprintf(out, "%s\n", f)
			}
			if dryRun {
				fmt.Fprintf(out, "dry run: nothing changed\n")
				return nil
			}
			opts := []database.MigrateOption{database.WithLockTimeout(lockTimeout), database.WithLockWait(func() {
				fmt.Fprintf(stderr, "migrate down: %s\n", lockWaitMessage(db, lockTimeout))
			}), database.WithStatementLockTimeout(stmtLockTimeout), database.WithStatementLockRetries(lockRetries)}
			if err := migration.Down(ctx, db, plan, allowDestructive, opts...); err != nil {
				return fmt.Errorf("migrate down: %w", err)
			}
			fmt.Fprintf(out, "reverted %d file(s) on %s\n", len(plan.Reverted), db.URL())
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&url, "url", "", "database URL (default: from DATABASE_URL)")
	f.StringVar(&dir, "dir", "", "read the migrations from this directory instead of the built-in files: "+dirFlagUsage)
	f.StringVar(&dev, "dev-url", "", "PostgreSQL server to create the temporary dev database on (default: the database's own server)")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan without changing anything")
	f.BoolVar(&allowDestructive, "allow-destructive", false, "revert even when the plan drops a table or a column that holds data")
	f.DurationVar(&lockTimeout, "lock-timeout", DefaultLockTimeout, "how long to wait for the migration lock another migrator holds (0: until it is free)")
	f.DurationVar(&stmtLockTimeout, "statement-lock-timeout", database.DefaultStatementLockTimeout, "PostgreSQL lock_timeout of each statement of the plan (0: none)")
	f.IntVar(&lockRetries, "lock-retries", database.DefaultStatementLockRetries, "how many more times to try a statement that timed out waiting for its lock")
	return c
}
