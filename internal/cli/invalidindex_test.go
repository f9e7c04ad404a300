package cli_test

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
)

// TestInvalidIndexReported: a CREATE UNIQUE INDEX CONCURRENTLY that fails on
// duplicates leaves an INVALID index behind, for real; `migrate status` and
// `doctor` find it, say how to repair it, and exit 3 until it is repaired.
func TestInvalidIndexReported(t *testing.T) {
	t.Parallel()
	target := dbtest.PGX
	cfg := dbtest.Config(t, target)
	db, err := sql.Open("pgx", cfg.URL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	_, err = db.ExecContext(ctx, `INSERT INTO users (id, created_at, updated_at, email, display_name) VALUES
		(gen_random_uuid(), now(), now(), 'a@example.com', 'Same'), (gen_random_uuid(), now(), now(), 'b@example.com', 'Same')`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `CREATE UNIQUE INDEX CONCURRENTLY "users_display_name_key" ON "users" ("display_name")`)
	require.Error(t, err, "the duplicates make the concurrent build fail")

	code, stdout, stderr := run(t, "migrate", "status", "--url", cfg.URL)
	require.Equal(t, cli.ExitAttention, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "0 pending")
	require.Contains(t, stdout, "1 invalid index(es)")
	require.Contains(t, stdout, "public.users_display_name_key on users")
	require.Contains(t, stdout, `DROP INDEX CONCURRENTLY "public"."users_display_name_key"; then CREATE UNIQUE INDEX CONCURRENTLY users_display_name_key ON public.users USING btree (display_name); or REINDEX INDEX CONCURRENTLY "public"."users_display_name_key"`)
	require.Equal(t, "chatdb: migrate status: 1 invalid index(es); repair them as shown\n", stderr)

	code, stdout, stderr = run(t, append([]string{"doctor"}, dbArgs(target, cfg)...)...)
	require.Equal(t, cli.ExitAttention, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Regexp(t, `(?m)^FAIL  migrations  \d+ applied, 0 pending; 1 invalid index\(es\), .*: public\.users_display_name_key on users$`, stdout)
	require.Regexp(t, `(?m)^ +-> repair .*DROP INDEX CONCURRENTLY "public"\."users_display_name_key"`, stdout)
	// The index is also one the migrations do not make: drift.
	require.Regexp(t, `(?m)^FAIL  drift       1 difference\(s\)`, stdout)
	require.Contains(t, stdout, "5 ok, 2 failed, 0 skipped")
	require.Equal(t, "chatdb: doctor: 2 check(s) failed: migrations, drift\n", stderr)

	// Repaired as told: the duplicate goes, and the index is built again.
	_, err = db.ExecContext(ctx, "DELETE FROM users WHERE email = 'b@example.com'")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `REINDEX INDEX CONCURRENTLY "public"."users_display_name_key"`)
	require.NoError(t, err)
	code, stdout, stderr = run(t, "migrate", "status", "--url", cfg.URL)
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.NotContains(t, stdout, "invalid")
	code, stdout, _ = run(t, append([]string{"doctor"}, dbArgs(target, cfg)...)...)
	require.Equal(t, cli.ExitAttention, code, stdout)
	require.Regexp(t, `(?m)^OK    migrations  `, stdout)
	require.Regexp(t, `(?m)^FAIL  drift       1 difference\(s\)`, stdout, "a valid index made by hand is still drift")

	// Gone, as the migrations have it: nothing to report.
	_, err = db.ExecContext(ctx, `DROP INDEX CONCURRENTLY "public"."users_display_name_key"`)
	require.NoError(t, err)
	code, stdout, _ = run(t, append([]string{"doctor"}, dbArgs(target, cfg)...)...)
	require.Equal(t, cli.ExitOK, code, stdout)
}
