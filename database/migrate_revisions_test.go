package database_test

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
)

// TestRevisionRowsAsAtlasWrites reads back the rows Migrate writes and finds
// what the Atlas CLI writes for a file that applied cleanly: its ent client
// sets every column, so error and error_stmt are empty strings, not NULL, and
// partial_hashes is the JSON encoding of no hashes, null, not SQL NULL.
func TestRevisionRowsAsAtlasWrites(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		require.NoError(t, database.Migrate(t.Context(), db))
		rows, err := db.SQL().QueryContext(t.Context(),
			"SELECT version, error, error_stmt, CAST(partial_hashes AS TEXT) FROM "+migRevisionsTable(db)+" ORDER BY version")
		require.NoError(t, err)
		defer rows.Close()
		n := 0
		for rows.Next() {
			var version string
			var errText, errStmt, partial sql.NullString
			require.NoError(t, rows.Scan(&version, &errText, &errStmt, &partial))
			require.Equal(t, sql.NullString{String: "", Valid: true}, errText, "%s: error", version)
			require.Equal(t, sql.NullString{String: "", Valid: true}, errStmt, "%s: error_stmt", version)
			require.Equal(t, sql.NullString{String: "null", Valid: true}, partial, "%s: partial_hashes", version)
			n++
		}
		require.NoError(t, rows.Err())
		require.Len(t, migEmbedded(t, db.Dialect()), n)
	})
}
