package database_test

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// retryCounter is a slog handler that counts the statement lock retries
// Migrate logs.
type retryCounter struct{ n atomic.Int64 }

func (h *retryCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *retryCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "timed out waiting for its lock") {
		h.n.Add(1)
	}
	return nil
}
func (h *retryCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *retryCounter) WithGroup(string) slog.Handler      { return h }

// appender appends messages to one chat in a loop and records each append's
// latency and error.
type appender struct {
	mu    sync.Mutex
	lat   []time.Duration
	errs  []error
	count atomic.Int64
}

func (a *appender) run(ctx context.Context, s *store.Store, as context.Context, chat store.NewMessage) {
	for ctx.Err() == nil {
		start := time.Now()
		_, err := s.AppendMessage(as, chat)
		d := time.Since(start)
		a.mu.Lock()
		if err != nil {
			a.errs = append(a.errs, err)
		} else {
			a.lat = append(a.lat, d)
		}
		a.mu.Unlock()
		a.count.Add(1)
	}
}

// stats returns the appends' p50, p99 and maximum latencies, how many
// succeeded, and how many took longer than slow.
func (a *appender) stats(slow time.Duration) (p50, p99, maxLat time.Duration, n, slowN int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := slices.Clone(a.lat)
	slices.Sort(l)
	if len(l) == 0 {
		return 0, 0, 0, 0, 0
	}
	for _, d := range l {
		if d > slow {
			slowN++
		}
	}
	return l[len(l)/2], l[(len(l)*99)/100], l[len(l)-1], len(l), slowN
}

// appendUntil runs an appender until stop is closed; it returns the appender
// and a function that stops it and waits for its last append.
func appendUntil(t *testing.T, s *store.Store, as context.Context, msg store.NewMessage, stop <-chan struct{}) (*appender, func()) {
	a := &appender{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.run(ctx, s, as, msg)
	}()
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	t.Cleanup(cancel)
	return a, func() { cancel(); <-done }
}

// TestMigrateStatementLockTimeout: a long transaction holds a lock on messages
// (ACCESS SHARE, which appends do not conflict with) while a migration alters
// messages with a 200ms lock_timeout per statement. The ALTER's queued ACCESS
// EXCLUSIVE request gives up after each 200ms, so appends keep succeeding
// while it waits and retries; it applies once the blocker commits. A blocker
// that outlasts the retries fails the run with a *StatementLockTimeoutError
// naming the file and the (truncated) statement, nothing of the file applied.
func TestMigrateStatementLockTimeout(t *testing.T) {
	t.Parallel()
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			counter := &retryCounter{}
			cfg := database.Config{URL: migScratchPostgres(t), Driver: drv, MaxOpenConns: 8, Logger: slog.New(counter)}
			db := migOpen(t, cfg)
			require.NoError(t, database.Migrate(ctx, db))
			blockerDB := migOpen(t, database.Config{URL: cfg.URL, Driver: drv, MaxOpenConns: 2})

			s := store.New(db)
			u, err := s.CreateUser(viewer.SystemContext(ctx), store.NewUser{Email: "lock-" + drv + "@example.com", DisplayName: "Lock"})
			require.NoError(t, err)
			as := viewer.NewContext(ctx, u.ID)
			c, err := s.CreateAssistantChat(as, "locks")
			require.NoError(t, err)
			msg := store.NewMessage{ChatID: c.ID, Content: "x"}

			// Appends without a migration waiting, for the baseline.
			stop := make(chan struct{})
			base, wait := appendUntil(t, s, as, msg, stop)
			time.Sleep(time.Second)
			close(stop)
			wait()
			require.Empty(t, base.errs)

			addX := migrate.NewLocalFile("29990101000000_lock_x.sql", []byte(
				"CREATE TABLE lock_marker_x (id integer);\nALTER TABLE messages ADD COLUMN lock_x integer;\n"))
			long := "ALTER TABLE messages ADD COLUMN lock_y text DEFAULT '" + strings.Repeat("y", 300) + "';\n"
			addY := migrate.NewLocalFile("29990102000000_lock_y.sql", []byte(
				"CREATE TABLE lock_marker_y (id integer);\n"+long))

			// (a), (b): the blocker commits once the migration has retried
			// four times and appends went through while it waited.
			blocker, err := blockerDB.SQL().BeginTx(ctx, nil)
			require.NoError(t, err)
			_, err = blocker.ExecContext(ctx, "LOCK TABLE messages IN ACCESS SHARE MODE")
			require.NoError(t, err)
			stop = make(chan struct{})
			during, wait := appendUntil(t, s, as, msg, stop)
			migrated := make(chan error, 1)
			go func() {
				migrated <- database.Migrate(ctx, db, database.WithDir(migDir(t, database.Postgres, addX)),
					database.WithStatementLockTimeout(200*time.Millisecond), database.WithStatementLockRetries(50))
			}()
			liveness, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			for counter.n.Load() < 4 || during.count.Load() < 20 {
				select {
				case err := <-migrated:
					t.Fatalf("migration ended while the blocker held its lock: %v", err)
				case <-liveness.Done():
					t.Fatalf("appends stalled behind the waiting migration: %d appends, %d retries", during.count.Load(), counter.n.Load())
				case <-time.After(20 * time.Millisecond):
				}
			}
			retries := counter.n.Load()
			close(stop)
			wait()
			require.Empty(t, during.errs, "no append fails while the migration waits")
			require.NoError(t, blocker.Commit())
			require.NoError(t, <-migrated)
			var hasX bool
			require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'messages' AND column_name = 'lock_x')").Scan(&hasX))
			require.True(t, hasX)
			b50, b99, bmax, bn, _ := base.stats(100 * time.Millisecond)
			d50, d99, dmax, dn, dslow := during.stats(100 * time.Millisecond)
			t.Logf("%s: appends without a waiting migration: p50 %v p99 %v max %v (%d in 1s, one appender)", drv, b50, b99, bmax, bn)
			t.Logf("%s: appends while the migration waited behind the blocker, lock_timeout 200ms, %d tries timed out: p50 %v p99 %v max %v (%d appends, %d over 100ms)", drv, retries, d50, d99, dmax, dn, dslow)

			// (c): the blocker outlasts three tries.
			blocker, err = blockerDB.SQL().BeginTx(ctx, nil)
			require.NoError(t, err)
			defer blocker.Rollback()
			_, err = blocker.ExecContext(ctx, "LOCK TABLE messages IN ACCESS SHARE MODE")
			require.NoError(t, err)
			dir := migDir(t, database.Postgres, addX, addY)
			err = database.Migrate(ctx, db, database.WithDir(dir),
				database.WithStatementLockTimeout(200*time.Millisecond), database.WithStatementLockRetries(2))
			require.ErrorIs(t, err, database.ErrStatementLockTimeout)
			require.ErrorIs(t, err, database.ErrMigration)
			require.ErrorIs(t, err, database.ErrTimeout)
			var me *database.MigrationError
			require.ErrorAs(t, err, &me)
			require.Equal(t, "29990102000000_lock_y.sql", me.File)
			var le *database.StatementLockTimeoutError
			require.ErrorAs(t, err, &le)
			require.Equal(t, "29990102000000_lock_y.sql", le.File)
			require.Equal(t, 3, le.Tries)
			require.Equal(t, 200*time.Millisecond, le.Timeout)
			require.True(t, strings.HasPrefix(le.Stmt, "ALTER TABLE messages ADD COLUMN lock_y text DEFAULT 'yyy"), le.Stmt)
			require.Less(t, len(le.Stmt), 210, "the statement is cut short")
			require.Equal(t, le.Stmt, me.Stmt)
			require.Contains(t, err.Error(), "29990102000000_lock_y.sql")
			t.Logf("%s: %v", drv, err)

			var markerY sql.NullString
			require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT to_regclass('lock_marker_y')::text").Scan(&markerY))
			require.False(t, markerY.Valid, "the statement before the timed-out one is rolled back with the file")
			revs := migRevisions(t, db)
			require.Equal(t, "29990101000000", revs[len(revs)-1].version, "no revision of the failed file")
			st, err := database.Migrations(ctx, db, database.WithDir(dir))
			require.NoError(t, err)
			require.Len(t, st.Pending, 1)
			require.Equal(t, "29990102000000", st.Pending[0].Version)

			// Once the blocker ends, the same file applies.
			require.NoError(t, blocker.Rollback())
			require.NoError(t, database.Migrate(ctx, db, database.WithDir(dir), database.WithStatementLockTimeout(200*time.Millisecond)))
			st, err = database.Migrations(ctx, db, database.WithDir(dir))
			require.NoError(t, err)
			require.Empty(t, st.Pending)
		})
	}
}

