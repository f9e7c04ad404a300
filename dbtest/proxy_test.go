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

func TestProxyMessage(t *testing.T) {
	t.Parallel()
	q := func(s string) dbtest.Message { return dbtest.Message{Type: 'Q', Body: []byte(s + "\x00")} }
	parse := func(name, s string) dbtest.Message {
		return dbtest.Message{Type: 'P', Body: []byte(name + "\x00" + s + "\x00\x00\x00")}
	}
	require.Equal(t, "commit", q("commit").SQL())
	require.True(t, q("commit").Runs())
	require.False(t, parse("", "commit").Runs(), "a parse prepares; the execute runs")
	require.Equal(t, "SELECT $1", parse("stmt_1", "SELECT $1").SQL())
	require.Equal(t, "", dbtest.Message{Type: 'S'}.SQL())
	require.Equal(t, "", dbtest.Message{Type: 'P', Body: []byte("no terminator")}.SQL())

	for _, m := range []dbtest.Message{q("commit"), q("COMMIT"), q(" Commit ;"), q("END"), q("commit work")} {
		require.True(t, dbtest.IsCommit(m), "%q", m.Body)
	}
	for _, m := range []dbtest.Message{q("rollback"), q("SELECT 'commit'"), q("commit; select 1"), parse("", "COMMIT"), {Type: 'E', Body: []byte("COMMIT")}} {
		require.False(t, dbtest.IsCommit(m), "%q", m.Body)
	}
	match := dbtest.QueryContains("INSERT INTO t")
	require.True(t, match(q("insert into t values (1)")))
	require.False(t, match(parse("s", "INSERT INTO t VALUES ($1)")), "matchers match what runs")
	require.False(t, match(q("SELECT 1")))
	require.False(t, match(dbtest.Message{Type: 'B', Body: []byte("INSERT INTO t")}))
	require.True(t, dbtest.QueryContains("")(q("SELECT 1")))
}

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

func waitClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the fault did not happen")
	}
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

func TestProxyDisarm(t *testing.T) {
	t.Parallel()
	px, db := proxied(t, dbtest.PGX)
	f := px.CutBefore(dbtest.QueryContains("insert into t"))
	require.True(t, px.Disarm(f))
	require.False(t, px.Disarm(f), "disarmed once")
	_, err := db.SQL().ExecContext(t.Context(), "INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	require.Equal(t, 1, countT(t, db))
	select {
	case <-f.Fired():
		t.Fatal("a disarmed fault fired")
	default:
	}
}

func TestProxyCutBefore(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, db := proxied(t, target)
		f := px.CutBefore(dbtest.QueryContains("insert into t"))
		_, err := db.SQL().ExecContext(t.Context(), "INSERT INTO t VALUES (1)")
		require.Error(t, err)
		waitClosed(t, f.Done())
		require.Equal(t, "INSERT INTO t VALUES (1)", f.Statement())
		require.Equal(t, 0, countT(t, db), "the statement never reached the server")
	})
}

func TestProxyCutAfterReply(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, db := proxied(t, target)
		// With and without arguments: the simple and the extended protocol.
		for i, args := range [][]any{nil, {2}} {
			f := px.CutAfterReply(dbtest.QueryContains("insert into t"))
			q := "INSERT INTO t VALUES (1)"
			if args != nil {
				q = "INSERT INTO t VALUES ($1)"
			}
			_, err := db.SQL().ExecContext(t.Context(), q, args...)
			require.Error(t, err, "the answer never arrives")
			waitClosed(t, f.Done())
			require.Equal(t, i+1, countT(t, db), "the server ran the statement, once")
		}
	})
}

func TestProxyTruncateReply(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, db := proxied(t, target)
		f := px.TruncateReply(dbtest.QueryContains("generate_series"), 100)
		rows, err := db.SQL().QueryContext(t.Context(), "SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g")
		if err == nil {
			n := 0
			for rows.Next() {
				n++
			}
			err = rows.Err()
			rows.Close()
			require.Less(t, n, 1000)
		}
		require.Error(t, err)
		waitClosed(t, f.Done())
		require.Equal(t, 0, countT(t, db), "the pool goes on")
	})
}

func TestProxyStallAfter(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, db := proxied(t, target)
		f := px.StallAfter(dbtest.QueryContains("insert into t"))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := db.SQL().ExecContext(ctx, "INSERT INTO t VALUES (1)")
		require.Error(t, err)
		waitClosed(t, f.Done())
		// The server ran it (autocommit); only the answer was held.
		require.Equal(t, 1, countT(t, db))
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
