package migration_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
	"github.com/chatdb/chatdb/migrations"
)

// withFile returns a copy of the embedded directory for dialect with one more
// file, named 29990101000000_NAME.sql, and atlas.sum recomputed over all.
func withFile(t *testing.T, dialect, name, content string) *migrate.MemDir {
	t.Helper()
	src, err := migrations.Dir(dialect)
	require.NoError(t, err)
	files, err := src.Files()
	require.NoError(t, err)
	files = append(files, migrate.NewLocalFile("29990101000000_"+name+".sql", []byte(content)))
	dir := &migrate.MemDir{}
	require.NoError(t, dir.CopyFiles(files))
	return dir
}

// q quotes an identifier as dialect's generated files do.
func q(dialect, name string) string {
	if dialect == database.SQLite {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

// TestLintCommitted: every committed migration passes the lint, the SQLite
// table rebuild of direct_chat_key included (its DROP TABLE is half of a
// rebuild, not a dropped table).
func TestLintCommitted(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		_, dir := committed(t, dialect)
		files, err := dir.Files()
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(files), 2)
		report, err := migration.Lint(t.Context(), dialect, dir, len(files), dev)
		require.NoError(t, err)
		require.Equal(t, migNames(files), report.Files)
		for _, f := range report.Findings {
			// TestShardReadinessCommitted and TestZeroDowntimeCommitted pin those.
			require.Contains(t, []string{migration.ShardAnalyzer, migration.ZeroDowntimeAnalyzer}, f.Analyzer, "%s", f)
		}
		require.False(t, report.Failed())

		if dialect == database.SQLite {
			var rebuild string
			for _, f := range files {
				if strings.HasSuffix(f.Name(), "_direct_chat_key.sql") {
					rebuild = string(f.Bytes())
				}
			}
			require.Contains(t, rebuild, "DROP TABLE `chats`", "direct_chat_key still rebuilds chats on SQLite")
		}
	})
}

func migNames(files []migrate.File) []string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name()
	}
	return names
}

