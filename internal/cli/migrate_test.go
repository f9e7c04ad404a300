package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
	"github.com/chatdb/chatdb/migrations"
)

// embeddedFiles returns the names of the migration files built in for dialect.
func embeddedFiles(t *testing.T, dialect string) []string {
	t.Helper()
	dir, err := migrations.Dir(dialect)
	require.NoError(t, err)
	files, err := dir.Files()
	require.NoError(t, err)
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name()
	}
	return names
}

// dialectDirs maps each dialect to its directory under a migrations root.
var dialectDirs = map[string]string{database.Postgres: "postgres", database.SQLite: "sqlite"}

// eachDialect runs fn for both dialect directories, with the dev URL to pass to
// commands that need one.
func eachDialect(t *testing.T, fn func(t *testing.T, dialect, sub, dev string)) {
	t.Helper()
	for dialect, sub := range dialectDirs {
		t.Run(sub, func(t *testing.T) {
			t.Parallel()
			dev := ""
			if dialect == database.Postgres {
				dev = adminURL(t)
			}
			fn(t, dialect, sub, dev)
		})
	}
}

// quote quotes an identifier as dialect's files do.
func quote(dialect, name string) string {
	if dialect == database.SQLite {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

// TestMigrateStatus: status exits 3 while something is pending, listing it, and
// 0 once the database is up to date.
func TestMigrateStatus(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		url := dbtest.EmptyConfig(t, target).URL
		if target == dbtest.SQLite {
			// An empty file: a database without tables (status creates none).
			require.NoError(t, os.WriteFile(url, nil, 0o644))
		}
		args := func(cmd ...string) []string {
			a := append(cmd, "--url", url)
			if target.Postgres() {
				a = append(a, "--driver", target.Driver())
			}
			return a
		}
		files := embeddedFiles(t, target.Dialect())

		code, stdout, stderr := run(t, args("migrate", "status")...)
		require.Equal(t, cli.ExitAttention, code, stderr)
		for _, f := range files {
			require.Regexp(t, `(?m)^pending  `+regexp.QuoteMeta(f)+` +\d+ statements?$`, stdout)
		}
		require.Contains(t, stdout, ": 0 applied, "+strconv.Itoa(len(files))+" pending")
		require.Contains(t, stderr, "pending")
		require.Contains(t, stderr, "chatdb migrate apply")

		// Part way: the directory as it was before the newest file.
		root := migrationsCopy(t)
		sub := dialectDirs[target.Dialect()]
		require.NoError(t, os.Remove(filepath.Join(root, sub, files[len(files)-1])))
		code, _, stderr = run(t, "migrate", "hash", "--dir", root, "--dialect", sub)
		require.Equal(t, cli.ExitOK, code, stderr)
		code, _, stderr = run(t, args("migrate", "apply", "--dir", root)...)
		require.Equal(t, cli.ExitOK, code, stderr)
		code, stdout, stderr = run(t, args("migrate", "status")...)
		require.Equal(t, cli.ExitAttention, code, stderr)
		require.Regexp(t, `(?m)^applied  `+regexp.QuoteMeta(files[0])+` +\d+ statements? +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  \S+$`, stdout)
		require.Regexp(t, `(?m)^pending  `+regexp.QuoteMeta(files[len(files)-1]), stdout)
		code, _, stderr = run(t, args("migrate", "status", "--dir", root)...)
		require.Equal(t, cli.ExitOK, code, "up to date with the shorter directory: %s", stderr)

		code, _, stderr = run(t, args("migrate", "apply")...)
		require.Equal(t, cli.ExitOK, code, stderr)
		code, stdout, stderr = run(t, args("migrate", "status")...)
		require.Equal(t, cli.ExitOK, code, stderr)
		require.Empty(t, stderr)
		require.NotContains(t, stdout, "pending  ")
		require.Contains(t, stdout, ": "+strconv.Itoa(len(files))+" applied, 0 pending")
	})
}

// TestMigrateStatusFailure: a status that cannot be had is an error (1), not
// "pending" (3): a deploy script must not apply on the strength of it. Here the
// files do not match their atlas.sum.
func TestMigrateStatusFailure(t *testing.T) {
	t.Parallel()
	root := migrationsCopy(t)
	files := embeddedFiles(t, database.SQLite)
	path := filepath.Join(root, "sqlite", files[0])
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(b, "-- edited\n"...), 0o644))
	db := filepath.Join(t.TempDir(), "chat.db")
	require.NoError(t, os.WriteFile(db, nil, 0o644))
	code, stdout, stderr := run(t, "migrate", "status", "--url", db, "--dir", root)
	require.Equal(t, cli.ExitError, code, stderr)
	require.Empty(t, stdout)
	require.Contains(t, stderr, files[0]+" was edited")
}

