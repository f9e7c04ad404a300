package database_test

// The fault suite: each test provokes one failure for real against PostgreSQL
// (and SQLite where it has one), on both PostgreSQL drivers, and checks three
// things: what the caller sees (success, or an error classified with errors.Is
// against the package's sentinels), what is stored afterwards, and that the pool
// is healthy again (every connection given back, no session left idle in a
// transaction). RELIABILITY.md lists the faults and what chatdb promises for
// each. Faults that stop or restart a server use a throwaway cluster
// (fault_cluster_test.go); faults on the network go through dbtest.Proxy
// (fault_commit_test.go, fault_proxy_test.go).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
)

// --- helpers of the fault suite ---

// openAdmin opens a small pool on the server's maintenance database, for
// terminating backends and reading pg_stat_activity.
func openAdmin(t *testing.T, url string) *database.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	admin, err := database.Open(ctx, database.Config{URL: url, MaxOpenConns: 2, OpenRetryWindow: -1})
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	return admin
}

// dbName returns the name of the database db is connected to.
func dbName(t *testing.T, db *database.DB) string {
	t.Helper()
	var name string
	require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT current_database()").Scan(&name))
	return name
}

// createFaultLog creates the table the fault tests write to: one row per
// acknowledged write, so that "stored exactly once" is a count.
func createFaultLog(t *testing.T, db *database.DB) {
	t.Helper()
	_, err := db.SQL().ExecContext(t.Context(), "CREATE TABLE fault_log (id bigint PRIMARY KEY, note text NOT NULL DEFAULT '')")
	require.NoError(t, err)
}

// logIDs returns the ids stored in fault_log.
func logIDs(t *testing.T, db *database.DB) map[int64]bool {
	t.Helper()
	rows, err := db.SQL().QueryContext(t.Context(), "SELECT id FROM fault_log")
	require.NoError(t, err)
	defer rows.Close()
	ids := map[int64]bool{}
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids[id] = true
	}
	require.NoError(t, rows.Err())
	return ids
}

// insertLog inserts id into fault_log in tx.
func insertLog(ctx context.Context, tx *ent.Tx, id int64) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO fault_log (id) VALUES ($1)", id)
	return err
}

