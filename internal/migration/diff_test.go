package migration_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/migration"
	"github.com/chatdb/chatdb/migrations"
)

// devURL returns the PostgreSQL server Diff may create dev databases on: dbtest's,
// so the skip-or-fail rule is the same as everywhere else.
func devURL(t *testing.T) string {
	t.Helper()
	return dbtest.AdminURL(t)
}

// eachDialect runs fn for both dialects with the dev URL to pass to Diff.
func eachDialect(t *testing.T, fn func(t *testing.T, dialect, dev string)) {
	t.Helper()
	for _, d := range migration.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			dev := ""
			if d == database.Postgres {
				dev = devURL(t)
			}
			fn(t, d, dev)
		})
	}
}

// committed copies the repository's migration directory for dialect into a
// temporary directory, so that a test may write to it.
func committed(t *testing.T, dialect string) (string, *migrate.LocalDir) {
	t.Helper()
	sub, err := migrations.DirName(dialect)
	require.NoError(t, err)
	src := filepath.Join("..", "..", "migrations", sub)
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644))
	}
	dir, err := migrate.NewLocalDir(dst)
	require.NoError(t, err)
	return dst, dir
}

// snapshot reads every file of a directory.
func snapshot(t *testing.T, path string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(path)
	require.NoError(t, err)
	m := make(map[string]string)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(path, e.Name()))
		require.NoError(t, err)
		m[e.Name()] = string(b)
	}
	return m
}

// dropCreate removes the statement create from the newest file of files that
// has it: on SQLite a later table rebuild creates an index again, so removing
// it from the first file would change nothing.
func dropCreate(t *testing.T, dir *migrate.LocalDir, files []migrate.File, create string) {
	t.Helper()
	for i := len(files) - 1; i >= 0; i-- {
		if b := string(files[i].Bytes()); strings.Contains(b, create) {
			rewriteFile(t, dir, files[i].Name(), strings.Replace(b, create, "", 1))
			return
		}
	}
	t.Fatalf("no file creates %q", create)
}

// rewrite replaces the first file of dir with content and recomputes atlas.sum,
// as if the directory had been generated that way.
func rewrite(t *testing.T, dir *migrate.LocalDir, content string) {
	t.Helper()
	files, err := dir.Files()
	require.NoError(t, err)
	rewriteFile(t, dir, files[0].Name(), content)
}

// rewriteFile replaces the named file's content and recomputes atlas.sum.
func rewriteFile(t *testing.T, dir *migrate.LocalDir, name, content string) {
	t.Helper()
	require.NoError(t, dir.WriteFile(name, []byte(content)))
	files, err := dir.Files()
	require.NoError(t, err)
	sum, err := migrate.NewHashFile(files)
	require.NoError(t, err)
	require.NoError(t, migrate.WriteSumFile(dir, sum))
}

var fileName = regexp.MustCompile(`^\d{14}_[a-z_]+\.sql$`)

// TestDiffInSync: the committed directories match the ent schema, so Diff writes
// nothing. This is also what keeps ent's desired schema and the one inspected
// after replaying the files from disagreeing forever (a normalisation
// difference would show up here as a new file on every run).
func TestDiffInSync(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		path, dir := committed(t, dialect)
		before := snapshot(t, path)
		file, err := migration.Diff(t.Context(), dialect, dir, "nothing", dev)
		require.NoError(t, err)
		require.Empty(t, file)
		require.Equal(t, before, snapshot(t, path))
	})
}

