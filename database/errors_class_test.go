package database_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/viewer"
)

// sentinels are every classification of database.Error; a classified error
// matches exactly one.
var sentinels = []error{
	database.ErrNotFound, database.ErrConflict, database.ErrInvalidReference, database.ErrCheck,
	database.ErrInvalid, database.ErrTimeout, database.ErrSerialization, database.ErrBadConn,
	database.ErrCommitUnknown, database.ErrPermission, database.ErrClosed, database.ErrReadOnly,
	database.ErrSchema, database.ErrTxAborted,
}

// requireOnly checks that err is classified as kind and as no other sentinel.
func requireOnly(t *testing.T, err, kind error) {
	t.Helper()
	requireKind(t, err, kind)
	for _, other := range sentinels {
		if other != kind {
			require.NotErrorIs(t, database.MapError(err), other, "%v", err)
		}
	}
}

// Server errors chatdb can provoke, each for real on both PostgreSQL drivers:
// the SQLSTATE the server sent, and the sentinel it is classified as.
func TestErrServerClasses(t *testing.T) {
	t.Parallel()
	exec := func(q string) func(context.Context, *database.DB) error {
		return func(ctx context.Context, db *database.DB) error {
			_, err := db.SQL().ExecContext(ctx, q)
			return err
		}
	}
	cases := []struct {
		name, code string
		kind       error
		run        func(context.Context, *database.DB) error
	}{
		{"write in a read-only transaction", "25006", database.ErrReadOnly, func(ctx context.Context, db *database.DB) error {
			return db.WithTx(ctx, func(tx *ent.Tx) error {
				return createUser(ctx, tx, "ro@example.com")
			}, database.ReadOnly())
		}},
		{"text that is not a uuid", "22P02", database.ErrInvalid, exec("SELECT count(*) FROM users WHERE id = 'not-a-uuid'")},
		{"number out of range", "22003", database.ErrInvalid, exec("SELECT 2147483648::int4")},
		{"text that is not a time", "22007", database.ErrInvalid, exec("SELECT count(*) FROM users WHERE created_at < 'the day after'")},
		{"text too long for its column", "22001", database.ErrInvalid, func(ctx context.Context, db *database.DB) error {
			return db.WithTx(ctx, func(tx *ent.Tx) error {
				if _, err := tx.ExecContext(ctx, "CREATE TEMP TABLE short_text (v varchar(2)) ON COMMIT DROP"); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "INSERT INTO short_text VALUES ('abc')")
				return err
			})
		}},
		{"table missing", "42P01", database.ErrSchema, exec("SELECT count(*) FROM no_such_table")},
		{"column missing", "42703", database.ErrSchema, exec("SELECT no_such_column FROM users")},
		{"statement after an error in a transaction", "25P02", database.ErrTxAborted, func(ctx context.Context, db *database.DB) error {
			return db.WithTx(ctx, func(tx *ent.Tx) error {
				_, _ = tx.ExecContext(ctx, "SELECT 1/0") // the error is dropped, as a careless caller would
				_, err := tx.ExecContext(ctx, "SELECT 1")
				return err
			})
		}},
	}
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.run(ctx, db)
				require.Error(t, err)
				require.Equal(t, tc.code, requireDriverError(t, target, err))
				requireOnly(t, err, tc.kind)
				var one int
				require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT 1").Scan(&one), "the connection is still good")
			})
		}
	})
}

// The message of ErrSchema says what to do about it.
func TestErrSchemaSaysMigrate(t *testing.T) {
	t.Parallel()
	require.Contains(t, database.ErrSchema.Error(), "migrat")
}

// A transaction whose function dropped a statement's error and returned nil
// cannot commit: the server rolled it back at the error. WithTx says so with
// ErrTxAborted, on both drivers (pgx and lib/pq each report it their own way,
// without a SQLSTATE).
func TestErrTxAbortedAtCommit(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target)
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			if err := createUser(ctx, tx, "aborted@example.com"); err != nil {
				return err
			}
			_, _ = tx.ExecContext(ctx, "SELECT 1/0")
			return nil
		})
		requireOnly(t, err, database.ErrTxAborted)
		require.Equal(t, 0, countRows(t, db, "users"))
	})
}