// requirePoolHealthy checks that the pool gave every connection back, that no
// session of its database is left idle in a transaction (checked from admin, a
// pool on the same server), and that a transaction works.
func requirePoolHealthy(t *testing.T, db, admin *database.DB) {
	t.Helper()
	require.Eventually(t, func() bool { return db.Stats().InUse == 0 }, 10*time.Second, 10*time.Millisecond,
		"connections still in use: %+v", db.Stats())
	name := dbName(t, db)
	var stuck int
	require.Eventually(t, func() bool {
		err := admin.SQL().QueryRowContext(t.Context(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'", name).Scan(&stuck)
		return err == nil && stuck == 0
	}, 10*time.Second, 20*time.Millisecond, "%d sessions left idle in a transaction", stuck)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, db.WithTx(ctx, func(tx *ent.Tx) error {
		_, err := tx.ExecContext(ctx, "SELECT 1")
		return err
	}), "the pool works again")
	require.Zero(t, db.Stats().InUse)
}

// backendPID returns the PostgreSQL backend of tx.
func backendPID(ctx context.Context, tx *ent.Tx) (int, error) {
	rows, err := tx.QueryContext(ctx, "SELECT pg_backend_pid()")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var pid int
	if !rows.Next() {
		return 0, fmt.Errorf("no pid: %w", rows.Err())
	}
	if err := rows.Scan(&pid); err != nil {
		return 0, err
	}
	return pid, rows.Close()
}

// terminate ends backends from admin and waits until they are gone.
func terminate(t *testing.T, admin *database.DB, where string, args ...any) []int {
	t.Helper()
	ctx := t.Context()
	rows, err := admin.SQL().QueryContext(ctx,
		"SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "+where, args...)
	require.NoError(t, err)
	var pids []int
	for rows.Next() {
		var pid int
		var ok bool
		require.NoError(t, rows.Scan(&pid, &ok))
		pids = append(pids, pid)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Eventually(t, func() bool {
		var n int
		err := admin.SQL().QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", intArray(pids)).Scan(&n)
		return err == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond, "terminated backends did not go away")
	return pids
}

// intArray renders ints as a PostgreSQL array literal, which both drivers pass
// as text.
func intArray(v []int) string {
	s := "{"
	for i, n := range v {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(n)
	}
	return s + "}"
}

// --- 1. idle connections killed ---

// Every idle connection of a pool is terminated by the server; once they sat
// idle longer than HealthCheckAfter (the default, 1s), callers see nothing: each
// dead connection is pinged, found dead and replaced.
func TestFaultIdleConnectionsKilled(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		const n = 12
		db := dbtest.Open(t, target, dbtest.WithConfig(func(c *database.Config) { c.MaxOpenConns, c.MaxIdleConns = n, n }))
		admin := openAdmin(t, dbtest.AdminURL(t))
		createFaultLog(t, db)
		holdAndRelease(t, db, n)
		require.Equal(t, n, db.Stats().Idle)

		killed := map[int]bool{}
		for _, pid := range terminate(t, admin, "datname = $1", dbName(t, db)) {
			killed[pid] = true
		}
		require.Len(t, killed, n)
		time.Sleep(database.DefaultHealthCheckAfter + 200*time.Millisecond)

		// n callers at once: each takes one of the dead connections.
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
			pids = map[int]bool{}
		)
		for i := range n {
			wg.Go(func() {
				err := db.WithTx(t.Context(), func(tx *ent.Tx) error {
					pid, err := backendPID(t.Context(), tx)
					if err != nil {
						return err
					}
					mu.Lock()
					pids[pid] = true
					mu.Unlock()
					return insertLog(t.Context(), tx, int64(i))
				})
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		for pid := range pids {
			require.False(t, killed[pid], "a terminated backend was used")
		}
		require.Len(t, logIDs(t, db), n, "every write stored")
		requirePoolHealthy(t, db, admin)
	})
}

// --- 3. backend killed inside WithTx ---

// The transaction's own backend is terminated while fn runs; fn goes on. The
// caller gets ErrBadConn (not ErrCommitUnknown: the COMMIT was never sent), fn
// is not run again even with WithRetry, and nothing of the transaction is
// stored.
func TestFaultBackendKilledInTx(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := t.Context()
		db := dbtest.Open(t, target)
		admin := openAdmin(t, dbtest.AdminURL(t))
		createFaultLog(t, db)

		runs := 0
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			runs++
			if err := insertLog(ctx, tx, 1); err != nil {
				return err
			}
			pid, err := backendPID(ctx, tx)
			if err != nil {
				return err
			}
			terminate(t, admin, "pid = $1", pid)
			return insertLog(ctx, tx, 2)
		}, database.WithRetry(5))
		require.ErrorIs(t, err, database.ErrBadConn)
		require.NotErrorIs(t, err, database.ErrCommitUnknown)
		require.Equal(t, 1, runs, "a lost connection is not retried")
		require.Empty(t, logIDs(t, db), "nothing of the transaction is stored")
		requirePoolHealthy(t, db, admin)
	})
}

// --- 6. pool exhausted ---

