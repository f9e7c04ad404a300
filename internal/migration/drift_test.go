package migration_test

import (
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/migration"
	"github.com/chatdb/chatdb/migrations"
)

// firstFiles returns a directory with the first n files of dialect's built-in
// migrations, and its own atlas.sum.
func firstFiles(t *testing.T, dialect string, n int) (migrate.Dir, []string) {
	t.Helper()
	dir, err := migrations.Dir(dialect)
	require.NoError(t, err)
	files, err := dir.Files()
	require.NoError(t, err)
	require.Greater(t, len(files), n)
	mem := &migrate.MemDir{}
	var names []string
	for _, f := range files[:n] {
		require.NoError(t, mem.WriteFile(f.Name(), f.Bytes()))
		names = append(names, f.Name())
	}
	sum, err := migrate.NewHashFile(files[:n])
	require.NoError(t, err)
	require.NoError(t, migrate.WriteSumFile(mem, sum))
	return mem, names
}

func driftTarget(dialect string) dbtest.Target {
	if dialect == database.SQLite {
		return dbtest.SQLite
	}
	return dbtest.PGX
}

// TestDriftReplaysOnlyApplied: Drift replays exactly the files the database
// applied, not the directory's pending ones, so a database behind its
// directory has no drift.
func TestDriftReplaysOnlyApplied(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		db, err := database.Open(t.Context(), dbtest.EmptyConfig(t, driftTarget(dialect)))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		first, names := firstFiles(t, dialect, 2)
		require.NoError(t, database.Migrate(t.Context(), db, database.WithDir(first)))

		r, err := migration.Drift(t.Context(), db, nil, dev) // the full directory
		require.NoError(t, err)
		require.Equal(t, names, r.Applied)
		require.False(t, r.Drifted(), "%v", r.Differences)
		require.Empty(t, r.Changes)
	})
}

// TestDriftUnknownRevision: a database that applied a file the directory does
// not have cannot be compared with it.
func TestDriftUnknownRevision(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		db, err := database.Open(t.Context(), dbtest.Config(t, driftTarget(dialect)))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		first, _ := firstFiles(t, dialect, 1)
		_, err = migration.Drift(t.Context(), db, first, dev)
		require.ErrorIs(t, err, migration.ErrUnknownRevision)
	})
}

// TestDriftNoDev: a dev URL that names no PostgreSQL server is ErrNoDev, which
// doctor reports as a skipped check.
func TestDriftNoDev(t *testing.T) {
	t.Parallel()
	db, err := database.Open(t.Context(), dbtest.Config(t, dbtest.PGX))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	for _, dev := range []string{"", "sqlite://dev.db"} {
		_, err = migration.Drift(t.Context(), db, nil, dev)
		require.ErrorIs(t, err, migration.ErrNoDev, dev)
	}
}
