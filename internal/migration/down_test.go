package migration_test

import (
	"time"

	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/migration"
	"github.com/chatdb/chatdb/migrations"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// TestDownToEarlierFiles: reverting all files but the first two leaves the
// schema the first two produce (no drift against them), and only those two
// applied.
func TestDownToEarlierFiles(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		db, err := database.Open(t.Context(), dbtest.Config(t, driftTarget(dialect)))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		all, err := migrations.Dir(dialect)
		require.NoError(t, err)
		files, err := all.Files()
		require.NoError(t, err)
		n := len(files) - 2

		plan, err := migration.PlanDown(t.Context(), db, nil, dev, n)
		require.NoError(t, err)
		require.Len(t, plan.Reverted, n)
		require.Equal(t, files[len(files)-1].Name(), plan.Reverted[0], "newest first")
		require.NotEmpty(t, plan.Changes)
		require.Empty(t, plan.Destructive, "the tables are empty")
		require.NoError(t, migration.Down(t.Context(), db, plan, false))

		first, names := firstFiles(t, dialect, 2)
		r, err := migration.Drift(t.Context(), db, first, dev)
		require.NoError(t, err)
		require.Equal(t, names, r.Applied)
		require.False(t, r.Drifted(), "%v", r.Differences)
		st, err := database.Migrations(t.Context(), db)
		require.NoError(t, err)
		require.Len(t, st.Applied, 2)
		require.Len(t, st.Pending, n)

		// And up again.
		require.NoError(t, database.Migrate(t.Context(), db))
		r, err = migration.Drift(t.Context(), db, nil, dev)
		require.NoError(t, err)
		require.False(t, r.Drifted(), "%v", r.Differences)
	})
}

// TestDownBadCount: nothing applied, zero files, or more files than applied.
func TestDownBadCount(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		db, err := database.Open(t.Context(), dbtest.Config(t, driftTarget(dialect)))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		_, err = migration.PlanDown(t.Context(), db, nil, dev, 0)
		require.ErrorIs(t, err, migration.ErrDownCount)
		_, err = migration.PlanDown(t.Context(), db, nil, dev, 1000)
		require.ErrorIs(t, err, migration.ErrDownCount)

		empty, err := database.Open(t.Context(), dbtest.EmptyConfig(t, driftTarget(dialect)))
		require.NoError(t, err)
		t.Cleanup(func() { empty.Close() })
		_, err = migration.PlanDown(t.Context(), empty, nil, dev, 1)
		require.ErrorIs(t, err, migration.ErrNothingApplied)
	})
}

// TestDownStalePlan: a plan whose versions are no longer the newest applied
// (another migrator moved on) is refused under the lock, changing nothing.
func TestDownStalePlan(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		db, err := database.Open(t.Context(), dbtest.Config(t, driftTarget(dialect)))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		plan, err := migration.PlanDown(t.Context(), db, nil, dev, 1)
		require.NoError(t, err)
		st, err := database.Migrations(t.Context(), db)
		require.NoError(t, err)
		plan.Versions = []string{st.Applied[0].Version}
		err = migration.Down(t.Context(), db, plan, false)
		require.ErrorIs(t, err, database.ErrRevertStale)
		after, err := database.Migrations(t.Context(), db)
		require.NoError(t, err)
		require.Equal(t, len(st.Applied), len(after.Applied))
	})
}

// TestDownRechecksDataUnderTheLock: data written between the plan (which saw
// empty tables) and the revert is found under the migration lock, and the
// revert refused with nothing changed, rather than dropped with its columns.
func TestDownRechecksDataUnderTheLock(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		ctx := t.Context()
		db, err := database.Open(ctx, dbtest.Config(t, driftTarget(dialect)))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		all, err := migrations.Dir(dialect)
		require.NoError(t, err)
		files, err := all.Files()
		require.NoError(t, err)
		plan, err := migration.PlanDown(ctx, db, nil, dev, len(files)-2)
		require.NoError(t, err)
		require.Empty(t, plan.Destructive, "the tables are empty")
		require.NotEmpty(t, plan.Guards, "the plan drops columns added since the first two files")

		// A chat arrives: its last_seq and large, columns of later files, hold values.
		s := store.New(db)
		sys := viewer.SystemContext(ctx)
		u, err := s.CreateUser(sys, store.NewUser{Email: "late@example.com", DisplayName: "Late"})
		require.NoError(t, err)
		_, err = s.CreateGroupChat(viewer.NewContext(ctx, u.ID), "Late", nil)
		require.NoError(t, err)

		err = migration.Down(ctx, db, plan, false)
		require.ErrorIs(t, err, database.ErrRevertData)
		require.Contains(t, err.Error(), "DS103")
		st, err := database.Migrations(ctx, db)
		require.NoError(t, err)
		require.Len(t, st.Applied, len(files), "nothing reverted")
		r, err := migration.Drift(ctx, db, nil, dev)
		require.NoError(t, err)
		require.False(t, r.Drifted(), "the schema is untouched: %v", r.Differences)
	})
}

// TestDownWaitsForLocksBounded: on PostgreSQL a revert's statements wait for
// their locks under the statement lock timeout, as a migration file's do, and
// give up cleanly after their tries while a long transaction holds the table:
// nothing reverted, and the application's statements were never queued behind
// an ACCESS EXCLUSIVE request for longer than the timeout.
func TestDownWaitsForLocksBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := database.Open(ctx, dbtest.Config(t, driftTarget(database.Postgres)))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	all, err := migrations.Dir(database.Postgres)
	require.NoError(t, err)
	files, err := all.Files()
	require.NoError(t, err)
	dev := devURL(t)
	plan, err := migration.PlanDown(ctx, db, nil, dev, len(files)-2)
	require.NoError(t, err)

	blocker, err := db.SQL().BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = blocker.ExecContext(ctx, "LOCK TABLE chats IN ACCESS SHARE MODE")
	require.NoError(t, err)
	err = migration.Down(ctx, db, plan, false,
		database.WithStatementLockTimeout(100*time.Millisecond), database.WithStatementLockRetries(1))
	require.ErrorIs(t, err, database.ErrStatementLockTimeout)
	require.NoError(t, blocker.Rollback())
	st, err := database.Migrations(ctx, db)
	require.NoError(t, err)
	require.Len(t, st.Applied, len(files), "nothing reverted")

	// Once the blocker is gone, the same plan reverts.
	require.NoError(t, migration.Down(ctx, db, plan, false, database.WithStatementLockTimeout(100*time.Millisecond)))
	st, err = database.Migrations(ctx, db)
	require.NoError(t, err)
	require.Len(t, st.Applied, 2)
}