// Every connection is held in an open transaction. Extra callers wait for one
// until their context's deadline and get context.DeadlineExceeded (ErrTimeout);
// callers with time to spare get one as soon as it is given back. The waits
// show in the pool's statistics, and nothing leaks.
func TestFaultPoolExhausted(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		const size = 3
		ctx := t.Context()
		db := dbtest.Open(t, target, dbtest.WithConfig(func(c *database.Config) { c.MaxOpenConns, c.MaxIdleConns = size, size }))
		admin := openAdmin(t, dbtest.AdminURL(t))
		createFaultLog(t, db)

		release := make(chan struct{})
		var holders sync.WaitGroup
		held := make(chan struct{}, size)
		for i := range size {
			holders.Go(func() {
				err := db.WithTx(ctx, func(tx *ent.Tx) error {
					if err := insertLog(ctx, tx, int64(100+i)); err != nil {
						return err
					}
					held <- struct{}{}
					<-release
					return nil
				})
				assert.NoError(t, err)
			})
		}
		for range size {
			<-held
		}
		require.Equal(t, size, db.Stats().InUse)
		before := db.Stats()

		// Callers with a short deadline: a transaction, a query, an ent call.
		const wait = 300 * time.Millisecond
		calls := map[string]func(ctx context.Context) error{
			"WithTx": func(ctx context.Context) error {
				return db.WithTx(ctx, func(tx *ent.Tx) error { return insertLog(ctx, tx, 1) })
			},
			"query": func(ctx context.Context) error {
				_, err := db.SQL().ExecContext(ctx, "INSERT INTO fault_log (id) VALUES (2)")
				return database.MapError(err)
			},
			"read": func(ctx context.Context) error {
				var n int
				return database.MapError(db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM fault_log").Scan(&n))
			},
		}
		var wg sync.WaitGroup
		for name, call := range calls {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(ctx, wait)
				defer cancel()
				start := time.Now()
				err := call(ctx)
				elapsed := time.Since(start)
				assert.ErrorIs(t, err, context.DeadlineExceeded, name)
				assert.ErrorIs(t, err, database.ErrTimeout, name)
				assert.GreaterOrEqual(t, elapsed, wait-10*time.Millisecond, name)
				assert.Less(t, elapsed, 10*time.Second, name)
			})
		}
		wg.Wait()
		after := db.Stats()
		require.GreaterOrEqual(t, after.WaitCount-before.WaitCount, int64(len(calls)), "the waits are counted")
		require.Greater(t, after.WaitDuration, before.WaitDuration)
		require.Equal(t, size, after.OpenConnections, "no connection beyond the limit")

		// A caller with time to spare waits, and gets a connection once one is
		// given back.
		patient := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			patient <- db.WithTx(ctx, func(tx *ent.Tx) error { return insertLog(ctx, tx, 3) })
		}()
		require.Eventually(t, func() bool { return db.Stats().WaitCount > after.WaitCount }, 10*time.Second, 5*time.Millisecond)
		close(release)
		holders.Wait()
		require.NoError(t, <-patient)

		require.Equal(t, map[int64]bool{100: true, 101: true, 102: true, 3: true}, logIDs(t, db),
			"the holders' and the patient caller's writes are stored, the timed-out ones are not")
		requirePoolHealthy(t, db, admin)
		require.LessOrEqual(t, db.Stats().OpenConnections, size)
	})
}

// --- 7. context cancelled during a long query ---

