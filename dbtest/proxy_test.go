// Tests of the proxy's transport: forwarding, counting, cutting, stalling and
// refusing connections. proxied and countT serve the fault tests too.

package dbtest_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// proxied opens a pool through a new proxy to a database of the test's own,
// with a table t (id int).
func proxied(t *testing.T, target dbtest.Target) (*dbtest.Proxy, *database.DB) {
	t.Helper()
	px, cfg := dbtest.ProxyFor(t, dbtest.Config(t, target))
	cfg.OpenRetryWindow = -1
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.SQL().ExecContext(ctx, "CREATE TABLE t (id int)")
	require.NoError(t, err)
	return px, db
}

func countT(t *testing.T, db *database.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM t").Scan(&n))
	return n
}

func TestProxyForwardsAndCounts(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, db := proxied(t, target)
		require.True(t, strings.Contains(db.URL(), px.Addr()), db.URL())
		require.GreaterOrEqual(t, px.Accepted(), 1)
		require.GreaterOrEqual(t, px.Active(), 1)

		// A large answer and a large statement cross intact.
		big := strings.Repeat("x", 1<<20)
		var got string
		require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT $1::text", big).Scan(&got))
		require.Equal(t, big, got)

		require.NoError(t, db.Close())
		require.Eventually(t, func() bool { return px.Active() == 0 }, 10*time.Second, 10*time.Millisecond)
	})
}

func TestProxyCutAll(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, db := proxied(t, target)
		ctx := t.Context()
		conn, err := db.SQL().Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.PingContext(ctx))
		accepted := px.Accepted()

		px.CutAll()
		require.Equal(t, 0, px.Active())
		_, err = conn.ExecContext(ctx, "SELECT 1")
		require.Error(t, err, "a cut connection fails")
		// The pool opens a new connection through the proxy.
		require.Equal(t, 0, countT(t, db))
		require.Greater(t, px.Accepted(), accepted)
	})
}

func TestProxyStall(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, db := proxied(t, target)
		px.Stall()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := db.SQL().ExecContext(ctx, "INSERT INTO t VALUES (1)")
		require.Error(t, err)
		require.Less(t, time.Since(start), 10*time.Second)
		px.Resume()
		// The proxy held the INSERT the client gave up on and delivers it now, as
		// a network that heals does, together with the cancel request the driver
		// sent when the context ended: the INSERT runs late or is cancelled.
		before := countT(t, db)
		require.LessOrEqual(t, before, 1)
		_, err = db.SQL().ExecContext(t.Context(), "INSERT INTO t VALUES (2)")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return countT(t, db) >= before+1 }, 10*time.Second, 50*time.Millisecond)
	})
}

func TestProxyRefuse(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, cfg := dbtest.ProxyFor(t, dbtest.Config(t, target))
		cfg.OpenRetryWindow = -1
		px.Refuse(true)
		_, err := database.Open(t.Context(), cfg)
		var ce *database.ConnectError
		require.ErrorAs(t, err, &ce)
		px.Refuse(false)
		db, err := database.Open(t.Context(), cfg)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	})
}

// The proxy passes a transaction's statements through unchanged.
func TestProxyTransaction(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		_, db := proxied(t, target)
		ctx := t.Context()
		tx, err := db.SQL().BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "INSERT INTO t VALUES (1)")
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
		require.Equal(t, 1, countT(t, db))
	})
}
