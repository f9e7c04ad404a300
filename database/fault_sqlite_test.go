package database_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

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
