package cli_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
)

// driftTargets are the targets the drift tests run on: one per dialect (the
// check reads the catalogue, which does not depend on the driver).
var driftTargets = []dbtest.Target{dbtest.SQLite, dbtest.PGX}

// driftDB returns a migrated database of the test's own, a function that runs
// SQL on it by hand, and the arguments that point a command at it.
func driftDB(t *testing.T, target dbtest.Target) (exec func(string), args func(...string) []string) {
	t.Helper()
	cfg := dbtest.Config(t, target)
	db, err := database.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	exec = func(q string) {
		t.Helper()
		_, err := db.SQL().ExecContext(context.Background(), q)
		require.NoError(t, err, q)
	}
	args = func(cmd ...string) []string {
		a := append(cmd, "--url", cfg.URL)
		if target.Postgres() {
			a = append(a, "--driver", target.Driver())
			if cmd[0] != "doctor" {
				a = append(a, "--dev-url", adminURL(t))
			}
		}
		return a
	}
	return exec, args
}

func eachDriftTarget(t *testing.T, fn func(t *testing.T, target dbtest.Target)) {
	for _, target := range driftTargets {
		t.Run(string(target), func(t *testing.T) {
			t.Parallel()
			fn(t, target)
		})
	}
}

// TestMigrateDriftNone: a database as its migrations left it has no drift.
func TestMigrateDriftNone(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		_, args := driftDB(t, target)
		code, stdout, stderr := run(t, args("migrate", "drift")...)
		require.Equal(t, 0, code, stderr)
		require.Regexp(t, `: no drift: the schema is what its \d+ applied migration\(s\) produce\n$`, stdout)
		if target.Postgres() {
			// Without --dev-url: the database's own server.
			a := args("migrate", "drift")
			code, stdout, stderr := run(t, a[:len(a)-2]...)
			require.Equal(t, 0, code, stderr)
			require.Contains(t, stdout, ": no drift:")
			require.Regexp(t, `^replaying the applied migrations on a temporary database on postgres://[^ ]*/postgres\b`, stderr)
		}
	})
}

// TestMigrateDriftColumnAdded: a column added by hand is drift, and the SQL
// that undoes it names the column.
func TestMigrateDriftColumnAdded(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		exec, args := driftDB(t, target)
		exec(`ALTER TABLE users ADD COLUMN nickname text`)
		code, stdout, stderr := run(t, args("migrate", "drift")...)
		require.Equal(t, cli.ExitAttention, code, stderr)
		require.Contains(t, stdout, ": drift: the schema differs")
		require.Contains(t, stdout, `users: column "nickname" is not in the migrations`)
		if target.Postgres() {
			require.Contains(t, stdout, `ALTER TABLE "users" DROP COLUMN "nickname";`)
		} else {
			// SQLite drops a column by rebuilding the table without it.
			require.Contains(t, stdout, "CREATE TABLE `new_users`")
			require.NotContains(t, stdout, "nickname`")
		}
		require.Contains(t, stderr, "difference(s) between")
	})
}

// TestMigrateDriftIndexDropped: an index dropped by hand is drift; the SQL
// creates it again.
func TestMigrateDriftIndexDropped(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		exec, args := driftDB(t, target)
		exec(`DROP INDEX messages_sender_idx`)
		code, stdout, stderr := run(t, args("migrate", "drift")...)
		require.Equal(t, cli.ExitAttention, code, stderr)
		require.Contains(t, stdout, `messages: index "messages_sender_idx" is missing`)
		require.Regexp(t, `CREATE INDEX .messages_sender_idx. ON .messages.`, stdout)
	})
}

// TestMigrateDriftCommentIgnored: comments are not drift (see migration.Drift).
// SQLite has no comments.
func TestMigrateDriftCommentIgnored(t *testing.T) {
	exec, args := driftDB(t, dbtest.PGX)
	exec(`COMMENT ON COLUMN users.email IS 'login address, unique case-insensitively'`)
	exec(`COMMENT ON TABLE messages IS 'chat messages'`)
	code, stdout, stderr := run(t, args("migrate", "drift")...)
	require.Equal(t, 0, code, stdout+stderr)
	require.Contains(t, stdout, ": no drift:")
}

