package database_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ariga.io/atlas/sql/postgres"
	atlasschema "ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlclient"
	_ "ariga.io/atlas/sql/sqlite" // the Atlas CLI's SQLite driver, for sqlclient
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
)

// Environment of the helper process of TestMigrateKilledMigrator.
const (
	migHelperMode = "CHATDB_TEST_MIGRATOR_HELPER"
	migHelperURL  = "CHATDB_TEST_MIGRATOR_URL"
)

// migLockKey is the advisory lock key of `atlas migrate apply`, computed here
// independently of the database package: FNV-1 32 of "atlas_migrate_execute".
func migLockKey() int64 {
	h := fnv.New32()
	h.Write([]byte("atlas_migrate_execute"))
	return int64(h.Sum32())
}

// TestMigratorHelperProcess is not a test of its own: TestMigrateKilledMigrator
// runs the test binary again with it selected, as another migrator in a process
// of its own. It takes the migration lock the way a migrator does, prints
// "locked" and its PostgreSQL backend's pid, and holds the lock until it is
// killed:
//
//   - postgres-idle: the advisory lock, then an idle session;
//   - postgres-busy: the advisory lock, then a statement that runs for an hour;
//   - sqlite: an open write transaction with a table created in it.
func TestMigratorHelperProcess(t *testing.T) {
	mode := os.Getenv(migHelperMode)
	if mode == "" {
		t.Skip("the other migrator of TestMigrateKilledMigrator; it runs only in a process of its own")
	}
	ctx := context.Background()
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	db, err := database.Open(ctx, database.Config{URL: os.Getenv(migHelperURL), MaxOpenConns: 1})
	if err != nil {
		fail(err)
	}
	switch mode {
	case "sqlite":
		tx, err := db.SQL().BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
		if err != nil {
			fail(err)
		}
		if _, err := tx.ExecContext(ctx, "CREATE TABLE half_done (id integer)"); err != nil {
			fail(err)
		}
		fmt.Println("locked 0")
	default:
		conn, err := db.SQL().Conn(ctx)
		if err != nil {
			fail(err)
		}
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migLockKey()); err != nil {
			fail(err)
		}
		var pid int
		if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			fail(err)
		}
		fmt.Println("locked", pid)
		if mode == "postgres-busy" {
			_, err := conn.ExecContext(ctx, "SELECT pg_sleep(3600)")
			fail(fmt.Errorf("the statement ended: %w", err))
		}
	}
	time.Sleep(time.Hour)
}

// migStartHelper starts TestMigratorHelperProcess in mode on url, waits until it
// holds the lock, and returns the process and its backend's pid (0 for SQLite).
// The process is killed when the test ends, if it still runs.
func migStartHelper(t *testing.T, mode, url string) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMigratorHelperProcess$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), migHelperMode+"="+mode, migHelperURL+"="+url)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "the helper process ended before taking the lock")
			if pid, found := strings.CutPrefix(l, "locked "); found {
				n, err := strconv.Atoi(pid)
				require.NoError(t, err)
				go func() { // drain, so that the helper never blocks on its stdout
					for range lines {
					}
				}()
				return cmd, n
			}
			require.False(t, strings.HasPrefix(l, "error:"), l)
		case <-timeout:
			t.Fatal("the helper process did not take the lock within 30s")
		}
	}
}

// TestMigrateKilledMigrator: a migrator in another process holds the lock and
// dies. Migrate, started while the lock was held, waits, then applies every file
// within a bounded time once the lock is gone, and nothing of the dead
// migrator's unfinished work remains.
//
// A PostgreSQL session lock dies with its session: killing an idle client ends
// the session at once (the server reads the closed socket). A client killed in
// the middle of a statement leaves its backend running that statement, lock
// held, until the statement ends (or until client_connection_check_interval, off
// by default, notices); pg_terminate_backend ends it. On SQLite the lock is the
// file lock, which the operating system releases with the process, and the
// open transaction is rolled back.
func TestMigrateKilledMigrator(t *testing.T) {
	for _, mode := range []string{"sqlite", "postgres-idle", "postgres-busy"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cfg := database.Config{URL: filepath.Join(t.TempDir(), "killed.db"), SQLiteBusyTimeout: time.Minute}
			if mode != "sqlite" {
				cfg = database.Config{URL: migScratchPostgres(t)}
			}
			helper, pid := migStartHelper(t, mode, cfg.URL)
			db := migOpen(t, cfg)

			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- database.Migrate(ctx, db) }()
			blocked := func(why string) {
				t.Helper()
				select {
				case err := <-done:
					t.Fatalf("Migrate returned while %s: %v", why, err)
				case <-time.After(500 * time.Millisecond):
				}
			}
			blocked("the other migrator held the lock")

			require.NoError(t, helper.Process.Kill()) // SIGKILL: no clean-up of its own
			_ = helper.Wait()
			released := time.Now()
			if mode == "postgres-busy" {
				var check string
				require.NoError(t, db.SQL().QueryRowContext(t.Context(),
					"SELECT coalesce(current_setting('client_connection_check_interval', true), '0')").Scan(&check))
				if check == "0" {
					blocked("the dead client's backend still ran its statement")
				}
				var ok bool
				require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT pg_terminate_backend($1)", pid).Scan(&ok))
				require.True(t, ok)
				released = time.Now()
			}

			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("Migrate did not proceed within 30s of the lock's release")
			}
			require.Less(t, time.Since(released), 30*time.Second)
			tables := migTables(t, db)
			require.Subset(t, tables, migAppTables)
			require.NotContains(t, tables, "half_done", "the dead migrator's transaction is rolled back")
			require.Len(t, migRevisions(t, db), len(migEmbedded(t, db.Dialect())))
		})
	}
}