// A long statement whose context ends returns at once, the server stops it
// (lib/pq and pgx send a cancel request on a connection of their own, so the
// pool runs through a proxy that counts them), and the connection it ran on is
// not given to the next caller in a bad state.
func TestFaultCancelLongQuery(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		px, cfg := dbtest.ProxyFor(t, dbtest.Config(t, target))
		cfg.MaxOpenConns = 2
		ctx0, cancel0 := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel0()
		db, err := database.Open(ctx0, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		admin := openAdmin(t, dbtest.AdminURL(t))
		createFaultLog(t, db)
		name := dbName(t, db)

		sleeping := func() int {
			var n int
			require.NoError(t, admin.SQL().QueryRowContext(t.Context(),
				"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%fault-7-sleep%'", name).Scan(&n))
			return n
		}
		cases := []struct {
			name string
			// ctx returns the context of the call and what ends it.
			ctx  func() (context.Context, context.CancelFunc)
			want error
			// run runs the long statement.
			tx bool
		}{
			{"deadline", func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(t.Context(), 300*time.Millisecond)
			}, context.DeadlineExceeded, false},
			{"cancel", func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(t.Context())
				time.AfterFunc(300*time.Millisecond, cancel)
				return ctx, cancel
			}, context.Canceled, false},
			{"deadline in WithTx", func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(t.Context(), 300*time.Millisecond)
			}, context.DeadlineExceeded, true},
		}
		for i, tc := range cases {
			accepted := px.Accepted()
			ctx, cancel := tc.ctx()
			start := time.Now()
			var err error
			if tc.tx {
				err = db.WithTx(ctx, func(tx *ent.Tx) error {
					if err := insertLog(ctx, tx, int64(i)); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, "SELECT pg_sleep(30) -- fault-7-sleep")
					return err
				})
			} else {
				_, err = db.SQL().ExecContext(ctx, "SELECT pg_sleep(30) -- fault-7-sleep")
				err = database.MapError(err)
			}
			elapsed := time.Since(start)
			cancel()
			require.ErrorIs(t, err, tc.want, tc.name)
			if tc.want == context.DeadlineExceeded {
				require.ErrorIs(t, err, database.ErrTimeout, tc.name)
			}
			require.Less(t, elapsed, 10*time.Second, "%s: the call returns soon after its context ends", tc.name)
			require.Eventually(t, func() bool { return sleeping() == 0 }, 10*time.Second, 20*time.Millisecond,
				"%s: the server still runs the cancelled statement", tc.name)
			require.Greater(t, px.Accepted(), accepted, "%s: the cancel request went through its own connection", tc.name)

			// The next callers get good connections: fill the pool and use each.
			holdAndRelease(t, db, cfg.MaxOpenConns)
			for range 4 {
				var one int
				require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT 1").Scan(&one), tc.name)
			}
		}
		require.Empty(t, logIDs(t, db), "the cancelled transaction stored nothing")
		requirePoolHealthy(t, db, admin)
	})
}

// A storm of operations from many goroutines on a small pool, a third of them
// with a context cancelled at a random moment: every operation whose context
// was not cancelled succeeds with the right result, and what is stored is
// exactly what was acknowledged (plus, for a cancellation that hit a COMMIT in
// flight, what ErrCommitUnknown said may be there).
func TestFaultCancelStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of operations")
	}
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target, dbtest.WithConfig(func(c *database.Config) { c.MaxOpenConns, c.MaxIdleConns = 4, 4 }))
		admin := openAdmin(t, dbtest.AdminURL(t))
		createFaultLog(t, db)

		const workers, perWorker = 8, 40
		type outcome int
		const (
			stored outcome = iota + 1
			absent
			unknown
		)
		var (
			mu       sync.Mutex
			outcomes = map[int64]outcome{}
			failures []string
			ops      atomic.Int64
			hit      atomic.Int64 // cancelled operations that did fail
		)
		fail := func(format string, args ...any) {
			mu.Lock()
			failures = append(failures, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for i := range perWorker {
					ops.Add(1)
					id := int64(w*perWorker + i)
					cancelled := rng.IntN(3) == 0
					ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
					if cancelled {
						time.AfterFunc(time.Duration(rng.IntN(15000))*time.Microsecond, cancel)
					}
					var err error
					switch rng.IntN(3) {
					case 0: // a query with a result to check
						var got int64
						err = db.SQL().QueryRowContext(ctx, "SELECT $1::bigint + 1 FROM pg_sleep(0.005)", id).Scan(&got)
						if err == nil && got != id+1 {
							fail("query %d: got %d", id, got)
						}
					case 1: // a transaction with a write and a read back
						err = db.WithTx(ctx, func(tx *ent.Tx) error {
							if err := insertLog(ctx, tx, id); err != nil {
								return err
							}
							rows, err := tx.QueryContext(ctx, "SELECT count(*) FROM fault_log WHERE id = $1", id)
							if err != nil {
								return err
							}
							defer rows.Close()
							var n int
							if rows.Next() {
								if err := rows.Scan(&n); err != nil {
									return err
								}
							}
							if n != 1 {
								return fmt.Errorf("read back %d rows of %d", n, id)
							}
							return rows.Close()
						})
						mu.Lock()
						switch {
						case err == nil:
							outcomes[id] = stored
						case errors.Is(err, database.ErrCommitUnknown):
							outcomes[id] = unknown
						default:
							outcomes[id] = absent
						}
						mu.Unlock()
					case 2: // a read-only transaction
						err = db.WithTx(ctx, func(tx *ent.Tx) error {
							_, err := tx.ExecContext(ctx, "SELECT count(*) FROM fault_log")
							return err
						}, database.ReadOnly())
					}
					cancel()
					switch {
					case err != nil && !cancelled:
						fail("uncancelled operation %d (%s) failed: %v", id, target, err)
					case err != nil:
						hit.Add(1)
					}
				}
			})
		}
		wg.Wait()
		require.Empty(t, failures)
		require.Positive(t, hit.Load(), "no cancellation hit an operation in flight")
		t.Logf("%d operations, %d failed by their cancellation", ops.Load(), hit.Load())

		ids := logIDs(t, db)
		for id, o := range outcomes {
			switch o {
			case stored:
				require.True(t, ids[id], "acknowledged write %d is missing", id)
			case absent:
				require.False(t, ids[id], "failed write %d is stored", id)
			}
		}
		for id := range ids {
			if _, ok := outcomes[id]; !ok {
				t.Fatalf("stored %d was never written", id)
			}
		}
		requirePoolHealthy(t, db, admin)
	})
}

