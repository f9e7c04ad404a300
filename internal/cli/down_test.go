package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
)

// downVersion is the version of the extra migration the down tests add after
// the committed ones.
const downVersion = "20991231000000"

// downDir returns a migrations root holding the committed files and, for each
// dialect, one more file downVersion_name.sql with the given content.
func downDir(t *testing.T, name string, content map[string]string) string {
	t.Helper()
	root := migrationsCopy(t)
	for _, sub := range []string{"postgres", "sqlite"} {
		path := filepath.Join(root, sub)
		require.NoError(t, os.WriteFile(filepath.Join(path, downVersion+"_"+name+".sql"), []byte(content[sub]), 0o644))
		dir, err := migrate.NewLocalDir(path)
		require.NoError(t, err)
		files, err := dir.Files()
		require.NoError(t, err)
		sum, err := migrate.NewHashFile(files)
		require.NoError(t, err)
		require.NoError(t, migrate.WriteSumFile(dir, sum))
	}
	return root
}

// downDB returns a migrated database of the test's own, open, and the
// arguments that point a command at it and at root.
func downDB(t *testing.T, target dbtest.Target, root string) (*database.DB, func(...string) []string) {
	t.Helper()
	cfg := dbtest.Config(t, target)
	db, err := database.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	args := func(cmd ...string) []string {
		a := append(cmd, "--url", cfg.URL, "--dir", root)
		if target.Postgres() {
			a = append(a, "--driver", target.Driver())
			if cmd[1] != "status" {
				a = append(a, "--dev-url", adminURL(t))
			}
		}
		return a
	}
	return db, args
}

// countRows runs a query returning one number.
func countRows(t *testing.T, db *database.DB, q string) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL().QueryRowContext(context.Background(), q).Scan(&n), q)
	return n
}

// applied reports whether db records downVersion as applied.
func applied(t *testing.T, db *database.DB, root string) bool {
	t.Helper()
	dir, err := migrate.NewLocalDir(filepath.Join(root, dialectDirs[db.Dialect()]))
	require.NoError(t, err)
	st, err := database.Migrations(context.Background(), db, database.WithDir(dir))
	require.NoError(t, err)
	for _, m := range st.Applied {
		if m.Version == downVersion {
			return true
		}
	}
	return false
}

func hasNickname(t *testing.T, db *database.DB) (column, index bool) {
	t.Helper()
	if db.Dialect() == database.Postgres {
		return countRows(t, db, `SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'users' AND column_name = 'nickname'`) == 1,
			countRows(t, db, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'users_nickname_idx'`) == 1
	}
	return countRows(t, db, `SELECT count(*) FROM pragma_table_info('users') WHERE name = 'nickname'`) == 1,
		countRows(t, db, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'users_nickname_idx'`) == 1
}

var nicknameFile = map[string]string{
	"postgres": `ALTER TABLE "users" ADD COLUMN "nickname" character varying NULL;
CREATE INDEX "users_nickname_idx" ON "users" ("nickname");
`,
	"sqlite": "ALTER TABLE `users` ADD COLUMN `nickname` text NULL;\nCREATE INDEX `users_nickname_idx` ON `users` (`nickname`);\n",
}

var notesFile = map[string]string{
	"postgres": `CREATE TABLE "notes" ("id" bigint NOT NULL, "body" text NOT NULL, PRIMARY KEY ("id"));
`,
	"sqlite": "CREATE TABLE `notes` (`id` integer NOT NULL, `body` text NOT NULL, PRIMARY KEY (`id`));\n",
}

// TestMigrateDown: a file that adds a nullable column and an index is
// reverted (the column and index gone, its revision deleted so status shows
// it pending), after a dry run that changes nothing; apply then applies it
// again.
func TestMigrateDown(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		root := downDir(t, "add_nickname", nicknameFile)
		db, args := downDB(t, target, root)
		code, stdout, stderr := run(t, args("migrate", "apply")...)
		require.Equal(t, cli.ExitOK, code, stdout+stderr)
		col, idx := hasNickname(t, db)
		require.True(t, col && idx)
		require.True(t, applied(t, db, root))

		code, stdout, stderr = run(t, args("migrate", "down", "--dry-run")...)
		require.Equal(t, cli.ExitOK, code, stdout+stderr)
		require.Contains(t, stdout, "reverting 1 file(s)")
		require.Contains(t, stdout, downVersion+"_add_nickname.sql")
		require.Contains(t, stdout, "dry run: nothing changed")
		require.NotContains(t, stdout, "destructive", "the column holds no data")
		if target.Postgres() {
			// The index goes with its column.
			require.Contains(t, stdout, `ALTER TABLE "users" DROP COLUMN "nickname";`)
		}
		col, idx = hasNickname(t, db)
		require.True(t, col && idx, "a dry run changes nothing")
		require.True(t, applied(t, db, root))

		code, stdout, stderr = run(t, args("migrate", "down")...)
		require.Equal(t, cli.ExitOK, code, stdout+stderr)
		require.Contains(t, stdout, "reverted 1 file(s)")
		col, idx = hasNickname(t, db)
		require.False(t, col, "column reverted")
		require.False(t, idx, "index reverted")
		require.False(t, applied(t, db, root), "revision deleted")

		code, stdout, stderr = run(t, args("migrate", "status")...)
		require.Equal(t, cli.ExitAttention, code, stdout+stderr)
		require.Regexp(t, `pending\s+`+downVersion+`_add_nickname\.sql`, stdout)

		code, stdout, stderr = run(t, args("migrate", "apply")...)
		require.Equal(t, cli.ExitOK, code, stdout+stderr)
		require.Contains(t, stdout, "applied 1 file(s)")
		col, idx = hasNickname(t, db)
		require.True(t, col && idx)
		require.True(t, applied(t, db, root))
	})
}

