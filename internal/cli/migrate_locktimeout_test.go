package cli_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/cli"
)

// TestMigrateApplyStatementLockTimeout: with a transaction holding a lock on
// messages, apply --statement-lock-timeout 100ms --lock-retries 1 fails with
// exit status 1 naming the file and the statement; once the lock is free the
// same file applies. Negative values are usage errors.
func TestMigrateApplyStatementLockTimeout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := scratchPostgres(t)
	root := migrationsCopy(t)
	code, _, stderr := run(t, "migrate", "apply", "--url", url, "--dir", root)
	require.Equal(t, cli.ExitOK, code, stderr)
	addMigration(t, root, "postgres", 1, "lock_x", "ALTER TABLE messages ADD COLUMN lock_x integer;\n")

	blockerDB, err := database.Open(ctx, database.Config{URL: url, MaxOpenConns: 1})
	require.NoError(t, err)
	defer blockerDB.Close()
	blocker, err := blockerDB.SQL().BeginTx(ctx, nil)
	require.NoError(t, err)
	defer blocker.Rollback()
	_, err = blocker.ExecContext(ctx, "LOCK TABLE messages IN ACCESS SHARE MODE")
	require.NoError(t, err)

	code, _, stderr = run(t, "migrate", "apply", "--url", url, "--dir", root, "--statement-lock-timeout", "100ms", "--lock-retries", "1")
	require.Equal(t, cli.ExitError, code, stderr)
	require.Contains(t, stderr, "29990101000001_lock_x.sql")
	require.Contains(t, stderr, `statement "ALTER TABLE messages ADD COLUMN lock_x integer;"`)
	require.Contains(t, stderr, "could not get its lock within lock_timeout 100ms on any of 2 tries")

	require.NoError(t, blocker.Rollback())
	code, stdout, stderr := run(t, "migrate", "apply", "--url", url, "--dir", root, "--statement-lock-timeout", "100ms")
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "29990101000001_lock_x.sql")

	for _, args := range [][]string{
		{"migrate", "apply", "--url", url, "--statement-lock-timeout", "-1s"},
		{"migrate", "apply", "--url", url, "--lock-retries", "-1"},
	} {
		code, _, stderr := run(t, args...)
		require.Equal(t, cli.ExitUsage, code, "%v: %s", args, stderr)
	}
}
