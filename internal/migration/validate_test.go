package migration_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
)

func TestValidateCommitted(t *testing.T) {
	t.Parallel()
	for _, dialect := range migration.Dialects() {
		_, dir := committed(t, dialect)
		require.NoError(t, migration.Validate(dialect, dir), dialect)
	}
}

func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, content string
		want                error
	}{
		{"unclosed quote", "29990101000000_quote.sql", "INSERT INTO users (email) VALUES ('oops);\n", migration.ErrInvalidFile},
		{"no version", "quote.sql", "SELECT 1;\n", migration.ErrInvalidFile},
		{"no name", "29990101000000.sql", "SELECT 1;\n", migration.ErrInvalidFile},
		{"version taken", "20261125231914_again.sql", "SELECT 1;\n", migration.ErrInvalidFile},
		{"no statements", "29990101000000_empty.sql", "-- nothing here\n", migration.ErrInvalidFile},
	} {
		for _, dialect := range migration.Dialects() {
			path, dir := committed(t, dialect)
			require.NoError(t, os.WriteFile(filepath.Join(path, tc.file), []byte(tc.content), 0o644))
			_, err := migration.Hash(dir) // the sum is right; the file is not
			require.NoError(t, err)
			err = migration.Validate(dialect, dir)
			require.ErrorIs(t, err, tc.want, "%s: %s", dialect, tc.name)
			require.Contains(t, err.Error(), tc.file)
		}
	}
}

// TestHashAfterEdit is the deliberate-edit flow: an edited file fails
// validation until hash rewrites atlas.sum, and hashing again changes nothing.
func TestHashAfterEdit(t *testing.T) {
	t.Parallel()
	for _, dialect := range migration.Dialects() {
		path, dir := committed(t, dialect)
		files, err := dir.Files()
		require.NoError(t, err)
		last := files[len(files)-1]
		edited := strings.Replace(string(last.Bytes()), "\n", "\n-- atlas:nolint destructive reviewed by the on-call DBA\n", 1)
		require.NoError(t, os.WriteFile(filepath.Join(path, last.Name()), []byte(edited), 0o644))

		err = migration.Validate(dialect, dir)
		require.ErrorIs(t, err, database.ErrChecksum)
		var ce *database.ChecksumError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, last.Name(), ce.File)
		require.Equal(t, "edited", ce.Reason)

		changed, err := migration.Hash(dir)
		require.NoError(t, err)
		require.True(t, changed)
		require.NoError(t, migration.Validate(dialect, dir))
		require.NoError(t, migrate.Validate(dir), "the Atlas CLI agrees")

		before := snapshot(t, path)
		changed, err = migration.Hash(dir)
		require.NoError(t, err)
		require.False(t, changed)
		require.Equal(t, before, snapshot(t, path))
	}
}

// TestHashWithoutSum: hash writes a missing atlas.sum.
func TestHashWithoutSum(t *testing.T) {
	t.Parallel()
	path, dir := committed(t, database.SQLite)
	require.NoError(t, os.Remove(filepath.Join(path, migrate.HashFileName)))
	require.ErrorIs(t, migration.Validate(database.SQLite, dir), database.ErrChecksum)
	changed, err := migration.Hash(dir)
	require.NoError(t, err)
	require.True(t, changed)
	require.NoError(t, migration.Validate(database.SQLite, dir))
}

// TestCheck: Check reports what Diff would write without writing it.
func TestCheck(t *testing.T) {
	eachDialect(t, func(t *testing.T, dialect, dev string) {
		path, dir := committed(t, dialect)
		before := snapshot(t, path)
		f, err := migration.Check(t.Context(), dialect, dir, dev)
		require.NoError(t, err)
		require.Nil(t, f, "the committed directory is in sync")

		// Drop an index from the files, as if the schema had gained it.
		files, err := dir.Files()
		require.NoError(t, err)
		initial := string(files[0].Bytes())
		create := "CREATE INDEX " + q(dialect, "messages_sender_idx") + " ON " + q(dialect, "messages") + " (" + q(dialect, "sender_id") + ");\n"
		dropCreate(t, dir, files, create)
		before = snapshot(t, path)

		f, err = migration.Check(t.Context(), dialect, dir, dev)
		require.NoError(t, err)
		require.NotNil(t, f)
		require.Regexp(t, fileName, f.Name())
		require.Contains(t, string(f.Bytes()), "messages_sender_idx")
		require.Equal(t, before, snapshot(t, path), "Check writes nothing")

		// A tampered directory is refused, not planned against.
		require.NoError(t, os.WriteFile(filepath.Join(path, files[0].Name()), []byte(initial+"-- edited\n"), 0o644))
		_, err = migration.Check(t.Context(), dialect, dir, dev)
		require.ErrorIs(t, err, migrate.ErrChecksumMismatch)
	})
}
