// Tests of the faults armed on one statement: CutBefore, CutAfterReply,
// TruncateReply, StallAfter, and Disarm.

package dbtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/dbtest"
)

func waitClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the fault did not happen")
	}
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
