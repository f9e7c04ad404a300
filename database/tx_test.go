package database_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/viewer"
)

// createUser creates a user in tx with a unique email.
func createUser(ctx context.Context, tx *ent.Tx, email string) error {
	_, err := tx.User.Create().SetEmail(email).SetDisplayName("Tx User").Save(ctx)
	return err
}

func uniqueEmail(t *testing.T, prefix string) string {
	t.Helper()
	return fmt.Sprintf("%s-%d@example.com", prefix, time.Now().UnixNano())
}

func TestWithTxCommits(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		email := uniqueEmail(t, "commit")
		var id any
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			u, err := tx.User.Create().SetEmail(email).SetDisplayName("A").Save(ctx)
			if err != nil {
				return err
			}
			id = u.ID
			// Uncommitted writes are visible inside the transaction.
			n, err := tx.User.Query().Count(ctx)
			if err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("count in tx = %d, want 1", n)
			}
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, 1, countRows(t, db, "users"))
		u, err := db.Client().User.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, id, u.ID)
		require.Equal(t, email, u.Email)
		require.Zero(t, db.Stats().InUse, "the connection went back to the pool")
	})
}

func TestWithTxRollsBackOnError(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		errStop := errors.New("stop here")
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			if err := createUser(ctx, tx, uniqueEmail(t, "rollback")); err != nil {
				return err
			}
			return fmt.Errorf("step two: %w", errStop)
		})
		require.ErrorIs(t, err, errStop)
		require.Equal(t, "step two: stop here", err.Error(), "the error comes back as fn returned it")
		require.Equal(t, 0, countRows(t, db, "users"))
		require.Zero(t, db.Stats().InUse)
	})
}

func TestWithTxRollsBackOnPanic(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		type boom struct{ n int }
		require.PanicsWithValue(t, boom{42}, func() {
			_ = db.WithTx(ctx, func(tx *ent.Tx) error {
				if err := createUser(ctx, tx, uniqueEmail(t, "panic")); err != nil {
					return err
				}
				panic(boom{42})
			})
		})
		require.Equal(t, 0, countRows(t, db, "users"))
		require.Zero(t, db.Stats().InUse)
		// The pool still works.
		require.NoError(t, db.WithTx(ctx, func(tx *ent.Tx) error {
			return createUser(ctx, tx, uniqueEmail(t, "after"))
		}))
		require.Equal(t, 1, countRows(t, db, "users"))
	})
}

// fn ending with runtime.Goexit (as t.FailNow does) must not leave the
// transaction open and its connection taken until the context ends.
func TestWithTxRollsBackOnGoexit(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target, dbtest.WithConfig(func(c *database.Config) { c.MaxOpenConns = 1 }))
		done := make(chan struct{})
		var reached, returned bool
		go func() {
			defer close(done)
			_ = db.WithTx(ctx, func(tx *ent.Tx) error {
				if err := createUser(ctx, tx, uniqueEmail(t, "goexit")); err != nil {
					return err
				}
				reached = true
				runtime.Goexit()
				return nil
			})
			returned = true
		}()
		<-done
		require.True(t, reached, "fn wrote its row and called Goexit")
		require.False(t, returned, "Goexit ended the goroutine inside WithTx")
		require.Zero(t, db.Stats().InUse, "the transaction's connection is still taken")
		waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var n int
		require.NoError(t, db.SQL().QueryRowContext(waitCtx, "SELECT count(*) FROM users").Scan(&n))
		require.Equal(t, 0, n)
	})
}

func TestWithTxContextCancelled(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		ctx, cancel := context.WithCancel(viewer.SystemContext(t.Context()))
		defer cancel()
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			if err := createUser(ctx, tx, uniqueEmail(t, "cancel")); err != nil {
				return err
			}
			cancel()
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 0, countRows(t, db, "users"))

		// A context already done runs nothing.
		ran := false
		err = db.WithTx(ctx, func(tx *ent.Tx) error { ran = true; return nil })
		require.ErrorIs(t, err, context.Canceled)
		require.False(t, ran)
		require.Eventually(t, func() bool { return db.Stats().InUse == 0 }, 5*time.Second, 10*time.Millisecond)
	})
}

func TestWithTxNested(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		for _, commit := range []bool{true, false} {
			ctx := viewer.SystemContext(t.Context())
			errOuter := errors.New("outer decides to roll back")
			var innerErr, innerCtxErr error
			innerRan := false
			err := db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
				require.True(t, database.InTx(ctx))
				if err := createUser(ctx, tx, uniqueEmail(t, "outer")); err != nil {
					return err
				}
				innerErr = db.WithTx(ctx, func(*ent.Tx) error { innerRan = true; return nil })
				innerCtxErr = db.WithTxContext(ctx, func(context.Context, *ent.Tx) error { innerRan = true; return nil })
				if !commit {
					return errOuter
				}
				return nil
			})
			require.ErrorIs(t, innerErr, database.ErrNestedTx)
			require.ErrorIs(t, innerCtxErr, database.ErrNestedTx)
			require.False(t, innerRan)
			if commit {
				require.NoError(t, err)
				require.Equal(t, 1, countRows(t, db, "users"))
			} else {
				require.ErrorIs(t, err, errOuter)
				require.Equal(t, 1, countRows(t, db, "users"), "the rolled-back outer write is gone")
			}
		}
		require.False(t, database.InTx(t.Context()))
	})
}

