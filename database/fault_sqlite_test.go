package database_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
)

// --- 12. SQLite: concurrent writers ---

// Many goroutines write to one SQLite file at once, in transactions that read
// and then write (the pattern that fails at once with SQLITE_BUSY in WAL mode
// unless transactions take the write lock when they begin) and in single
// statements. Under the configured busy timeout no caller sees "database is
// locked", and every acknowledged write is stored exactly once.
func TestFaultSQLiteConcurrentWriters(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t, dbtest.SQLite)
	ctx := t.Context()
	createFaultLog(t, db)

	const writers, each = 24, 25
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := int64(w*each + i)
				var err error
				if i%5 == 4 {
					_, err = db.SQL().ExecContext(ctx, "INSERT INTO fault_log (id, note) VALUES ($1, 'autocommit')", id)
				} else {
					err = db.WithTx(ctx, func(tx *ent.Tx) error {
						var n int
						rows, err := tx.QueryContext(ctx, "SELECT count(*) FROM fault_log")
						if err != nil {
							return err
						}
						for rows.Next() {
							if err := rows.Scan(&n); err != nil {
								rows.Close()
								return err
							}
						}
						if err := rows.Close(); err != nil {
							return err
						}
						_, err = tx.ExecContext(ctx, "INSERT INTO fault_log (id, note) VALUES ($1, $2)", id, fmt.Sprint("after ", n))
						return err
					})
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("write %d: %w", id, err))
					mu.Unlock()
				}
			}
		})
	}
	// Readers run alongside; in WAL mode they never wait for the writers.
	for range 4 {
		wg.Go(func() {
			for range each {
				var n int
				if err := db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM fault_log").Scan(&n); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("read: %w", err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NotContains(t, strings.ToLower(err.Error()), "locked")
		require.NoError(t, err)
	}
	require.Len(t, logIDs(t, db), writers*each, "every write stored")
	var dup int
	require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT count(*) - count(DISTINCT id) FROM fault_log").Scan(&dup))
	require.Zero(t, dup)
	require.Zero(t, db.Stats().InUse)
	require.NoError(t, db.WithTx(context.Background(), func(tx *ent.Tx) error { return insertLog(ctx, tx, -1) }))
}

// Writers of one SQLite file in this process take turns in arrival order
// (sqlitegate.go). Sixteen goroutines each run write transactions that hold
// the lock for a few milliseconds: the longest any of them can wait is the
// others' turns, far below the busy timeout, so none times out. In SQLite's
// busy handler alone (sleeps of up to 100ms, and whoever tries first after a
// commit wins) some waited the whole timeout.
func TestFaultSQLiteWritersTakeTurns(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t, dbtest.SQLite, dbtest.WithConfig(func(c *database.Config) {
		c.SQLiteBusyTimeout = time.Second
	}))
	ctx := t.Context()
	createFaultLog(t, db)
	const writers, each = 16, 15
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		longest time.Duration
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				start := time.Now()
				err := db.WithTx(ctx, func(tx *ent.Tx) error {
					if waited := time.Since(start); waited > 0 {
						mu.Lock()
						longest = max(longest, waited)
						mu.Unlock()
					}
					_, err := tx.ExecContext(ctx, "INSERT INTO fault_log (id) VALUES ($1)", w*each+i)
					time.Sleep(4 * time.Millisecond)
					return err
				})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Len(t, logIDs(t, db), writers*each)
	t.Logf("longest wait for the write lock: %s", longest)
}

// A writer that gives up waiting (its context ends) leaves no turn behind:
// the next writer gets in as soon as the holder commits.
func TestFaultSQLiteQueueCancelled(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t, dbtest.SQLite)
	ctx := t.Context()
	createFaultLog(t, db)
	locked, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- db.WithTx(ctx, func(tx *ent.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO fault_log (id) VALUES (1)")
			close(locked)
			<-release
			return err
		})
	}()
	<-locked
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := db.SQL().ExecContext(short, "INSERT INTO fault_log (id) VALUES (2)")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
	require.NoError(t, <-holder)
	start := time.Now()
	_, err = db.SQL().ExecContext(ctx, "INSERT INTO fault_log (id) VALUES (3)")
	require.NoError(t, err)
	require.Less(t, time.Since(start), time.Second)
	require.Equal(t, map[int64]bool{1: true, 3: true}, logIDs(t, db))
}

// A transaction begun with an Exec of BEGIN (not BeginTx) keeps its turn until
// its COMMIT: a writer of this process waits for it, and PRAGMAs and reads on
// other connections do not.
func TestFaultSQLiteQueueManualBegin(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t, dbtest.SQLite, dbtest.WithConfig(func(c *database.Config) {
		c.SQLiteBusyTimeout = 200 * time.Millisecond
	}))
	ctx := t.Context()
	createFaultLog(t, db)
	conn, err := db.SQL().Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "/* manual */ BEGIN IMMEDIATE")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "INSERT INTO fault_log (id) VALUES (1)")
	require.NoError(t, err)

	_, err = db.SQL().ExecContext(ctx, "PRAGMA busy_timeout = 200")
	require.NoError(t, err, "a PRAGMA does not queue")
	var n int
	require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM fault_log").Scan(&n))
	require.Zero(t, n, "a read does not queue, and sees the last commit")
	_, err = db.SQL().ExecContext(ctx, "INSERT INTO fault_log (id) VALUES (2)")
	require.ErrorIs(t, err, database.ErrTimeout, "a writer waits for the manual transaction")

	_, err = conn.ExecContext(ctx, "COMMIT")
	require.NoError(t, err)
	_, err = db.SQL().ExecContext(ctx, "INSERT INTO fault_log (id) VALUES (3)")
	require.NoError(t, err)
	require.Equal(t, map[int64]bool{1: true, 3: true}, logIDs(t, db))
}