// TestDiffFromEmpty: planning from nothing gives one file that creates the whole
// schema (what the committed files build step by step), with a valid atlas.sum,
// and a second run gives nothing.
func TestDiffFromEmpty(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		path := t.TempDir()
		dir, err := migrate.NewLocalDir(path)
		require.NoError(t, err)
		file, err := migration.Diff(t.Context(), dialect, dir, "initial", dev)
		require.NoError(t, err)
		require.Regexp(t, fileName, file)
		require.True(t, strings.HasSuffix(file, "_initial.sql"), file)
		got, err := os.ReadFile(filepath.Join(path, file))
		require.NoError(t, err)
		require.NoError(t, migrate.Validate(dir))
		for _, want := range []string{"CONSTRAINT", "_fkey", "_length", "CHECK", "messages_chat_seq_key", "users_email_key", "chats_direct_key_key"} {
			require.Contains(t, string(got), want)
		}

		again, err := migration.Diff(t.Context(), dialect, dir, "again", dev)
		require.NoError(t, err)
		require.Empty(t, again)
	})
}

// TestDiffPlansIndexChanges: an index missing from the directory is created, and
// one the schema no longer has is dropped (ent skips drops unless asked).
func TestDiffPlansIndexChanges(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		path, dir := committed(t, dialect)
		files, err := dir.Files()
		require.NoError(t, err)
		q := `"`
		if dialect == database.SQLite {
			q = "`"
		}
		create := "CREATE INDEX " + q + "messages_sender_idx" + q + " ON " + q + "messages" + q + " (" + q + "sender_id" + q + ");\n"
		dropCreate(t, dir, files, create)
		// The stale index goes into the newest file: an earlier one may rebuild
		// its table (SQLite does) and drop it along the way.
		extra := "CREATE INDEX " + q + "stale_idx" + q + " ON " + q + "chats" + q + " (" + q + "title" + q + ");\n"
		files, err = dir.Files()
		require.NoError(t, err)
		last := files[len(files)-1]
		rewriteFile(t, dir, last.Name(), string(last.Bytes())+extra)

		file, err := migration.Diff(t.Context(), dialect, dir, "fix_indexes", dev)
		require.NoError(t, err)
		require.Regexp(t, fileName, file)
		b, err := os.ReadFile(filepath.Join(path, file))
		require.NoError(t, err)
		require.Contains(t, string(b), "messages_sender_idx")
		require.Contains(t, string(b), "DROP INDEX")
		require.Contains(t, string(b), "stale_idx")
		require.NoError(t, migrate.Validate(dir))

		again, err := migration.Diff(t.Context(), dialect, dir, "again", dev)
		require.NoError(t, err)
		require.Empty(t, again, "the new file brings the directory in sync")
	})
}

func TestDiffRefusesTamperedDir(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		path, dir := committed(t, dialect)
		files, err := dir.Files()
		require.NoError(t, err)
		b := files[0].Bytes()
		b[len(b)-2] = ' ' // after atlas.sum was computed
		require.NoError(t, os.WriteFile(filepath.Join(path, files[0].Name()), b, 0o644))
		before := snapshot(t, path)

		_, err = migration.Diff(t.Context(), dialect, dir, "more", dev)
		require.ErrorIs(t, err, migrate.ErrChecksumMismatch)
		require.Equal(t, before, snapshot(t, path))
	})
}

func TestDiffBadInput(t *testing.T) {
	t.Parallel()
	dir, err := migrate.NewLocalDir(t.TempDir())
	require.NoError(t, err)
	ctx := t.Context()
	for _, name := range []string{"", "two words", "../escape", "semi;colon", strings.Repeat("x", 101)} {
		_, err := migration.Diff(ctx, database.SQLite, dir, name, "")
		require.ErrorIs(t, err, migration.ErrName, "name %q", name)
	}
	_, err = migration.Diff(ctx, "mysql", dir, "x", "")
	require.ErrorIs(t, err, migration.ErrUnknownDialect)
	for _, u := range []string{"", "sqlite://dev.db", "postgres://postgres:secret@[::1"} {
		_, err = migration.Diff(ctx, database.Postgres, dir, "x", u)
		require.ErrorIs(t, err, migration.ErrDevURL)
		require.NotContains(t, err.Error(), "secret")
	}
	files, err := dir.Files()
	require.NoError(t, err)
	require.Empty(t, files)
}
