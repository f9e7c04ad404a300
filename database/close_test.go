package database_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/viewer"
)

// waitInUse waits until the pool has n connections in use.
func waitInUse(t *testing.T, db *database.DB, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return db.Stats().InUse == n }, 5*time.Second, 5*time.Millisecond)
}

// closeAfterWork opens the database cfg names, starts work on it, waits until
// the work holds a connection, and closes the pool. It returns how long Close
// took, when the work ended relative to Close's return (negative: before), and
// the work's error.
func closeAfterWork(t *testing.T, cfg database.Config, work func(ctx context.Context, db *database.DB) error) (closeTook, workEndedAfterClose time.Duration, workErr error, db *database.DB) {
	t.Helper()
	ctx := viewer.SystemContext(t.Context())
	db, err := database.Open(ctx, cfg)
	require.NoError(t, err)
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		err := work(ctx, db)
		done <- result{err, time.Now()}
	}()
	waitInUse(t, db, 1)
	start := time.Now()
	require.NoError(t, db.Close())
	closed := time.Now()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the work in progress never ended")
	}
	return closed.Sub(start), r.at.Sub(closed), r.err, db
}

// Close waits for the queries and transactions in progress: a 1 s pg_sleep on
// PostgreSQL, and a transaction that holds its connection (and on SQLite the
// write lock) for 1 s on every target. Close returns after the work ended,
// and the work succeeded. A call made while Close waits runs; a call made
// after it returns gets ErrClosed.
func TestCloseWaitsForWorkInProgress(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		type workload struct {
			name string
			work func(ctx context.Context, db *database.DB) error
		}
		works := []workload{{"transaction", func(ctx context.Context, db *database.DB) error {
			return db.WithTx(ctx, func(tx *ent.Tx) error {
				if _, err := tx.User.Create().SetEmail("closing@example.com").SetDisplayName("Closing").Save(ctx); err != nil {
					return err
				}
				time.Sleep(time.Second)
				return nil
			})
		}}}
		if target.Postgres() {
			works = append(works, workload{"pg_sleep", func(ctx context.Context, db *database.DB) error {
				var s string
				return db.SQL().QueryRowContext(ctx, "SELECT pg_sleep(1)::text").Scan(&s)
			}})
		}
		for _, w := range works {
			t.Run(w.name, func(t *testing.T) {
				cfg := dbtest.Config(t, target)
				cfg.MaxOpenConns = 4
				took, endedAfter, err, db := closeAfterWork(t, cfg, w.work)
				require.NoError(t, err, "the work in progress succeeded")
				require.LessOrEqual(t, endedAfter, time.Duration(0), "Close returned after the work ended")
				require.Greater(t, took, 500*time.Millisecond, "Close waited")
				require.Less(t, took, 5*time.Second)

				ctx := viewer.SystemContext(t.Context())
				err = db.WithTx(ctx, func(*ent.Tx) error { return nil })
				require.ErrorIs(t, err, database.ErrClosed)
				_, err = db.Client().User.Query().Count(ctx)
				require.ErrorIs(t, database.MapError(err), database.ErrClosed)
				require.ErrorIs(t, database.MapError(db.SQL().PingContext(ctx)), database.ErrClosed)
				require.NoError(t, db.Close(), "Close is safe to call twice")

				if w.name == "transaction" {
					again, err := database.Open(ctx, cfg)
					require.NoError(t, err)
					defer again.Close()
					n, err := again.Client().User.Query().Count(ctx)
					require.NoError(t, err)
					require.Equal(t, 1, n, "the transaction committed")
				}
			})
		}
	})
}

// A call that starts while Close waits runs, and Close waits for it too.
func TestCloseLetsCallsDuringTheWaitRun(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db, err := database.Open(ctx, dbtest.Config(t, target))
		require.NoError(t, err)
		release := make(chan struct{})
		held := make(chan error, 1)
		go func() {
			held <- db.WithTx(ctx, func(*ent.Tx) error { <-release; return nil })
		}()
		waitInUse(t, db, 1)
		closed := make(chan error, 1)
		go func() { closed <- db.Close() }()
		time.Sleep(100 * time.Millisecond)
		select {
		case <-closed:
			t.Fatal("Close returned while a transaction was open")
		default:
		}
		// During the wait, a new call runs.
		n, err := db.Client().User.Query().Count(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		close(release)
		require.NoError(t, <-held)
		require.NoError(t, <-closed)
	})
}

// With a short CloseTimeout, Close returns at the bound, and a PostgreSQL
// statement still running fails at once with a classified error (ErrBadConn:
// its connection was closed under it) instead of running on.
func TestCloseTimeoutInterruptsPostgres(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.Config(t, target)
		cfg.CloseTimeout = 200 * time.Millisecond
		took, endedAfter, err, _ := closeAfterWork(t, cfg, func(ctx context.Context, db *database.DB) error {
			var s string
			return db.SQL().QueryRowContext(ctx, "SELECT pg_sleep(5)::text").Scan(&s)
		})
		require.GreaterOrEqual(t, took, 150*time.Millisecond, "Close waited for its bound")
		require.Less(t, took, 2*time.Second, "Close returned at its bound")
		require.Less(t, endedAfter, 2*time.Second, "the statement was interrupted, not left to run 5 s")
		require.ErrorIs(t, database.MapError(err), database.ErrBadConn, "%v", err)

		// A transaction open at the bound does not commit.
		took, _, err, _ = closeAfterWork(t, cfg, func(ctx context.Context, db *database.DB) error {
			return db.WithTx(ctx, func(tx *ent.Tx) error {
				if _, err := tx.User.Create().SetEmail("late@example.com").SetDisplayName("Late").Save(ctx); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "SELECT pg_sleep(5)")
				return err
			})
		})
		require.Less(t, took, 2*time.Second)
		var dbErr *database.Error
		require.True(t, errors.As(err, &dbErr), "a classified error: %v", err)
		require.ErrorIs(t, err, database.ErrBadConn)
		check, err := database.Open(t.Context(), cfg)
		require.NoError(t, err)
		defer check.Close()
		var n int
		require.NoError(t, check.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM users").Scan(&n))
		require.Zero(t, n)
	})
}

// On SQLite, whose statements run in this process, Close returns at its bound
// too; the work in progress is left to end by itself (see Config.CloseTimeout).
func TestCloseTimeoutSQLite(t *testing.T) {
	t.Parallel()
	cfg := dbtest.Config(t, dbtest.SQLite)
	cfg.CloseTimeout = 200 * time.Millisecond
	took, _, err, _ := closeAfterWork(t, cfg, func(ctx context.Context, db *database.DB) error {
		return db.WithTx(ctx, func(*ent.Tx) error { time.Sleep(time.Second); return nil })
	})
	require.GreaterOrEqual(t, took, 150*time.Millisecond)
	require.Less(t, took, 900*time.Millisecond, "Close returned at its bound, before the work ended")
	if err != nil {
		require.True(t, errors.Is(database.MapError(err), database.ErrClosed) || errors.Is(err, sql.ErrTxDone), "%v", err)
	}
}