// A statement the caller cancelled reports 57014 on lib/pq (its cancel
// request) and no SQLSTATE on pgx; either way it is the caller's own
// cancellation: it matches context.Canceled, and is not ErrTimeout. A
// statement_timeout is ErrTimeout (TestErrTimeoutStatement).
func TestErrCancelIsNotTimeout(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := db.SQL().ExecContext(ctx, "SELECT pg_sleep(5)")
		err = database.MapError(err)
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, database.ErrTimeout, "%v", err)
	})
}

// More parameters than the protocol's 16-bit count, the one way chatdb's own
// statements could send a malformed message (08P01 protocol_violation): both
// drivers refuse it before sending, so the server never answers 08P01, and
// the refusal is not taken for a lost connection. The connection stays good
// (lib/pq left it believing a query was in progress; pgdriver now refuses
// first).
func TestErrTooManyParameters(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target)
		const n = 65536
		var q strings.Builder
		q.WriteString("SELECT count(*) FROM users WHERE id IN (")
		args := make([]any, n)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "$%d", i+1)
			args[i] = "00000000-0000-0000-0000-000000000000"
		}
		q.WriteByte(')')
		var c int
		err := db.SQL().QueryRowContext(ctx, q.String(), args...).Scan(&c)
		require.Error(t, err)
		require.Contains(t, err.Error(), "65535")
		_, fromServer := database.MapError(err).(*database.Error)
		require.False(t, fromServer, "refused by the driver, unclassified: %v", err)
		for range 3 { // MaxOpenConns is 30: the next calls get the same connection
			var one int
			require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT 1").Scan(&one))
		}
	})
}

// too_many_connections (53300), from a throwaway cluster: a role limited to
// one connection holds it, and a second pool of that role cannot connect.
// (dbtest.Cluster starts its server with max_connections=200 on the command
// line, which ALTER SYSTEM cannot lower; the role's CONNECTION LIMIT makes the
// server refuse with the same SQLSTATE.) It is ErrBadConn, a connection that
// could not be made, and Open retries it within OpenRetryWindow, since
// connections free up: it fails once the window has passed, and succeeds when
// the slot is freed during the window.
func TestErrTooManyConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	t.Parallel()
	c := dbtest.StartCluster(t)
	admin := openAdmin(t, c.URL())
	_, err := admin.SQL().ExecContext(t.Context(), "CREATE ROLE limited LOGIN CONNECTION LIMIT 1")
	require.NoError(t, err)
	u := strings.Replace(c.URL(), "postgres://postgres@", "postgres://limited@", 1)
	for drv, target := range map[string]dbtest.Target{database.DriverPgx: dbtest.PGX, database.DriverPQ: dbtest.PQ} {
		t.Run(drv, func(t *testing.T) {
			ctx := t.Context()
			holder, err := database.Open(ctx, database.Config{URL: u, Driver: drv, MaxOpenConns: 1, MaxIdleConns: -1})
			require.NoError(t, err)
			defer holder.Close()
			// The role's one connection, closed when released. Open's ping
			// connection was closed on release too, and its server process may
			// not have exited yet: wait for the slot as an application would.
			var conn *sql.Conn
			require.Eventually(t, func() bool {
				conn, err = holder.SQL().Conn(ctx)
				return err == nil
			}, 5*time.Second, 20*time.Millisecond, "the role's slot never freed: %v", err)
			defer conn.Close()

			_, err = database.Open(ctx, database.Config{URL: u, Driver: drv, OpenRetryWindow: time.Second})
			var ce *database.ConnectError
			require.ErrorAs(t, err, &ce)
			require.GreaterOrEqual(t, ce.Attempts, 2, "too_many_connections is retried: %v", err)
			require.ErrorIs(t, err, database.ErrBadConn)
			require.Equal(t, "53300", requireDriverError(t, target, err))

			time.AfterFunc(300*time.Millisecond, func() { conn.Close() })
			db, err := database.Open(ctx, database.Config{URL: u, Driver: drv, OpenRetryWindow: 10 * time.Second})
			require.NoError(t, err, "Open got the slot once it was freed")
			db.Close()
		})
	}
}
