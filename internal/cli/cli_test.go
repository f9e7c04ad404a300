package cli_test

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
	"github.com/chatdb/chatdb/migrations"
)

// run runs chatdb with args in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Main(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// adminURL returns the PostgreSQL server to create dev databases on (dbtest's,
// so the skip-or-fail rule is the same as everywhere else).
func adminURL(t *testing.T) string {
	t.Helper()
	return dbtest.AdminURL(t)
}

// scratchPostgres creates an empty database, dropped when the test ends, and
// returns its URL.
func scratchPostgres(t *testing.T) string {
	t.Helper()
	return dbtest.EmptyConfig(t, dbtest.PGX).URL
}

// migrationsCopy copies the repository's migrations root into a temporary
// directory.
func migrationsCopy(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, sub := range []string{"postgres", "sqlite"} {
		src := filepath.Join("..", "..", "migrations", sub)
		require.NoError(t, os.MkdirAll(filepath.Join(root, sub), 0o755))
		entries, err := os.ReadDir(src)
		require.NoError(t, err)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(root, sub, e.Name()), b, 0o644))
		}
	}
	return root
}

func TestMigrateDiffInSync(t *testing.T) {
	dev := adminURL(t)
	root := migrationsCopy(t)
	code, stdout, stderr := run(t, "migrate", "diff", "nothing", "--dir", root, "--dev-url", dev)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "postgres: no changes")
	require.Contains(t, stdout, "sqlite: no changes")
	for _, sub := range []string{"postgres", "sqlite"} {
		entries, err := os.ReadDir(filepath.Join(root, sub))
		require.NoError(t, err)
		committed, err := os.ReadDir(filepath.Join("..", "..", "migrations", sub))
		require.NoError(t, err)
		require.Len(t, entries, len(committed), "%s: the committed files and atlas.sum, nothing new", sub)
	}
}

func TestMigrateDiffWritesFile(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	code, stdout, stderr := run(t, "migrate", "diff", "initial", "--dialect", "sqlite", "--dir", root)
	require.Equal(t, cli.ExitOK, code, stderr)
	m := regexp.MustCompile(`sqlite: wrote (\S+_initial\.sql)`).FindStringSubmatch(stdout)
	require.NotNil(t, m, stdout)
	require.FileExists(t, m[1])
	require.FileExists(t, filepath.Join(root, "sqlite", "atlas.sum"))
	require.NoDirExists(t, filepath.Join(root, "postgres"), "--dialect sqlite plans for SQLite only")
}

func TestMigrateDiffDevURLDefaultsToDatabaseURL(t *testing.T) {
	dev := adminURL(t)
	u, err := url.Parse(dev)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), "hunter2") // trust auth ignores it
	t.Setenv("DATABASE_URL", u.String())
	code, _, stderr := run(t, "migrate", "diff", "nothing", "--dialect", "postgres", "--dir", migrationsCopy(t))
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stderr, "temporary database on "+database.Redact(u.String()))
	require.NotContains(t, stderr, "hunter2")
}

// sqliteFiles counts the embedded SQLite migration files.
func sqliteFiles(t *testing.T) int {
	t.Helper()
	dir, err := migrations.Dir(database.SQLite)
	require.NoError(t, err)
	files, err := dir.Files()
	require.NoError(t, err)
	return len(files)
}

func TestMigrateApplySQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "chat.db")

	code, stdout, stderr := run(t, "migrate", "apply", "--url", path, "--dry-run")
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Regexp(t, `pending  \d{14}_initial\.sql +\d+ statements`, stdout)
	require.Contains(t, stdout, fmt.Sprintf("dry run: sqlite://%s does not exist; apply would create it and apply %d file(s)", path, sqliteFiles(t)))
	require.NoFileExists(t, path, "a dry run creates nothing")

	code, stdout, stderr = run(t, "migrate", "apply", "--url", path)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Regexp(t, `applied  \d{14}_initial\.sql  \d+ statements  `, stdout)

	code, stdout, stderr = run(t, "migrate", "apply", "--url", path)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "is up to date")
}

func TestMigrateApplyPostgresHidesPassword(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(scratchPostgres(t))
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), "hunter2") // trust auth ignores it
	code, stdout, stderr := run(t, "migrate", "apply", "--url", u.String())
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Regexp(t, `applied  \d{14}_initial\.sql`, stdout)
	require.NotContains(t, stdout+stderr, "hunter2")
	require.Contains(t, stdout, "xxxxx")
}

func TestMigrateApplyDefaultsToDatabaseURL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env.db")
	t.Setenv("DATABASE_URL", path)
	code, stdout, stderr := run(t, "migrate", "apply")
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, fmt.Sprintf("applied %d file(s) to sqlite://%s", sqliteFiles(t), path))
}

func TestMigrateApplyDirTampered(t *testing.T) {
	t.Parallel()
	root := migrationsCopy(t)
	entries, err := filepath.Glob(filepath.Join(root, "sqlite", "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	b, err := os.ReadFile(entries[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(entries[0], append(b, "-- edited\n"...), 0o644))
	path := filepath.Join(t.TempDir(), "chat.db")

	code, stdout, stderr := run(t, "migrate", "apply", "--url", path, "--dir", root)
	require.Equal(t, cli.ExitError, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "atlas.sum")
	require.Contains(t, stderr, filepath.Base(entries[0])+" was edited")

	// Untouched, the same directory applies.
	code, _, stderr = run(t, "migrate", "apply", "--url", path, "--dir", migrationsCopy(t))
	require.Equal(t, cli.ExitOK, code, stderr)
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"migrate", "diff"},
		{"migrate", "diff", "a", "b"},
		{"migrate", "diff", "x", "--dialect", "mysql"},
		{"migrate", "apply", "extra"},
		{"migrate", "apply", "--no-such-flag"},
		{"no-such-command"},
		{"migrate", "no-such-command"},
	} {
		code, _, stderr := run(t, args...)
		require.Equal(t, cli.ExitUsage, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, "chatdb: ", "%v", args)
		require.Contains(t, stderr, "--help", "%v", args)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	code, stdout, _ := run(t, "migrate", "--help")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, stdout, "diff")
	require.Contains(t, stdout, "apply")
}