// --- 8. server-side timeouts ---

// statement_timeout, lock_timeout and idle_in_transaction_session_timeout, set
// on the database as an operator would, map to ErrTimeout, store nothing, and
// leave the pool healthy. idle_in_transaction_session_timeout ends the session
// with a FATAL error: pgx reports its SQLSTATE (25P03, ErrTimeout); lib/pq
// reports every FATAL error as driver.ErrBadConn without it, so chatdb can only
// say ErrBadConn, and at COMMIT ErrCommitUnknown.
func TestFaultServerTimeouts(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := t.Context()
		cfg := dbtest.Config(t, target)
		admin := openAdmin(t, dbtest.AdminURL(t))
		setup, err := database.Open(ctx, cfg)
		require.NoError(t, err)
		createFaultLog(t, setup)
		name := dbName(t, setup)
		for _, stmt := range []string{
			`ALTER DATABASE "` + name + `" SET statement_timeout = '300ms'`,
			`ALTER DATABASE "` + name + `" SET lock_timeout = '200ms'`,
			`ALTER DATABASE "` + name + `" SET idle_in_transaction_session_timeout = '1s'`,
		} {
			_, err := setup.SQL().ExecContext(ctx, stmt)
			require.NoError(t, err)
		}
		require.NoError(t, setup.Close())
		// New sessions have the settings.
		db, err := database.Open(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })

		t.Run("statement_timeout", func(t *testing.T) {
			start := time.Now()
			err := db.WithTx(ctx, func(tx *ent.Tx) error {
				if err := insertLog(ctx, tx, 1); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "SELECT pg_sleep(10)")
				return err
			})
			require.Less(t, time.Since(start), 8*time.Second)
			require.ErrorIs(t, err, database.ErrTimeout)
			require.Equal(t, "57014", requireDriverError(t, target, err))
			require.Empty(t, logIDs(t, db))
			requirePoolHealthy(t, db, admin)
		})

		t.Run("lock_timeout", func(t *testing.T) {
			locked, release := make(chan struct{}), make(chan struct{})
			holder := make(chan error, 1)
			go func() {
				holder <- db.WithTx(ctx, func(tx *ent.Tx) error {
					if _, err := tx.ExecContext(ctx, "LOCK TABLE fault_log IN EXCLUSIVE MODE"); err != nil {
						close(locked)
						return err
					}
					close(locked)
					<-release
					return insertLog(ctx, tx, 2)
				})
			}()
			<-locked
			err := db.WithTx(ctx, func(tx *ent.Tx) error { return insertLog(ctx, tx, 3) })
			close(release)
			require.NoError(t, <-holder)
			require.ErrorIs(t, err, database.ErrTimeout)
			require.Equal(t, "55P03", requireDriverError(t, target, err))
			require.Equal(t, map[int64]bool{2: true}, logIDs(t, db))
			requirePoolHealthy(t, db, admin)
		})

		t.Run("idle_in_transaction_session_timeout", func(t *testing.T) {
			// fn dawdles between two statements: the second finds the session gone.
			err := db.WithTx(ctx, func(tx *ent.Tx) error {
				if err := insertLog(ctx, tx, 4); err != nil {
					return err
				}
				time.Sleep(2500 * time.Millisecond)
				return insertLog(ctx, tx, 5)
			})
			if target == dbtest.PGX {
				require.ErrorIs(t, err, database.ErrTimeout)
				require.Equal(t, "25P03", requireDriverError(t, target, err))
			} else {
				require.ErrorIs(t, err, database.ErrBadConn)
			}
			require.NotErrorIs(t, err, database.ErrCommitUnknown)

			// fn dawdles before returning: the COMMIT finds the session gone.
			err = db.WithTx(ctx, func(tx *ent.Tx) error {
				if err := insertLog(ctx, tx, 6); err != nil {
					return err
				}
				time.Sleep(2500 * time.Millisecond)
				return nil
			})
			if target == dbtest.PGX {
				require.ErrorIs(t, err, database.ErrTimeout, "25P03 says the server rolled back")
				require.NotErrorIs(t, err, database.ErrCommitUnknown)
			} else {
				require.ErrorIs(t, err, database.ErrCommitUnknown, "lib/pq hides the SQLSTATE")
			}
			require.Equal(t, map[int64]bool{2: true}, logIDs(t, db), "nothing of either transaction is stored")
			requirePoolHealthy(t, db, admin)
		})
	})
}