func TestMigrateValidate(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := run(t, "migrate", "validate", "--dir", filepath.Join("..", "..", "migrations"))
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "postgres: ")
	require.Contains(t, stdout, "sqlite: ")
	require.Contains(t, stdout, " is valid ")

	root := migrationsCopy(t)
	files := embeddedFiles(t, database.Postgres)
	path := filepath.Join(root, "postgres", files[len(files)-1])
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(b, "-- one more line\n"...), 0o644))

	code, stdout, stderr = run(t, "migrate", "validate", "--dir", root)
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, stderr, "postgres: ")
	require.Contains(t, stderr, files[len(files)-1]+" was edited")
	require.Contains(t, stderr, "chatdb migrate hash")
	require.Contains(t, stdout, "sqlite: ", "the other dialect is still checked")

	code, _, _ = run(t, "migrate", "validate", "--dir", root, "--dialect", "sqlite")
	require.Equal(t, cli.ExitOK, code)
	code, _, _ = run(t, "migrate", "validate", "--dir", t.TempDir())
	require.Equal(t, cli.ExitError, code, "no directories to validate")
}

// TestMigrateHashAfterEdit is the deliberate-edit flow: an edit breaks
// validation (and apply), hash rewrites atlas.sum, and both pass again.
func TestMigrateHashAfterEdit(t *testing.T) {
	t.Parallel()
	root := migrationsCopy(t)
	files := embeddedFiles(t, database.SQLite)
	path := filepath.Join(root, "sqlite", files[len(files)-1])
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append([]byte("-- Reviewed: chats is rebuilt to add direct_key.\n"), b...), 0o644))

	code, _, _ := run(t, "migrate", "validate", "--dir", root, "--dialect", "sqlite")
	require.Equal(t, cli.ExitError, code)
	db := filepath.Join(t.TempDir(), "chat.db")
	code, _, _ = run(t, "migrate", "apply", "--url", db, "--dir", root)
	require.Equal(t, cli.ExitError, code, "apply refuses the edited directory")

	code, stdout, stderr := run(t, "migrate", "hash", "--dir", root, "--dialect", "sqlite")
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "sqlite: wrote "+filepath.Join(root, "sqlite", "atlas.sum"))

	code, _, stderr = run(t, "migrate", "validate", "--dir", root)
	require.Equal(t, cli.ExitOK, code, stderr)
	code, _, stderr = run(t, "migrate", "apply", "--url", db, "--dir", root)
	require.Equal(t, cli.ExitOK, code, stderr)

	code, stdout, _ = run(t, "migrate", "hash", "--dir", root)
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, stdout, "sqlite: "+filepath.Join(root, "sqlite", "atlas.sum")+" is up to date")
	require.Contains(t, stdout, "postgres: "+filepath.Join(root, "postgres", "atlas.sum")+" is up to date")
}

// addMigration writes the migration file 2999010100000N_NAME.sql, N being the
// last digit of version, into the dialect's directory under root and rewrites
// atlas.sum with `migrate hash`, as a developer who wrote it by hand would.
func addMigration(t *testing.T, root, sub string, version int, name, content string) string {
	t.Helper()
	file := "2999010100000" + strconv.Itoa(version) + "_" + name + ".sql"
	require.NoError(t, os.WriteFile(filepath.Join(root, sub, file), []byte(content), 0o644))
	code, _, stderr := run(t, "migrate", "hash", "--dir", root, "--dialect", sub)
	require.Equal(t, cli.ExitOK, code, stderr)
	return filepath.Join(root, sub, file)
}