// TestMigrateDownRefusesDestructive: reverting a file that created a table
// now holding rows would drop them: refused, naming the statement, unless
// --allow-destructive.
func TestMigrateDownRefusesDestructive(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		root := downDir(t, "add_notes", notesFile)
		db, args := downDB(t, target, root)
		code, stdout, stderr := run(t, args("migrate", "apply")...)
		require.Equal(t, cli.ExitOK, code, stdout+stderr)
		_, err := db.SQL().ExecContext(context.Background(), `INSERT INTO notes (id, body) VALUES (1, 'x')`)
		require.NoError(t, err)

		code, stdout, stderr = run(t, args("migrate", "down")...)
		require.Equal(t, cli.ExitError, code, stdout+stderr)
		require.Contains(t, stderr, "[destructive DS102]")
		require.Regexp(t, `DROP TABLE .notes.`, stderr)
		require.Contains(t, stderr, "--allow-destructive")
		require.Equal(t, 1, countRows(t, db, `SELECT count(*) FROM notes`), "refused: nothing changed")
		require.True(t, applied(t, db, root))

		code, stdout, stderr = run(t, args("migrate", "down", "--allow-destructive")...)
		require.Equal(t, cli.ExitOK, code, stdout+stderr)
		require.False(t, applied(t, db, root))
		q := `SELECT count(*) FROM sqlite_master WHERE name = 'notes'`
		if target.Postgres() {
			q = `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'notes'`
		}
		require.Equal(t, 0, countRows(t, db, q))
	})
}

// TestMigrateDownCount: more files than are applied, or none applied, is a
// clear error.
func TestMigrateDownCount(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		root := migrationsCopy(t)
		_, args := downDB(t, target, root)
		code, stdout, stderr := run(t, args("migrate", "down", "1000")...)
		require.Equal(t, cli.ExitError, code, stdout+stderr)
		require.Regexp(t, `1000 asked, only \d+ applied`, stderr)

		cfg := dbtest.EmptyConfig(t, target)
		empty, err := database.Open(context.Background(), cfg) // creates the SQLite file
		require.NoError(t, err)
		require.NoError(t, empty.Close())
		a := []string{"migrate", "down", "--url", cfg.URL}
		if target.Postgres() {
			a = append(a, "--driver", target.Driver(), "--dev-url", adminURL(t))
		}
		code, stdout, stderr = run(t, a...)
		require.Equal(t, cli.ExitError, code, stdout+stderr)
		require.Contains(t, stderr, "no migration is applied")

		code, _, stderr = run(t, args("migrate", "down", "0")...)
		require.Equal(t, cli.ExitUsage, code, stderr)
	})
}

// TestMigrateDownWaitsForLock: down takes the lock apply takes; while another
// migrator holds it, down says so and gives up after --lock-timeout, having
// changed nothing.
func TestMigrateDownWaitsForLock(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		root := downDir(t, "add_nickname", nicknameFile)
		db, args := downDB(t, target, root)
		code, stdout, stderr := run(t, args("migrate", "apply")...)
		require.Equal(t, cli.ExitOK, code, stdout+stderr)
		// db.URL() is redacted; the test databases have no password.
		release, err := holdMigrationLock(db.URL())
		require.NoError(t, err)
		code, stdout, stderr = run(t, args("migrate", "down", "--lock-timeout", "100ms")...)
		require.NoError(t, release())
		require.Equal(t, cli.ExitError, code, stdout+stderr)
		require.Contains(t, stderr, "migration lock timeout")
		col, idx := hasNickname(t, db)
		require.True(t, col && idx, "nothing reverted")
		require.True(t, applied(t, db, root))
	})
}