// TestMigrateApplyRefusesDrift: apply checks for drift first and refuses, naming
// migrate drift and --allow-drift; with --allow-drift it applies.
func TestMigrateApplyRefusesDrift(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		exec, args := driftDB(t, target)
		code, stdout, stderr := run(t, args("migrate", "apply")...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "is up to date")

		exec(`ALTER TABLE users ADD COLUMN nickname text`)
		code, stdout, stderr = run(t, args("migrate", "apply")...)
		require.Equal(t, 1, code, stdout)
		require.Contains(t, stderr, "migrate apply: refusing to apply: the schema of ")
		require.Contains(t, stderr, "has drifted from its applied migrations (1 difference(s))")
		require.Contains(t, stderr, "`chatdb migrate drift`")
		require.Contains(t, stderr, "--allow-drift")
		require.NotContains(t, stdout, "up to date")

		code, stdout, stderr = run(t, args("migrate", "apply", "--allow-drift")...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "is up to date")
	})
}

// TestDoctorDrift: doctor's drift line passes on a clean database and fails,
// with the count and the command to run, on a drifted one.
func TestDoctorDrift(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		exec, args := driftDB(t, target)
		code, stdout, stderr := run(t, args("doctor")...)
		require.Equal(t, 0, code, stdout+stderr)
		require.Regexp(t, `(?m)^OK    drift       the schema is what its \d+ applied migration\(s\) produce$`, stdout)

		exec(`DROP INDEX messages_sender_idx`)
		exec(`ALTER TABLE users ADD COLUMN nickname text`)
		code, stdout, stderr = run(t, args("doctor")...)
		require.Equal(t, cli.ExitAttention, code, stdout+stderr)
		require.Regexp(t, `(?m)^FAIL  drift       2 difference\(s\) between the schema and its \d+ applied migration\(s\)$`, stdout)
		require.Contains(t, stdout, "run `chatdb migrate drift` to see them as SQL")
	})
}

// TestMigrateApplyDriftUnknownRevision: a database ahead of apply's files is
// not checked for drift (there is nothing to compare with), and apply says so
// rather than refusing.
func TestMigrateApplyDriftUnknownRevision(t *testing.T) {
	eachDriftTarget(t, func(t *testing.T, target dbtest.Target) {
		_, args := driftDB(t, target)
		root := migrationsCopy(t)
		sub := dialectDirs[target.Dialect()]
		files := embeddedFiles(t, target.Dialect())
		require.NoError(t, os.Remove(filepath.Join(root, sub, files[len(files)-1])))
		code, _, stderr := run(t, "migrate", "hash", "--dir", root, "--dialect", sub)
		require.Equal(t, 0, code, stderr)

		code, stdout, stderr := run(t, args("migrate", "apply", "--dir", filepath.Join(root, sub))...)
		require.Equal(t, 0, code, stdout+stderr)
		require.Contains(t, stderr, "migrate apply: drift not checked: migration: applied revision not in the migration directory: "+files[len(files)-1])
	})
}

// TestMigrateDriftKeyValueURL: a database named by a libpq key/value string
// (the form README recommends for a multi-host cluster) gets its dev database
// on the same server, as a URL does; before, the string was taken for a path
// and the dev database for an SQLite file, so drift, and apply's drift check,
// failed on every such deployment.
func TestMigrateDriftKeyValueURL(t *testing.T) {
	t.Parallel()
	cfg := dbtest.Config(t, dbtest.PGX)
	u, err := url.Parse(cfg.URL)
	require.NoError(t, err)
	kv := fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"))
	code, stdout, stderr := run(t, "migrate", "drift", "--url", kv)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, ": no drift:")
	require.Regexp(t, `^replaying the applied migrations on a temporary database on postgres:///postgres\?`, stderr)
	code, stdout, stderr = run(t, "migrate", "apply", "--url", kv)
	require.Equal(t, 0, code, "apply checks for drift first: stdout:\n%s\nstderr:\n%s", stdout, stderr)
}
