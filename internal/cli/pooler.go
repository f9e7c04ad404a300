package cli

import (
	"context"

	"github.com/chatdb/chatdb/database"
)

// poolerFinding is what doctor's pool check says of a pooler between chatdb
// and PostgreSQL: a note for the check's line when the configuration fits
// what it found (database.DB.DetectPooler), or, when it does not, why that
// fails and what to do. It finds nothing to say on SQLite.
func poolerFinding(ctx context.Context, db *database.DB, cfg database.Config) (note, mismatch, todo string) {
	if db.Dialect() != database.Postgres {
		return "", "", ""
	}
	configured := db.Pooler() == database.PoolerTransaction
	pooled, err := db.DetectPooler(ctx)
	migrations := "; migrations need CHATDB_MIGRATION_URL (or migrate apply --url), a direct connection"
	if cfg.MigrationURL != "" {
		migrations = "; migrations run on CHATDB_MIGRATION_URL"
	}
	switch {
	case err != nil:
		return "; pooler: could not tell (" + err.Error() + ")", "", ""
	case pooled && !configured:
		breaks := "pgx's prepared statements fail through it (prepared statement does not exist, or already exists), and the migration lock does not hold"
		if db.Driver() == database.DriverPQ {
			breaks = "lib/pq's statements work through it, but the migration lock does not hold"
		}
		return "", `a transaction pooler is in between (two statements of one session ran on different server connections) but CHATDB_POOLER is not "transaction": ` + breaks,
			"set CHATDB_POOLER=transaction (Config.Pooler), and CHATDB_MIGRATION_URL to a direct connection for migrations"
	case pooled:
		return "; through a transaction pooler (CHATDB_POOLER=transaction)" + migrations, "", ""
	case configured:
		return "; CHATDB_POOLER=transaction, though no transaction pooler was seen (the settings work on a direct connection too)" + migrations, "", ""
	default:
		return "; no transaction pooler", "", ""
	}
}