// TestMigrateStatementLockTimeoutDirective: a file's `-- chatdb:lock_timeout`
// directive sets its statements' lock timeout, also in a txmode none file,
// whose session setting is reset afterwards; a malformed directive is
// refused as invalid input; SQLite ignores the option.
func TestMigrateStatementLockTimeoutDirective(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := migScratchPostgres(t)
	db := migOpen(t, database.Config{URL: url, MaxOpenConns: 1})
	require.NoError(t, database.Migrate(ctx, db))
	blockerDB := migOpen(t, database.Config{URL: url, MaxOpenConns: 1})

	bad := migrate.NewLocalFile("29990101000000_bad.sql", []byte("-- chatdb:lock_timeout soon\n\nSELECT 1;\n"))
	err := database.Migrate(ctx, db, database.WithDir(migDir(t, database.Postgres, bad)))
	require.ErrorIs(t, err, database.ErrInvalid)
	require.ErrorIs(t, err, database.ErrMigration)

	blocker, err := blockerDB.SQL().BeginTx(ctx, nil)
	require.NoError(t, err)
	defer blocker.Rollback()
	_, err = blocker.ExecContext(ctx, "LOCK TABLE messages IN ACCESS SHARE MODE")
	require.NoError(t, err)
	none := migrate.NewLocalFile("29990101000000_none.sql", []byte(
		"-- atlas:txmode none\n-- chatdb:lock_timeout 150ms\n\nALTER TABLE messages ADD COLUMN lock_z integer;\n"))
	dir := migDir(t, database.Postgres, none)
	err = database.Migrate(ctx, db, database.WithDir(dir), database.WithStatementLockRetries(1))
	var le *database.StatementLockTimeoutError
	require.ErrorAs(t, err, &le)
	require.Equal(t, 150*time.Millisecond, le.Timeout, "the file's directive wins over the default")
	require.Equal(t, 2, le.Tries)
	var setting string
	require.NoError(t, db.SQL().QueryRowContext(ctx, "SHOW lock_timeout").Scan(&setting))
	require.Equal(t, "0", setting, "the session's lock_timeout is reset after a txmode none file")
	require.NoError(t, blocker.Rollback())
	require.NoError(t, database.Migrate(ctx, db, database.WithDir(dir)))

	sqliteDB := migOpen(t, database.Config{URL: filepath.Join(t.TempDir(), "chatdb.db")})
	require.NoError(t, database.Migrate(ctx, sqliteDB, database.WithStatementLockTimeout(time.Nanosecond), database.WithStatementLockRetries(0)))
}
