package pgdriver_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/pgdriver"
)

// openWrapped opens a pool over target's wrapped connector, on a new empty
// database reached through a new proxy. database.Open is left out on purpose:
// these tests hold the wrappers' own promises, before any classification.
func openWrapped(t *testing.T, target dbtest.Target) (*dbtest.Proxy, *sql.DB) {
	t.Helper()
	px, cfg := dbtest.ProxyFor(t, dbtest.EmptyConfig(t, target))
	var c driver.Connector
	switch target {
	case dbtest.PGX:
		pc, err := pgx.ParseConfig(cfg.URL)
		require.NoError(t, err)
		c = pgdriver.Pgx(*pc, time.Second)
	case dbtest.PQ:
		pc, err := pq.NewConnector(cfg.URL)
		require.NoError(t, err)
		c = pgdriver.PQ(pc, time.Second)
	default:
		t.Fatalf("not a PostgreSQL target: %s", target)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return px, db
}

// The answer to a statement without arguments is lost after the server ran
// it. Both drivers say driver.ErrBadConn, on which database/sql runs the
// statement again on another connection; through the wrappers the caller gets
// ErrConnLost, which does not match driver.ErrBadConn, and the row is there
// once.
func TestAnswerLostIsNotRunAgain(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := t.Context()
		px, db := openWrapped(t, target)
		_, err := db.ExecContext(ctx, "CREATE TABLE answer_lost (v int)")
		require.NoError(t, err)

		f := px.CutAfterReply(dbtest.QueryContains("insert into answer_lost"))
		_, err = db.ExecContext(ctx, "INSERT INTO answer_lost (v) VALUES (1)")
		select {
		case <-f.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the proxy did not cut the answer")
		}
		require.ErrorIs(t, err, pgdriver.ErrConnLost)
		require.NotErrorIs(t, err, driver.ErrBadConn, "database/sql would run it again")
		var n int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM answer_lost").Scan(&n))
		require.Equal(t, 1, n, "the statement ran exactly once")
	})
}

// lib/pq answers a context that ended mid-statement with the server's answer
// to its cancel request (57014, query_canceled) alone; through the wrapper the
// error matches the context's too (context.Canceled, or DeadlineExceeded
// for a deadline), so that an ended context reads as one.
func TestContextEndedKeepsBothErrors(t *testing.T) {
	t.Parallel()
	_, db := openWrapped(t, dbtest.PQ)
	conn, err := db.Conn(t.Context())
	require.NoError(t, err)
	defer conn.Close()
	var pid int
	require.NoError(t, conn.QueryRowContext(t.Context(), "SELECT pg_backend_pid()").Scan(&pid))

	// The context ends once the server is running the statement, not on a
	// timer: on a loaded machine a short deadline can pass before the query
	// is sent, and then there is no driver error to keep.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		defer cancel()
		for range 500 {
			var active bool
			err := db.QueryRowContext(t.Context(),
				"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep(10)%')", pid).Scan(&active)
			if err != nil || active {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	_, err = conn.ExecContext(ctx, "SELECT pg_sleep(10)")
	require.Less(t, time.Since(start), 8*time.Second)
	require.ErrorIs(t, err, context.Canceled)
	var pqErr *pq.Error
	require.ErrorAs(t, err, &pqErr, "the driver's error is kept")
	require.Equal(t, pq.ErrorCode("57014"), pqErr.Code)
}
