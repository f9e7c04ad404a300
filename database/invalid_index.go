package database

import (
	"context"
	"fmt"
	"strings"
)

// An InvalidIndex is a PostgreSQL index marked invalid (pg_index.indisvalid
// false): what a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY leaves
// behind when it fails or is interrupted, for example by a duplicate under a
// unique index, a cancelled migration or a lost connection. PostgreSQL keeps
// updating such an index on every write but never uses it for queries, and a
// unique one still rejects duplicates: it costs writes and gives nothing.
type InvalidIndex struct {
	// Schema, Name and Table name the index and its table.
	Schema, Name, Table string
	// Definition is the index's CREATE INDEX statement (pg_get_indexdef).
	Definition string
}

// Repair says how to repair the index: drop it concurrently and build it again
// concurrently, or rebuild it in place with REINDEX ... CONCURRENTLY. Either
// fails again for a unique index until the duplicates that made the first
// build fail are gone.
func (ix InvalidIndex) Repair() string {
	name := quoteIdent(ix.Schema) + "." + quoteIdent(ix.Name)
	create := ix.Definition
	if rest, ok := strings.CutPrefix(create, "CREATE UNIQUE INDEX "); ok {
		create = "CREATE UNIQUE INDEX CONCURRENTLY " + rest
	} else if rest, ok := strings.CutPrefix(create, "CREATE INDEX "); ok {
		create = "CREATE INDEX CONCURRENTLY " + rest
	}
	return fmt.Sprintf("DROP INDEX CONCURRENTLY %s; then %s; or REINDEX INDEX CONCURRENTLY %s", name, create, name)
}

// InvalidIndexes lists the invalid indexes of the database (see InvalidIndex),
// in every schema but PostgreSQL's own, by schema and name. An index that a
// CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY is building right now is
// also invalid until it finishes; it is left out. SQLite has no invalid
// indexes: the result is empty. It costs one query.
func (db *DB) InvalidIndexes(ctx context.Context) ([]InvalidIndex, error) {
	if db.dialect != Postgres {
		return nil, nil
	}
	rows, err := db.sql.QueryContext(ctx, `
SELECT n.nspname, c.relname, t.relname, pg_get_indexdef(c.oid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid)
ORDER BY n.nspname, c.relname`)
	if err != nil {
		return nil, fmt.Errorf("database: invalid indexes: %w", scrub(mapError(err), db.secrets...))
	}
	defer rows.Close()
	var out []InvalidIndex
	for rows.Next() {
		var ix InvalidIndex
		if err := rows.Scan(&ix.Schema, &ix.Name, &ix.Table, &ix.Definition); err != nil {
			return nil, fmt.Errorf("database: invalid indexes: %w", scrub(mapError(err), db.secrets...))
		}
		out = append(out, ix)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("database: invalid indexes: %w", scrub(mapError(err), db.secrets...))
	}
	return out, nil
}
