package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
)

// driftCheck is doctor's drift line: whether the schema is what the applied
// migrations produce (migration.Drift), on a dev database made on the same
// server (PostgreSQL) or in memory (SQLite). Without a dev database (the role
// may not create databases) the check is skipped, not failed: doctor must not
// fail on what only a migrator's role may do.
func driftCheck(ctx context.Context, r *report, db *database.DB, cfg database.Config, migrationsOK bool) {
	if !migrationsOK {
		r.skipped++
		fmt.Fprintf(r.w, "SKIP  %-11s the migrations could not be read\n", "drift")
		return
	}
	dev := ""
	if db.Dialect() == database.Postgres {
		if cfg.Pooler == database.PoolerTransaction && cfg.MigrationURL == "" {
			r.skipped++
			fmt.Fprintf(r.w, "SKIP  %-11s no dev database: the URL goes through a transaction pooler; set CHATDB_MIGRATION_URL to a direct connection\n", "drift")
			return
		}
		dev = serverDevURL(cfg.ForMigration().URL, "")
	}
	rep, err := migration.Drift(ctx, db, nil, dev)
	switch {
	case errors.Is(err, migration.ErrNoDev):
		r.skipped++
		fmt.Fprintf(r.w, "SKIP  %-11s no dev database to replay the migrations on: %v\n", "drift", err)
	case err != nil:
		r.fail("drift", err.Error(), "run `chatdb migrate drift` for details")
	case rep.Drifted():
		r.fail("drift", fmt.Sprintf("%d difference(s) between the schema and its %d applied migration(s)", len(rep.Differences), len(rep.Applied)),
			"run `chatdb migrate drift` to see them as SQL")
	default:
		r.pass("drift", "the schema is what its %d applied migration(s) produce", len(rep.Applied))
	}
}