// TestMigrateLint: the committed migrations pass; a dropped column and a NOT
// NULL column without a default on an existing table are error-level findings
// (exit status 3), printed as file:line: [analyzer code] message; with an
// atlas:nolint directive giving a reason, the same file passes.
func TestMigrateLint(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, sub, dev string) {
		code, stdout, stderr := run(t, "migrate", "lint", "--dialect", sub, "--dir", filepath.Join("..", "..", "migrations"), "--dev-url", dev)
		require.Equal(t, cli.ExitOK, code, stderr)
		require.Contains(t, stdout, sub+": 1 file(s) linted")
		if dialect == database.SQLite {
			require.Contains(t, stdout, ": 0 error(s), 0 warning(s)")
		} else {
			// The newest file builds an index without CONCURRENTLY: a
			// zero-downtime warning, pinned by the migration package's
			// TestZeroDowntimeCommitted.
			require.Contains(t, stdout, ": 0 error(s), ")
		}

		users := quote(dialect, "users")
		dropColumn := "-- Modify \"users\" table\nALTER TABLE " + users + " DROP COLUMN " + quote(dialect, "display_name") + ";\n"
		notNull := "ALTER TABLE " + users + " ADD COLUMN " + quote(dialect, "locale") + " text NOT NULL;\n"
		for _, tc := range []struct {
			name, sql, want string
		}{
			{"drop_column", dropColumn, `:2: [destructive DS103] Dropping non-virtual column "display_name"`},
			{"not_null", notNull, `:1: [data_depend MF103] Adding a non-nullable "text" column "locale" will fail in case table "users" is not empty`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				root := migrationsCopy(t)
				file := addMigration(t, root, sub, 0, tc.name, tc.sql)
				code, stdout, stderr := run(t, "migrate", "lint", "--latest", "1", "--dialect", sub, "--dir", root, "--dev-url", dev)
				require.Equal(t, cli.ExitAttention, code, stderr)
				require.Contains(t, stdout, file+tc.want+"\n")
				require.Contains(t, stdout, ": 1 error(s), 0 warning(s)")
				require.Contains(t, stderr, "atlas:nolint")

				// The change is intended: say so, with the reason, and re-hash.
				analyzer := strings.Fields(tc.want[strings.Index(tc.want, "[")+1:])[0]
				addMigration(t, root, sub, 0, tc.name, "-- atlas:nolint "+analyzer+" users is empty in every deployment so far\n"+tc.sql)
				code, stdout, stderr = run(t, "migrate", "lint", "--latest", "1", "--dialect", sub, "--dir", root, "--dev-url", dev)
				require.Equal(t, cli.ExitOK, code, stderr)
				require.Contains(t, stdout, ": 0 error(s), 0 warning(s)")

				// A directive without a reason does not count.
				addMigration(t, root, sub, 0, tc.name, "-- atlas:nolint "+analyzer+"\n"+tc.sql)
				code, stdout, _ = run(t, "migrate", "lint", "--dialect", sub, "--dir", root, "--dev-url", dev)
				require.Equal(t, cli.ExitAttention, code)
				require.Contains(t, stdout, "[nolint]")
				require.Contains(t, stdout, tc.want[strings.Index(tc.want, "["):], "the finding stands")
			})
		}
	})
}

// TestMigrateLintOlderFiles: --latest chooses how far back lint looks; a risky
// file older than that is not reviewed again.
func TestMigrateLintOlderFiles(t *testing.T) {
	t.Parallel()
	root := migrationsCopy(t)
	addMigration(t, root, "sqlite", 0, "drop", "ALTER TABLE `users` DROP COLUMN `display_name`;\n")
	addMigration(t, root, "sqlite", 1, "index", "CREATE INDEX `users_status_idx` ON `users` (`status`);\n")

	code, stdout, stderr := run(t, "migrate", "lint", "--dialect", "sqlite", "--dir", root)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "sqlite: 1 file(s) linted (29990101000001_index.sql)")

	code, stdout, _ = run(t, "migrate", "lint", "--dialect", "sqlite", "--dir", root, "--latest", "2")
	require.Equal(t, cli.ExitAttention, code)
	require.Contains(t, stdout, "[destructive DS103]")
}

// TestMigrateLintGitBase: with --git-base, lint reviews the files added since
// that revision, committed or not.
func TestMigrateLintGitBase(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	root := migrationsCopy(t)
	git := func(args ...string) {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", root, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "base")

	code, stdout, stderr := run(t, "migrate", "lint", "--dialect", "sqlite", "--dir", root, "--git-base", "HEAD")
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "sqlite: 0 file(s) linted (none new)")

	addMigration(t, root, "sqlite", 0, "drop", "ALTER TABLE `users` DROP COLUMN `display_name`;\n")
	addMigration(t, root, "sqlite", 1, "index", "CREATE INDEX `users_status_idx` ON `users` (`status`);\n")
	code, stdout, _ = run(t, "migrate", "lint", "--dialect", "sqlite", "--dir", root, "--git-base", "HEAD")
	require.Equal(t, cli.ExitAttention, code)
	require.Contains(t, stdout, "sqlite: 2 file(s) linted (29990101000000_drop.sql to 29990101000001_index.sql)")
	require.Contains(t, stdout, "29990101000000_drop.sql:1: [destructive DS103]")

	code, _, stderr = run(t, "migrate", "lint", "--dialect", "sqlite", "--dir", root, "--git-base", "no-such-branch")
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, stderr, "no-such-branch")
}

func TestMigrateLintUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"migrate", "lint", "--git-base", "HEAD", "--latest", "2"},
		{"migrate", "lint", "--latest", "-1"},
		{"migrate", "lint", "--dialect", "mysql"},
		{"migrate", "lint", "extra"},
		{"migrate", "status", "extra"},
		{"migrate", "validate", "--dialect", "oracle"},
		{"migrate", "hash", "extra"},
		{"migrate", "diff", "--check", "a", "b"},
	} {
		code, _, stderr := run(t, args...)
		require.Equal(t, cli.ExitUsage, code, "%v: %s", args, stderr)
	}
}

// TestMigrateDiffCheck: --check writes nothing, exits 0 when in sync and 3 when
// the schema has a change that no migration has, printing the SQL.
func TestMigrateDiffCheck(t *testing.T) {
	dev := adminURL(t)
	root := migrationsCopy(t)
	before := treeSnapshot(t, root)
	code, stdout, stderr := run(t, "migrate", "diff", "--check", "--dir", root, "--dev-url", dev)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "postgres: no changes")
	require.Contains(t, stdout, "sqlite: no changes")
	require.Equal(t, before, treeSnapshot(t, root))

	// The directory loses its newest file (and has atlas.sum rehashed): the
	// schema is now ahead of it.
	files := embeddedFiles(t, database.SQLite)
	newest := filepath.Join(root, "sqlite", files[len(files)-1])
	removed, err := os.ReadFile(newest)
	require.NoError(t, err)
	require.NoError(t, os.Remove(newest))
	code, _, stderr = run(t, "migrate", "hash", "--dir", root, "--dialect", "sqlite")
	require.Equal(t, cli.ExitOK, code, stderr)
	before = treeSnapshot(t, root)
	code, stdout, stderr = run(t, "migrate", "diff", "--check", "--dir", root, "--dev-url", dev)
	require.Equal(t, cli.ExitAttention, code, stderr)
	require.Contains(t, stdout, "postgres: no changes")
	require.Contains(t, stdout, "sqlite: the schema has changes")
	// What it would write is what the removed file did: its last statement.
	stmts := strings.Split(strings.TrimSpace(string(removed)), "\n")
	require.Contains(t, stdout, stmts[len(stmts)-1])
	require.Contains(t, stderr, "sqlite out of sync")
	require.Equal(t, before, treeSnapshot(t, root), "--check writes nothing")
}

// treeSnapshot reads every file under root.
func treeSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		m[path] = string(b)
		return err
	}))
	return m
}

// TestMigrateListLayout: status and apply --dry-run list files in one layout,
// in aligned columns, and a file of one statement has "1 statement".
func TestMigrateListLayout(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "chat.db")
	require.NoError(t, os.WriteFile(path, nil, 0o644)) // an empty database
	rows := func(out, state string) []string {
		var rs []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, state+"  ") {
				rs = append(rs, l)
			}
		}
		require.NotEmpty(t, rs, out)
		return rs
	}
	// aligned checks that the cell after the file starts in one column.
	aligned := func(rs []string) {
		t.Helper()
		col := -1
		for _, r := range rs {
			i := regexp.MustCompile(`\.sql +`).FindStringIndex(r)
			require.NotNil(t, i, r)
			if col >= 0 {
				require.Equal(t, col, i[1], "columns:\n%s", strings.Join(rs, "\n"))
			}
			col = i[1]
		}
	}
	code, status, stderr := run(t, "migrate", "status", "--url", path)
	require.Equal(t, cli.ExitAttention, code, stderr)
	code, dry, stderr := run(t, "migrate", "apply", "--dry-run", "--url", path)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Equal(t, rows(status, "pending"), rows(dry, "pending"), "one layout")
	aligned(rows(status, "pending"))
	require.Regexp(t, `(?m)^pending  \d{14}_messages_reply_to_idx\.sql +1 statement$`, status)
	require.NotContains(t, status, " 1 statements")

	code, _, stderr = run(t, "migrate", "apply", "--url", path)
	require.Equal(t, cli.ExitOK, code, stderr)
	code, status, stderr = run(t, "migrate", "status", "--url", path)
	require.Equal(t, cli.ExitOK, code, stderr)
	aligned(rows(status, "applied"))
}