// migHoldLock takes the migration lock on cfg's database as another migrator
// would, and returns what releases it (also called when the test ends):
// PostgreSQL's advisory lock on a session of its own, SQLite's write lock in an
// open transaction.
func migHoldLock(t *testing.T, cfg database.Config) (release func()) {
	t.Helper()
	holder := migOpen(t, cfg)
	var undo func() error
	if holder.Dialect() == database.Postgres {
		conn, err := holder.SQL().Conn(t.Context())
		require.NoError(t, err)
		_, err = conn.ExecContext(t.Context(), "SELECT pg_advisory_lock($1)", migLockKey())
		require.NoError(t, err)
		undo = func() error {
			_, err := conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", migLockKey())
			return errors.Join(err, conn.Close())
		}
	} else {
		tx, err := holder.SQL().BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: the write lock
		require.NoError(t, err)
		undo = tx.Rollback
	}
	var once sync.Once
	release = func() { once.Do(func() { require.NoError(t, undo()) }) }
	t.Cleanup(release)
	return release
}

// TestMigrateLockTimeout: with WithLockTimeout, Migrate waits for a lock that
// another migrator holds for that long, reports the wait once through
// WithLockWait, then gives up with ErrLockTimeout, having applied nothing.
// Once the lock is free it applies everything.
func TestMigrateLockTimeout(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		release := migHoldLock(t, cfg)

		const timeout = 300 * time.Millisecond
		waits := 0
		start := time.Now()
		err := database.Migrate(t.Context(), db, database.WithLockTimeout(timeout), database.WithLockWait(func() { waits++ }))
		require.ErrorIs(t, err, database.ErrLockTimeout)
		require.ErrorIs(t, err, database.ErrTimeout)
		require.GreaterOrEqual(t, time.Since(start), timeout)
		require.Less(t, time.Since(start), 10*time.Second)
		require.Contains(t, err.Error(), timeout.String())
		require.Equal(t, 1, waits, "the wait is reported once")
		require.Empty(t, migTables(t, db), "nothing is applied without the lock")

		release()
		waits = 0
		require.NoError(t, database.Migrate(t.Context(), db, database.WithLockTimeout(timeout), database.WithLockWait(func() { waits++ })))
		require.Zero(t, waits, "a free lock is not waited for")
		require.Subset(t, migTables(t, db), migAppTables)
	})
}

// TestMigrateLockTimeoutZero: WithLockTimeout(0) waits for as long as the
// context allows, on SQLite too, where Migrate otherwise waits for
// Config.SQLiteBusyTimeout.
func TestMigrateLockTimeoutZero(t *testing.T) {
	t.Parallel()
	cfg := database.Config{URL: filepath.Join(t.TempDir(), "zero.db"), SQLiteBusyTimeout: 100 * time.Millisecond}
	db := migOpen(t, cfg)
	release := migHoldLock(t, cfg)

	err := database.Migrate(t.Context(), db)
	require.ErrorIs(t, err, database.ErrLockTimeout, "by default, SQLite waits for its busy timeout")

	done := make(chan error, 1)
	waiting := make(chan struct{})
	go func() {
		done <- database.Migrate(t.Context(), db, database.WithLockTimeout(0), database.WithLockWait(func() { close(waiting) }))
	}()
	<-waiting
	select {
	case err := <-done:
		t.Fatalf("Migrate returned while the lock was held: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	release()
	require.NoError(t, <-done)
}

// TestMigrateAndAtlasLocks checks what atlas.hcl and the README say about
// running chatdb and the Atlas CLI at once, with the Atlas CLI's own locking
// code (its drivers' Lock, as `atlas migrate apply` calls it): on PostgreSQL
// they share the advisory lock, so Migrate waits while Atlas holds it; on
// SQLite they share no lock, so Migrate goes ahead while Atlas's lock file is
// there, and leaves it alone.
func TestMigrateAndAtlasLocks(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		cfg := database.Config{URL: migScratchPostgres(t)}
		db, holder := migOpen(t, cfg), migOpen(t, cfg)
		drv, err := postgres.Open(holder.SQL())
		require.NoError(t, err)
		unlock, err := drv.(atlasschema.Locker).Lock(t.Context(), "atlas_migrate_execute", 0)
		require.NoError(t, err)
		err = database.Migrate(t.Context(), db, database.WithLockTimeout(200*time.Millisecond))
		require.ErrorIs(t, err, database.ErrLockTimeout)
		require.NoError(t, unlock())
		require.NoError(t, database.Migrate(t.Context(), db, database.WithLockTimeout(200*time.Millisecond)))
	})
	t.Run("sqlite", func(t *testing.T) {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp) // where Atlas puts its lock file
		path := filepath.Join(t.TempDir(), "chatdb.db")
		client, err := sqlclient.Open(t.Context(), "sqlite://"+path) // as atlas.hcl's sqlite env does
		require.NoError(t, err)
		defer client.Close()
		unlock, err := client.Driver.(atlasschema.Locker).Lock(t.Context(), "atlas_migrate_execute", time.Hour)
		require.NoError(t, err)
		defer unlock()
		files, err := filepath.Glob(filepath.Join(tmp, "*.lock"))
		require.NoError(t, err)
		require.Len(t, files, 1, "the Atlas CLI's SQLite lock is a file in the temporary directory")
		before, err := os.ReadFile(files[0])
		require.NoError(t, err)

		db := migOpen(t, database.Config{URL: path})
		require.NoError(t, database.Migrate(t.Context(), db, database.WithLockTimeout(200*time.Millisecond)),
			"chatdb does not take the Atlas CLI's lock file")
		after, err := os.ReadFile(files[0])
		require.NoError(t, err)
		require.Equal(t, before, after)
	})
}
