package database_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
)

// openProxied opens a pool on a new migrated database through a new proxy.
func openProxied(t *testing.T, target dbtest.Target, opts ...dbtest.Option) (*dbtest.Proxy, *database.DB) {
	t.Helper()
	px, cfg := dbtest.ProxyFor(t, dbtest.Config(t, target))
	cfg.OpenRetryWindow = -1
	for _, opt := range opts {
		opt(&cfg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return px, db
}

func waitFault(t *testing.T, f *dbtest.Fault) {
	t.Helper()
	select {
	case <-f.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy's fault did not happen")
	}
}

// --- 4. connection lost during COMMIT ---

// The connection breaks while the COMMIT is in flight: after the server
// committed and before its answer reached the client, or before the COMMIT
// reached the server. The client cannot tell the two apart, and says so:
// ErrCommitUnknown, which matches neither ErrBadConn nor ErrSerialization and
// is never retried, not even with WithRetry. What the caller does next decides:
// an idempotent retry (here, an insert keyed by an ID chosen before the first
// attempt) stores the row exactly once either way.
func TestFaultCommitLost(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		arm    func(*dbtest.Proxy) *dbtest.Fault
		stored bool
		// timeout, if set, bounds the call: the COMMIT's answer is held until
		// the context ends.
		timeout time.Duration
	}{
		{"answer lost", func(px *dbtest.Proxy) *dbtest.Fault { return px.CutAfterReply(dbtest.IsCommit) }, true, 0},
		{"commit lost", func(px *dbtest.Proxy) *dbtest.Fault { return px.CutBefore(dbtest.IsCommit) }, false, 0},
		{"answer stalled past the deadline", func(px *dbtest.Proxy) *dbtest.Fault { return px.StallAfter(dbtest.IsCommit) }, true, time.Second},
	}
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				px, db := openProxied(t, target)
				admin := openAdmin(t, dbtest.AdminURL(t))
				createFaultLog(t, db)
				const id = 42

				f := tc.arm(px)
				runs := 0
				callCtx, cancel := ctx, context.CancelFunc(func() {})
				if tc.timeout > 0 {
					callCtx, cancel = context.WithTimeout(ctx, tc.timeout)
				}
				start := time.Now()
				err := db.WithTx(callCtx, func(tx *ent.Tx) error {
					runs++
					return insertLog(callCtx, tx, id)
				}, database.WithRetry(5))
				cancel()
				require.Less(t, time.Since(start), 10*time.Second)
				waitFault(t, f)
				if tc.timeout > 0 {
					require.ErrorIs(t, err, context.DeadlineExceeded)
					require.NotErrorIs(t, err, database.ErrTimeout, "a timeout says nothing was committed; this one may have been")
					px.CutAll() // the dead path is closed at last
				}
				require.Equal(t, "commit", strings.ToLower(f.Statement()))
				require.ErrorIs(t, err, database.ErrCommitUnknown)
				require.Contains(t, err.Error(), "commit outcome unknown")
				require.NotErrorIs(t, err, database.ErrBadConn, "a retry-on-lost-connection loop must not retry it")
				require.NotErrorIs(t, err, database.ErrSerialization)
				require.Equal(t, 1, runs, "WithRetry does not run fn again")
				var dbErr *database.Error
				require.ErrorAs(t, err, &dbErr)
				require.Equal(t, database.ErrCommitUnknown, dbErr.Kind)
				require.Error(t, dbErr.Err, "the driver's error is kept")

				require.Equal(t, tc.stored, logIDs(t, db)[id], "what the server did")
				requirePoolHealthy(t, db, admin)

				// The caller's idempotent retry stores the row exactly once.
				require.NoError(t, db.WithTx(ctx, func(tx *ent.Tx) error {
					_, err := tx.ExecContext(ctx, "INSERT INTO fault_log (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", id)
					return err
				}))
				require.Equal(t, map[int64]bool{id: true}, logIDs(t, db))
			})
		}
	})
}

// A COMMIT the server answered with an error is not "unknown": the server
// rolled back. A deferred unique constraint fails at COMMIT with 23505.
func TestFaultCommitRefusedIsKnown(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := t.Context()
		db := dbtest.Open(t, target)
		_, err := db.SQL().ExecContext(ctx, "CREATE TABLE fault_deferred (k int, CONSTRAINT fault_deferred_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)")
		require.NoError(t, err)
		runs := 0
		err = db.WithTx(ctx, func(tx *ent.Tx) error {
			runs++
			for range 2 {
				if _, err := tx.ExecContext(ctx, "INSERT INTO fault_deferred (k) VALUES (1)"); err != nil {
					return err
				}
			}
			return nil
		}, database.WithRetry(3))
		require.ErrorIs(t, err, database.ErrConflict)
		require.NotErrorIs(t, err, database.ErrCommitUnknown)
		require.Contains(t, err.Error(), "database: commit:")
		require.Equal(t, 1, runs)
		require.Equal(t, 0, countRows(t, db, "fault_deferred"))
	})
}

// A statement outside a transaction whose answer is lost: the server ran it,
// the client cannot know. The caller gets ErrBadConn, and the statement is not
// run a second time behind its back. Before chatdb wrapped the drivers,
// database/sql ran it again on another connection when the driver said
// driver.ErrBadConn: lib/pq says so for any connection lost mid-statement, pgx
// for one lost while reading the answer to a statement without arguments.
func TestFaultStatementAnswerLost(t *testing.T) {
	t.Parallel()
	type call func(ctx context.Context, db *database.DB) error
	exec := func(q string, args ...any) call {
		return func(ctx context.Context, db *database.DB) error {
			_, err := db.SQL().ExecContext(ctx, q, args...)
			return database.MapError(err)
		}
	}
	cases := []struct {
		name string
		call call
	}{
		{"exec without arguments", exec("INSERT INTO fault_dup (v) VALUES (1)")},
		{"exec with arguments", exec("INSERT INTO fault_dup (v) VALUES ($1)", 1)},
		{"insert returning", func(ctx context.Context, db *database.DB) error {
			var v int
			return database.MapError(db.SQL().QueryRowContext(ctx, "INSERT INTO fault_dup (v) VALUES ($1) RETURNING v", 1).Scan(&v))
		}},
		{"prepared statement", func(ctx context.Context, db *database.DB) error {
			st, err := db.SQL().PrepareContext(ctx, "INSERT INTO fault_dup (v) VALUES ($1)")
			if err != nil {
				return err
			}
			defer st.Close()
			_, err = st.ExecContext(ctx, 1)
			return database.MapError(err)
		}},
	}
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				px, db := openProxied(t, target)
				admin := openAdmin(t, dbtest.AdminURL(t))
				_, err := db.SQL().ExecContext(ctx, "CREATE TABLE fault_dup (v int)")
				require.NoError(t, err)

				f := px.CutAfterReply(dbtest.QueryContains("insert into fault_dup"))
				err = tc.call(ctx, db)
				waitFault(t, f)
				require.ErrorIs(t, err, database.ErrBadConn)
				require.Equal(t, 1, countRows(t, db, "fault_dup"), "the statement ran exactly once")

				f = px.CutBefore(dbtest.QueryContains("insert into fault_dup"))
				err = tc.call(ctx, db)
				waitFault(t, f)
				require.ErrorIs(t, err, database.ErrBadConn)
				require.Equal(t, 1, countRows(t, db, "fault_dup"), "a statement that never arrived did not run")
				requirePoolHealthy(t, db, admin)
			})
		}
	})
}
