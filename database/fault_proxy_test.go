package database_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
)

// goroutines returns a function that fails the test if, once the pools and
// proxies the test opened are closed, more goroutines run than before (with a
// tolerance for the runtime's own): a driver goroutine left blocked on a
// stalled connection would stay. The tests that use it do not run in parallel
// with others, since the count is the whole process's.
func goroutines(t *testing.T) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		const tolerance = 3
		deadline := time.Now().Add(20 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before+tolerance {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// --- 10. stalls and truncated answers ---

// The network stops delivering, in both directions, on every connection. Each
// call returns once its context's deadline passed (pgx breaks the socket at
// once; lib/pq sends a cancel request, which cannot arrive either, and chatdb
// breaks its socket cancelGrace later), with ErrTimeout. When the network comes
// back the pool works, and no goroutine is left behind.
func TestFaultProxyStall(t *testing.T) {
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		admin := openAdmin(t, dbtest.AdminURL(t))
		cfg := dbtest.Config(t, target)
		check := goroutines(t)
		func() {
			px, pcfg := dbtest.ProxyFor(t, cfg)
			defer px.Close()
			pcfg.MaxOpenConns = 4
			db, err := database.Open(t.Context(), pcfg)
			require.NoError(t, err)
			defer db.Close()
			createFaultLog(t, db)
			holdAndRelease(t, db, 2) // some idle connections, some new ones

			px.Stall()
			const deadline = time.Second
			calls := map[string]func(ctx context.Context) error{
				"exec": func(ctx context.Context) error {
					_, err := db.SQL().ExecContext(ctx, "INSERT INTO fault_log (id) VALUES (1)")
					return database.MapError(err)
				},
				"query": func(ctx context.Context) error {
					var n int
					return database.MapError(db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM fault_log").Scan(&n))
				},
				"WithTx": func(ctx context.Context) error {
					return db.WithTx(ctx, func(tx *ent.Tx) error { return insertLog(ctx, tx, 2) })
				},
				"ping": func(ctx context.Context) error { return database.MapError(db.SQL().PingContext(ctx)) },
				"WithTx x2": func(ctx context.Context) error {
					return db.WithTx(ctx, func(tx *ent.Tx) error { return insertLog(ctx, tx, 3) })
				},
			}
			var wg sync.WaitGroup
			for name, call := range calls {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(t.Context(), deadline)
					defer cancel()
					start := time.Now()
					err := call(ctx)
					elapsed := time.Since(start)
					assert.ErrorIs(t, err, context.DeadlineExceeded, name)
					assert.ErrorIs(t, err, database.ErrTimeout, name)
					assert.Less(t, elapsed, deadline+10*time.Second, "%s: bounded by its context", name)
				})
			}
			wg.Wait()

			// The network heals: what it held is delivered (a held INSERT may run
			// late, or be cancelled by the cancel request held with it), and the
			// pool works again.
			px.Resume()
			// InUse counts the connections database/sql is opening in the
			// background for the callers that waited; they finish now.
			requirePoolHealthy(t, db, admin)
			for id := range logIDs(t, db) {
				require.Equal(t, int64(1), id, "only the autocommit INSERT may run late; the transactions never committed")
			}
		}()
		check()
	})
}

// The server runs a transaction's statement and then nothing more arrives from
// it, as when the path to the client dies: WithTx returns at its context's
// deadline with ErrTimeout and nothing is committed. The server keeps the
// session, idle in its transaction, until the dead path is closed (here by the
// proxy; in production by TCP keepalive or idle_in_transaction_session_timeout,
// see RELIABILITY.md).
func TestFaultProxyStallInTx(t *testing.T) {
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		admin := openAdmin(t, dbtest.AdminURL(t))
		cfg := dbtest.Config(t, target)
		check := goroutines(t)
		func() {
			px, pcfg := dbtest.ProxyFor(t, cfg)
			defer px.Close()
			db, err := database.Open(t.Context(), pcfg)
			require.NoError(t, err)
			defer db.Close()
			createFaultLog(t, db)

			f := px.StallAfter(dbtest.QueryContains("insert into fault_log (id) values ($1) -- second"))
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			err = db.WithTx(ctx, func(tx *ent.Tx) error {
				if err := insertLog(ctx, tx, 1); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "INSERT INTO fault_log (id) VALUES ($1) -- second", 2)
				return err
			})
			require.Less(t, time.Since(start), 10*time.Second)
			waitFault(t, f)
			require.ErrorIs(t, err, database.ErrTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.NotErrorIs(t, err, database.ErrCommitUnknown, "no COMMIT was sent")

			px.CutAll() // the dead path is closed at last
			requirePoolHealthy(t, db, admin)
			require.Empty(t, logIDs(t, db))
		}()
		check()
	})
}

// The server's answer stops part-way, at several points: inside the first
// message, between messages, inside a data row. The caller gets ErrBadConn,
// nothing of a transaction is stored, and the pool goes on.
func TestFaultProxyTruncate(t *testing.T) {
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		admin := openAdmin(t, dbtest.AdminURL(t))
		cfg := dbtest.Config(t, target)
		check := goroutines(t)
		func() {
			px, pcfg := dbtest.ProxyFor(t, cfg)
			defer px.Close()
			db, err := database.Open(t.Context(), pcfg)
			require.NoError(t, err)
			defer db.Close()
			createFaultLog(t, db)
			ctx := t.Context()

			const rowsQuery = "SELECT g, repeat('x', 200) FROM generate_series(1, 500) g"
			for _, n := range []int{0, 1, 4, 5, 30, 64, 1000, 20000} {
				f := px.TruncateReply(dbtest.QueryContains("generate_series(1, 500)"), n)
				err := db.WithTx(ctx, func(tx *ent.Tx) error {
					if err := insertLog(ctx, tx, int64(n)); err != nil {
						return err
					}
					rows, err := tx.QueryContext(ctx, rowsQuery)
					if err != nil {
						return err
					}
					defer rows.Close()
					for rows.Next() {
					}
					return rows.Err()
				})
				waitFault(t, f)
				require.ErrorIs(t, err, database.ErrBadConn, "truncated after %d bytes", n)
				require.NotErrorIs(t, err, database.ErrCommitUnknown)
				require.NotContains(t, strings.ToLower(err.Error()), "password")

				// Outside a transaction, a read cut short is an error too, never a
				// short result.
				f = px.TruncateReply(dbtest.QueryContains("generate_series(1, 500)"), n)
				rows, err := db.SQL().QueryContext(ctx, rowsQuery)
				got := 0
				if err == nil {
					for rows.Next() {
						got++
					}
					err = rows.Err()
					rows.Close()
				}
				waitFault(t, f)
				require.ErrorIs(t, database.MapError(err), database.ErrBadConn, "truncated after %d bytes, %d rows read", n, got)
			}
			require.Empty(t, logIDs(t, db))
			requirePoolHealthy(t, db, admin)
		}()
		check()
	})
}