// --- 9. deadlock, retried ---

// Two transactions update the same two rows in opposite orders, each after the
// other took its first lock: PostgreSQL detects the deadlock (40P01) and fails
// one. With WithRetry the loser runs again and both succeed; each applied its
// increments exactly once.
func TestFaultDeadlockRetried(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := t.Context()
		db := dbtest.Open(t, target)
		admin := openAdmin(t, dbtest.AdminURL(t))
		_, err := db.SQL().ExecContext(ctx, "CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counters VALUES (0, 0), (1, 0)")
		require.NoError(t, err)

		var (
			first sync.WaitGroup // both hold their first lock (first attempts only)
			wg    sync.WaitGroup
			errs  [2]error
			runs  atomic.Int32
		)
		first.Add(2)
		for i := range 2 {
			wg.Go(func() {
				var once sync.Once
				locked := func() { once.Do(first.Done) }
				defer locked()
				errs[i] = db.WithTx(ctx, func(tx *ent.Tx) error {
					runs.Add(1)
					if _, err := tx.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1", i); err != nil {
						return err
					}
					locked()
					first.Wait()
					_, err := tx.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1", 1-i)
					return err
				}, database.WithRetry(5))
			})
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.Greater(t, runs.Load(), int32(2), "the deadlock's loser ran again")
		rows, err := db.SQL().QueryContext(ctx, "SELECT n FROM counters ORDER BY id")
		require.NoError(t, err)
		defer rows.Close()
		var got []int
		for rows.Next() {
			var n int
			require.NoError(t, rows.Scan(&n))
			got = append(got, n)
		}
		require.NoError(t, rows.Err())
		require.Equal(t, []int{2, 2}, got, "each transaction counted once on each row")
		requirePoolHealthy(t, db, admin)
	})
}
