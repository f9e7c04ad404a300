package database_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// userRows returns n rows for the users table's copyColumns.
func userRows(prefix string, n int) [][]any {
	now := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{uuid.New(), now, now, fmt.Sprintf("%s-%d@example.com", prefix, i), "User", "active", nil}
	}
	return rows
}

var copyColumns = []string{"id", "created_at", "updated_at", "email", "display_name", "status", "deleted_at"}

func TestCopyFrom(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		ctx := t.Context()
		count := func() int {
			t.Helper()
			var n int
			require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n))
			return n
		}
		copyIn := func(rows [][]any, commit bool) (int64, error) {
			t.Helper()
			conn, err := db.SQL().Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			tx, err := conn.BeginTx(ctx, nil)
			require.NoError(t, err)
			n, err := db.CopyFrom(ctx, conn, "users", copyColumns, rows)
			if err != nil || !commit {
				require.NoError(t, tx.Rollback())
				return n, err
			}
			return n, tx.Commit()
		}

		// More rows than one SQLite statement carries (7 columns, 32766
		// parameters), so the SQLite path splits them.
		n, err := copyIn(userRows("a", 5000), true)
		require.NoError(t, err)
		require.EqualValues(t, 5000, n)
		require.Equal(t, 5000, count())

		// The rows belong to the transaction.
		_, err = copyIn(userRows("b", 10), false)
		require.NoError(t, err)
		require.Equal(t, 5000, count())

		// A duplicate key is a conflict, and nothing of the batch stays.
		rows := userRows("c", 3)
		rows[2][3] = "a-7@example.com"
		_, err = copyIn(rows, true)
		require.ErrorIs(t, err, database.ErrConflict)
		require.Equal(t, 5000, count())

		// Values come back as written.
		id := uuid.New()
		at := time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC)
		deleted := at.Add(time.Hour)
		_, err = copyIn([][]any{{id, at, at, "typed@example.com", "Typed", "suspended", deleted}}, true)
		require.NoError(t, err)
		var (
			email, status string
			created, gone time.Time
		)
		q := "SELECT email, status, deleted_at, created_at FROM users WHERE id = $1"
		require.NoError(t, db.SQL().QueryRowContext(ctx, q, id).Scan(&email, &status, &gone, &created))
		require.Equal(t, "typed@example.com", email)
		require.Equal(t, "suspended", status)
		require.True(t, deleted.Equal(gone), "%v != %v", deleted, gone)
		require.True(t, at.Equal(created), "%v != %v", at, created)

		// Bad input.
		_, err = copyIn([][]any{{uuid.New()}}, true)
		require.Error(t, err)
		n, err = copyIn(nil, true)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}