// TestLintFindings: each risky change is reported with its analyzer, code and
// line, at the level LintRules gives it.
func TestLintFindings(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		users := q(dialect, "users")
		for _, tc := range []struct {
			name, sql string
			want      []string // "line: [analyzer code]", in order
			failed    bool
		}{
			{
				name:   "drop_column",
				sql:    "-- Modify \"users\" table\nALTER TABLE " + users + " DROP COLUMN " + q(dialect, "display_name") + ";\n",
				want:   []string{"2: [destructive DS103]"},
				failed: true,
			},
			{
				name:   "not_null_without_default",
				sql:    "ALTER TABLE " + users + " ADD COLUMN " + q(dialect, "locale") + " text NOT NULL;\n",
				want:   []string{"1: [data_depend MF103]"},
				failed: true,
			},
			{
				name: "not_null_with_default",
				sql:  "ALTER TABLE " + users + " ADD COLUMN " + q(dialect, "locale") + " text NOT NULL DEFAULT 'en';\n",
			},
			{
				name:   "unique_index_on_existing_column",
				sql:    "CREATE UNIQUE INDEX " + q(dialect, "users_display_name_key") + " ON " + users + " (" + q(dialect, "display_name") + ");\n",
				want:   []string{"1: [data_depend MF101]"},
				failed: true,
			},
			{
				name:   "rename_column",
				sql:    "ALTER TABLE " + users + " RENAME COLUMN " + q(dialect, "display_name") + " TO " + q(dialect, "name") + ";\n",
				want:   []string{"1: [incompatible BC102]"},
				failed: true,
			},
			{
				name:   "rename_table",
				sql:    "ALTER TABLE " + users + " RENAME TO " + q(dialect, "people") + ";\n",
				want:   []string{"1: [incompatible BC101]"},
				failed: true,
			},
			{
				// The README's promise: chatdb sees the rename, so the directive
				// for it is enough; the community Atlas CLI sees a drop and an
				// add (DS103, MF103), which naming the codes too silences there.
				name: "nolint_incompatible_rename",
				sql: "-- atlas:nolint incompatible every reader moved to the new name in v2\n" +
					"ALTER TABLE " + users + " RENAME COLUMN " + q(dialect, "display_name") + " TO " + q(dialect, "name") + ";\n" +
					"-- atlas:nolint incompatible DS103 MF103 as atlas migrate lint reports it\n" +
					"ALTER TABLE " + users + " RENAME COLUMN " + q(dialect, "email") + " TO " + q(dialect, "address") + ";\n",
			},
			{
				name:   "drop_table",
				sql:    "CREATE TABLE " + q(dialect, "scratch") + " (id integer);\nDROP TABLE " + q(dialect, "messages") + ";\n",
				want:   []string{"2: [destructive DS102]"},
				failed: true,
			},
			{
				name: "table_created_and_dropped",
				sql:  "CREATE TABLE " + q(dialect, "scratch") + " (id integer);\nDROP TABLE " + q(dialect, "scratch") + ";\n",
			},
			{
				name: "nolint_with_reason",
				sql: "-- atlas:nolint destructive the column was never written (see #12)\n" +
					"ALTER TABLE " + users + " DROP COLUMN " + q(dialect, "display_name") + ";\n" +
					"-- atlas:nolint MF103 the table is empty in every deployment\n" +
					"ALTER TABLE " + users + " ADD COLUMN " + q(dialect, "locale") + " text NOT NULL;\n",
			},
			{
				name: "nolint_for_the_file",
				sql: "-- atlas:nolint destructive data_depend chats are rebuilt from the event log\n\n" +
					"ALTER TABLE " + users + " DROP COLUMN " + q(dialect, "display_name") + ";\n" +
					"ALTER TABLE " + users + " ADD COLUMN " + q(dialect, "locale") + " text NOT NULL;\n",
			},
			{
				name: "nolint_other_analyzer",
				sql: "-- atlas:nolint data_depend wrong analyzer named\n" +
					"ALTER TABLE " + users + " DROP COLUMN " + q(dialect, "display_name") + ";\n",
				want:   []string{"2: [destructive DS103]"},
				failed: true,
			},
			{
				name: "nolint_without_reason",
				sql: "-- atlas:nolint destructive\n" +
					"ALTER TABLE " + users + " DROP COLUMN " + q(dialect, "display_name") + ";\n",
				want:   []string{"2: [nolint]", "2: [destructive DS103]"},
				failed: true,
			},
			{
				name: "nolint_without_analyzer",
				sql: "-- atlas:nolint\n" +
					"ALTER TABLE " + users + " DROP COLUMN " + q(dialect, "display_name") + ";\n",
				want:   []string{"2: [nolint]", "2: [destructive DS103]"},
				failed: true,
			},
			{
				name:   "fails_on_replay",
				sql:    "ALTER TABLE " + q(dialect, "no_such_table") + " ADD COLUMN x integer;\n",
				want:   []string{"1: [replay]"},
				failed: true,
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dir := withFile(t, dialect, tc.name, tc.sql)
				report, err := migration.Lint(t.Context(), dialect, dir, 1, dev)
				require.NoError(t, err)
				require.Equal(t, []string{"29990101000000_" + tc.name + ".sql"}, report.Files)
				var got []string
				for _, f := range report.Findings {
					if f.Analyzer == migration.ZeroDowntimeAnalyzer {
						continue // TestZeroDowntimeFindings
					}
					require.Equal(t, "29990101000000_"+tc.name+".sql", f.File)
					require.NotEmpty(t, f.Message)
					s := f.String()
					prefix := f.File + ":"
					require.True(t, strings.HasPrefix(s, prefix), s)
					got = append(got, s[len(prefix):strings.Index(s, "]")+1])
				}
				require.Equal(t, tc.want, got, "findings: %v", report.Findings)
				require.Equal(t, tc.failed, report.Failed())
			})
		}
	})
}

// TestLintSQLiteRebuild: a table rebuild is judged by what it changes. One that
// leaves a column out drops it, and one that adds a NOT NULL column without a
// default depends on the table being empty; both are reported at the rebuild's
// first statement, and the DROP TABLE inside is not.
func TestLintSQLiteRebuild(t *testing.T) {
	t.Parallel()
	rebuild := "PRAGMA foreign_keys = off;\n" +
		"-- Create \"new_users\" table\n" +
		"CREATE TABLE `new_users` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `deleted_at` datetime NULL, `email` text NOT NULL, `status` text NOT NULL DEFAULT ('active'), `locale` text NOT NULL, PRIMARY KEY (`id`));\n" +
		"INSERT INTO `new_users` (`id`, `created_at`, `updated_at`, `deleted_at`, `email`, `status`) SELECT `id`, `created_at`, `updated_at`, `deleted_at`, `email`, `status` FROM `users`;\n" +
		"DROP TABLE `users`;\n" +
		"ALTER TABLE `new_users` RENAME TO `users`;\n" +
		"CREATE UNIQUE INDEX `users_email_key` ON `users` (`email`);\n" +
		"PRAGMA foreign_keys = on;\n"
	report, err := migration.Lint(t.Context(), database.SQLite, withFile(t, database.SQLite, "rebuild", rebuild), 1, "")
	require.NoError(t, err)
	var got []string
	for _, f := range report.Findings {
		got = append(got, f.String())
	}
	require.Equal(t, []string{
		`29990101000000_rebuild.sql:3: [destructive DS103] Dropping non-virtual column "display_name"`,
		`29990101000000_rebuild.sql:3: [data_depend MF103] Adding a non-nullable "text" column "locale" will fail in case table "users" is not empty`,
	}, got)

	nolint := strings.Replace(rebuild, "-- Create \"new_users\" table\n",
		"-- Create \"new_users\" table\n-- atlas:nolint DS103 MF103 display names moved to the profile service; users is empty\n", 1)
	report, err = migration.Lint(t.Context(), database.SQLite, withFile(t, database.SQLite, "rebuild", nolint), 1, "")
	require.NoError(t, err)
	require.Empty(t, report.Findings)
}

