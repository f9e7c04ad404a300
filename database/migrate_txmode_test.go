package database_test

import (
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
)

// TestMigrateTxModeNone: on PostgreSQL a file with `-- atlas:txmode none` runs
// outside a transaction, so CREATE INDEX CONCURRENTLY (which PostgreSQL refuses
// inside one) applies, and its revision is recorded as the Atlas CLI records it.
// A concurrent unique build that fails on duplicates leaves an INVALID index,
// which InvalidIndexes finds with its repair; the failed file's revision stays
// partially applied and the fixed file resumes from it.
func TestMigrateTxModeNone(t *testing.T) {
	t.Parallel()
	db := migOpen(t, database.Config{URL: migScratchPostgres(t)})
	ctx := t.Context()
	inTx := migrate.NewLocalFile("29990101000000_in_tx.sql", []byte(
		"CREATE INDEX CONCURRENTLY users_display_name_idx ON users (display_name);\n"))
	err := database.Migrate(ctx, db, database.WithDir(migDir(t, database.Postgres, inTx)))
	require.ErrorIs(t, err, database.ErrMigration, "without the directive the file runs in a transaction, where CONCURRENTLY fails")

	db = migOpen(t, database.Config{URL: migScratchPostgres(t)})
	none := migrate.NewLocalFile("29990101000000_concurrently.sql", []byte(
		"-- atlas:txmode none\n\nCREATE INDEX CONCURRENTLY users_display_name_idx ON users (display_name);\n"))
	require.NoError(t, database.Migrate(ctx, db, database.WithDir(migDir(t, database.Postgres, none))))
	revs := migRevisions(t, db)
	last := revs[len(revs)-1]
	require.Equal(t, "29990101000000", last.version)
	require.Equal(t, int64(1), last.applied)
	require.Equal(t, int64(1), last.total)
	require.Empty(t, last.errText.String)
	var valid bool
	require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_display_name_idx'::regclass").Scan(&valid))
	require.True(t, valid)
	st, err := database.Migrations(ctx, db, database.WithDir(migDir(t, database.Postgres, none)))
	require.NoError(t, err)
	require.Empty(t, st.Pending)
	invalid, err := db.InvalidIndexes(ctx)
	require.NoError(t, err)
	require.Empty(t, invalid)

	// Two users with the same display name: a unique concurrent build fails
	// and leaves its index behind, invalid.
	_, err = db.SQL().ExecContext(ctx, `INSERT INTO users (id, created_at, updated_at, email, display_name) VALUES
		(gen_random_uuid(), now(), now(), 'a@example.com', 'Same'), (gen_random_uuid(), now(), now(), 'b@example.com', 'Same')`)
	require.NoError(t, err)
	unique := migrate.NewLocalFile("29990102000000_unique_name.sql", []byte(
		"-- atlas:txmode none\n\nCREATE INDEX CONCURRENTLY users_email_lower_idx ON users (lower(email));\nCREATE UNIQUE INDEX CONCURRENTLY users_display_name_key ON users (display_name);\n"))
	err = database.Migrate(ctx, db, database.WithDir(migDir(t, database.Postgres, none, unique)))
	require.ErrorIs(t, err, database.ErrMigration)
	var me *database.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "29990102000000_unique_name.sql", me.File)
	require.Contains(t, me.Stmt, "users_display_name_key")
	revs = migRevisions(t, db)
	last = revs[len(revs)-1]
	require.Equal(t, "29990102000000", last.version)
	require.Equal(t, int64(1), last.applied, "the statement before the failed one stays applied")
	require.Equal(t, int64(2), last.total)
	require.NotEmpty(t, last.errText.String)

	invalid, err = db.InvalidIndexes(ctx)
	require.NoError(t, err)
	require.Len(t, invalid, 1)
	require.Equal(t, "users_display_name_key", invalid[0].Name)
	require.Equal(t, "users", invalid[0].Table)
	require.Equal(t, `DROP INDEX CONCURRENTLY "public"."users_display_name_key"; then CREATE UNIQUE INDEX CONCURRENTLY users_display_name_key ON public.users USING btree (display_name); or REINDEX INDEX CONCURRENTLY "public"."users_display_name_key"`, invalid[0].Repair())

	// Repaired: the duplicate goes, the invalid index is dropped, and the same
	// file resumes at its failed statement.
	_, err = db.SQL().ExecContext(ctx, "DELETE FROM users WHERE email = 'b@example.com'")
	require.NoError(t, err)
	_, err = db.SQL().ExecContext(ctx, "DROP INDEX CONCURRENTLY users_display_name_key")
	require.NoError(t, err)
	require.NoError(t, database.Migrate(ctx, db, database.WithDir(migDir(t, database.Postgres, none, unique))))
	revs = migRevisions(t, db)
	last = revs[len(revs)-1]
	require.Equal(t, int64(2), last.applied)
	require.Empty(t, last.errText.String)
	invalid, err = db.InvalidIndexes(ctx)
	require.NoError(t, err)
	require.Empty(t, invalid)
}
