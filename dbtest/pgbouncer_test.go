package dbtest_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// TestPgBouncer starts a PgBouncer of its own in front of the test server,
// uses it on both drivers (in transaction mode: two sessions, one server
// connection between them), and stops it: nothing listens on its port after.
func TestPgBouncer(t *testing.T) {
	t.Parallel()
	b := dbtest.StartPgBouncer(t, dbtest.AdminURL(t))
	direct := dbtest.Config(t, dbtest.PGX).URL
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		cfg := b.Config(direct, drv)
		require.Equal(t, direct, cfg.MigrationURL)
		cfg.MaxOpenConns = 4
		db, err := database.Open(t.Context(), cfg)
		require.NoError(t, err)
		var users int
		require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM users WHERE id <> $1", "00000000-0000-0000-0000-000000000000").Scan(&users))
		require.Zero(t, users)
		pooled, err := db.DetectPooler(t.Context())
		require.NoError(t, err)
		require.True(t, pooled, drv)
		require.NoError(t, db.Close())
	}
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is safe twice")
	c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
	if err == nil {
		c.Close()
	}
	require.Error(t, err, "PgBouncer stopped")
}

// The PgBouncer targets are PostgreSQL ones, with their driver, through a
// pooler in transaction mode, and Migrate works on them (on MigrationURL).
func TestPgBouncerTargets(t *testing.T) {
	t.Parallel()
	for _, target := range []dbtest.Target{dbtest.PGXBouncer, dbtest.PQBouncer} {
		require.True(t, target.Postgres())
		require.True(t, target.Pooled())
		require.Equal(t, database.Postgres, target.Dialect())
		db := dbtest.Open(t, target)
		require.Equal(t, target.Driver(), db.Driver())
		require.Equal(t, database.PoolerTransaction, db.Pooler())
		require.NoError(t, database.Migrate(t.Context(), db), "up to date, on MigrationURL")
	}
	require.False(t, dbtest.PGX.Pooled())
}