func TestLintFileSelection(t *testing.T) {
	t.Parallel()
	dir := withFile(t, database.SQLite, "drop", "ALTER TABLE `users` DROP COLUMN `display_name`;\n")
	files, err := dir.Files()
	require.NoError(t, err)

	report, err := migration.Lint(t.Context(), database.SQLite, dir, 0, "")
	require.NoError(t, err)
	require.Empty(t, report.Files)
	require.False(t, report.Failed())

	report, err = migration.Lint(t.Context(), database.SQLite, dir, 100, "")
	require.NoError(t, err)
	require.Equal(t, migNames(files), report.Files, "more than there are means all")
	require.True(t, report.Failed())

	_, err = migration.Lint(t.Context(), database.SQLite, dir, -1, "")
	require.ErrorIs(t, err, migration.ErrLatest)
	_, err = migration.Lint(t.Context(), "mysql", dir, 1, "")
	require.ErrorIs(t, err, migration.ErrUnknownDialect)
}

// TestLintRefusesTamperedDir: lint checks atlas.sum first, as the Atlas CLI
// does.
func TestLintRefusesTamperedDir(t *testing.T) {
	t.Parallel()
	dir := withFile(t, database.SQLite, "x", "CREATE TABLE x (id integer);\n")
	require.NoError(t, dir.WriteFile("29990101000000_x.sql", []byte("DROP TABLE users;\n")))
	_, err := migration.Lint(t.Context(), database.SQLite, dir, 1, "")
	require.ErrorIs(t, err, database.ErrChecksum)
}

// TestFilesAddedSince works in a git repository of its own: the files a branch
// adds after the base are new, and so is a directory the base does not have.
func TestFilesAddedSince(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	git("init", "-q")
	path := filepath.Join(repo, "migrations", "sqlite")
	require.NoError(t, os.MkdirAll(path, 0o755))
	dir, err := migrate.NewLocalDir(path)
	require.NoError(t, err)
	write := func(name string) {
		t.Helper()
		require.NoError(t, dir.WriteFile(name, []byte("CREATE TABLE t"+name[:3]+" (id integer);\n")))
	}
	write("20250101000000_a.sql")
	git("add", ".")
	git("commit", "-q", "-m", "a")
	git("tag", "base")

	write("20250102000000_b.sql")
	write("20250103000000_c.sql")
	ctx := t.Context()
	n, err := migration.FilesAddedSince(ctx, dir, path, "base")
	require.NoError(t, err)
	require.Equal(t, 2, n, "uncommitted files are new too")

	git("add", ".")
	git("commit", "-q", "-m", "b, c")
	n, err = migration.FilesAddedSince(ctx, dir, path, "HEAD")
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = migration.FilesAddedSince(ctx, dir, path, "HEAD~1")
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// A directory that did not exist at the base is all new.
	other := filepath.Join(repo, "migrations", "postgres")
	require.NoError(t, os.MkdirAll(other, 0o755))
	odir, err := migrate.NewLocalDir(other)
	require.NoError(t, err)
	require.NoError(t, odir.WriteFile("20250101000000_a.sql", []byte("SELECT 1;\n")))
	n, err = migration.FilesAddedSince(ctx, odir, other, "base")
	require.NoError(t, err)
	require.Equal(t, 1, n)

	for _, ref := range []string{"no-such-ref", "--output=/tmp/x"} {
		_, err = migration.FilesAddedSince(ctx, dir, path, ref)
		require.Error(t, err, ref)
	}
}