func TestWithTxReadOnly(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		newUser(t, db.Client())
		// Reads work read-only everywhere.
		var n int
		require.NoError(t, db.WithTx(ctx, func(tx *ent.Tx) error {
			var err error
			n, err = tx.User.Query().Count(ctx)
			return err
		}, database.ReadOnly()))
		require.Equal(t, 1, n)
		if !target.Postgres() {
			return
		}
		// PostgreSQL refuses writes in a read-only transaction.
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			return createUser(ctx, tx, uniqueEmail(t, "readonly"))
		}, database.ReadOnly())
		require.Error(t, err)
		require.Equal(t, "25006", requireDriverError(t, target, err)) // read_only_sql_transaction
		require.Equal(t, 1, countRows(t, db, "users"))
	})
}

func TestWithTxIsolation(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			if target.Postgres() {
				rows, err := tx.QueryContext(ctx, "SHOW transaction_isolation")
				if err != nil {
					return err
				}
				defer rows.Close()
				var level string
				if !rows.Next() {
					return fmt.Errorf("no row: %v", rows.Err())
				}
				if err := rows.Scan(&level); err != nil {
					return err
				}
				if level != "serializable" {
					return fmt.Errorf("transaction_isolation = %q", level)
				}
				if err := rows.Close(); err != nil {
					return err
				}
			}
			return createUser(ctx, tx, uniqueEmail(t, "serializable"))
		}, database.WithIsolation(sql.LevelSerializable))
		require.NoError(t, err)
		require.Equal(t, 1, countRows(t, db, "users"))
	})
}

// writeSkew runs two SERIALIZABLE transactions at once that each count the users
// and then add one, both reading before either writes: PostgreSQL must fail one
// of them with a serialization failure. It returns each transaction's error and
// how many times the functions ran in all.
func writeSkew(t *testing.T, db *database.DB, opts ...database.TxOption) ([2]error, int) {
	t.Helper()
	ctx := viewer.SystemContext(t.Context())
	opts = append(opts, database.WithIsolation(sql.LevelSerializable))
	var (
		errs    [2]error
		runs    atomic.Int32
		readers sync.WaitGroup // both have read
		wg      sync.WaitGroup
	)
	readers.Add(2)
	for i := range 2 {
		wg.Go(func() {
			var once sync.Once
			read := func() { once.Do(readers.Done) }
			defer read() // never leave the other side waiting
			errs[i] = db.WithTx(ctx, func(tx *ent.Tx) error {
				runs.Add(1)
				n, err := tx.User.Query().Count(ctx)
				if err != nil {
					return err
				}
				// Only the first attempt waits for the other side: a retry runs
				// on its own.
				read()
				readers.Wait()
				return createUser(ctx, tx, fmt.Sprintf("skew-%d-%d-%d@example.com", i, n, runs.Load()))
			}, opts...)
		})
	}
	wg.Wait()
	return errs, int(runs.Load())
}

func TestWithTxSerializationFailure(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		errs, runs := writeSkew(t, db)
		require.Equal(t, 2, runs, "without WithRetry nothing runs twice")
		failed := 0
		for _, err := range errs {
			if err == nil {
				continue
			}
			failed++
			require.ErrorIs(t, err, database.ErrSerialization)
			require.Equal(t, "40001", requireDriverError(t, target, err))
			var dbErr *database.Error
			require.ErrorAs(t, err, &dbErr)
			require.Equal(t, "40001", dbErr.Code)
		}
		require.Equal(t, 1, failed, "exactly one of the two transactions fails: %v", errs)
		require.Equal(t, 1, countRows(t, db, "users"))
	})
}

func TestWithTxRetriesSerializationFailure(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		errs, runs := writeSkew(t, db, database.WithRetry(5))
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.Greater(t, runs, 2, "the losing transaction ran again")
		require.Equal(t, 2, countRows(t, db, "users"))
	})
}

// Retries are for serialization failures only: other errors return at once.
func TestWithTxRetryOnlySerialization(t *testing.T) {
	eachDB(t, func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB) {
		u := newUser(t, db.Client())
		runs := 0
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			runs++
			return createUser(ctx, tx, u.Email)
		}, database.WithRetry(5))
		require.ErrorIs(t, err, database.ErrConflict)
		require.Equal(t, 1, runs)
	})
}

// With LogQueries on, the client WithConnTx gives logs its statements as the
// pool's client does (ImportMessages runs its work through it): the statement
// text at debug level, never its arguments.
func TestWithConnTxLogsQueries(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		var (
			logs bytes.Buffer
			mu   sync.Mutex
		)
		db := dbtest.Open(t, target, dbtest.WithConfig(func(cfg *database.Config) {
			cfg.LogQueries = true
			cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}))
		ctx := viewer.SystemContext(t.Context())
		const email = "logged-in-conn-tx@example.com"
		err := db.WithConnTx(ctx, func(ctx context.Context, _ *sql.Conn, client *ent.Client) error {
			_, err := client.User.Create().SetEmail(email).SetDisplayName("Conn Tx").Save(ctx)
			return err
		})
		require.NoError(t, err)
		require.Equal(t, 1, countRows(t, db, "users"))
		mu.Lock()
		out := logs.String()
		mu.Unlock()
		require.Contains(t, out, "msg=query")
		require.Regexp(t, "query=INSERT INTO .{1,2}users", out, "the statement is logged")
		require.NotContains(t, out, email, "its arguments are not")
		require.NotContains(t, out, "args=")
	})
}
