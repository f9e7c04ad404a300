package dbtest_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// TestCluster starts a throwaway cluster, uses it, restarts it and uses it again:
// the fallback dbtest takes when no server is found, and what fault tests stand on.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := dbtest.StartCluster(t)
	ctx := t.Context()
	for _, driver := range []string{database.DriverPgx, database.DriverPQ} {
		db, err := database.Open(ctx, database.Config{URL: c.URL(), Driver: driver})
		require.NoError(t, err)
		require.NoError(t, database.Migrate(ctx, db))
		var n int
		require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n))
		require.Zero(t, n)
		require.NoError(t, db.Close())
	}

	require.NoError(t, c.Restart())
	db, err := database.Open(ctx, database.Config{URL: c.URL()})
	require.NoError(t, err)
	defer db.Close()
	status, err := database.Migrations(ctx, db)
	require.NoError(t, err)
	require.Empty(t, status.Pending, "the migrations applied before the restart are still there")
}

// TestOpenEachTarget opens a migrated database on every target.
func TestOpenEachTarget(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		require.Equal(t, target.Dialect(), db.Dialect())
		status, err := database.Migrations(t.Context(), db)
		require.NoError(t, err)
		require.NotEmpty(t, status.Applied)
		require.Empty(t, status.Pending)
	})
}
