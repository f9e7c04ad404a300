package cli_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
)

// pooledEnv clears the variables that say where the database is and how it
// is reached, for the rest of the test.
func pooledEnv(t *testing.T) {
	t.Helper()
	for _, v := range []string{"DATABASE_URL", "CHATDB_PG_DRIVER", "CHATDB_POOLER", "CHATDB_MIGRATION_URL"} {
		t.Setenv(v, "")
	}
}

// Doctor through PgBouncer in transaction mode: the pool check says so, and
// fails while CHATDB_POOLER does not.
func TestDoctorPgBouncer(t *testing.T) {
	pooledEnv(t)
	for _, target := range []dbtest.Target{dbtest.PGXBouncer, dbtest.PQBouncer} {
		t.Run(string(target), func(t *testing.T) {
			cfg := dbtest.Config(t, target)
			args := []string{"doctor", "--url", cfg.URL, "--driver", target.Driver()}

			t.Setenv("CHATDB_POOLER", "")
			code, stdout, _ := run(t, args...)
			require.Equal(t, cli.ExitAttention, code, stdout)
			require.Regexp(t, `(?m)^FAIL  pool        .*a transaction pooler is in between .* but CHATDB_POOLER is not "transaction"`, stdout)
			require.Contains(t, stdout, "-> set CHATDB_POOLER=transaction")
			if target.Driver() == database.DriverPgx {
				require.Contains(t, stdout, "pgx's prepared statements fail through it")
			} else {
				require.Contains(t, stdout, "lib/pq's statements work through it, but the migration lock does not hold")
			}

			t.Setenv("CHATDB_POOLER", database.PoolerTransaction)
			code, stdout, stderr := run(t, args...)
			require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			require.Regexp(t, `(?m)^OK    pool        .*; through a transaction pooler \(CHATDB_POOLER=transaction\); migrations need CHATDB_MIGRATION_URL`, stdout)
			require.Regexp(t, `(?m)^SKIP  drift       no dev database: the URL goes through a transaction pooler; set CHATDB_MIGRATION_URL`, stdout)
			require.Contains(t, stdout, "6 ok, 0 failed, 1 skipped")

			t.Setenv("CHATDB_MIGRATION_URL", cfg.MigrationURL)
			code, stdout, _ = run(t, args...)
			require.Equal(t, cli.ExitOK, code, stdout)
			require.Regexp(t, `(?m)^OK    drift       `, stdout)
			require.Contains(t, stdout, "; migrations run on CHATDB_MIGRATION_URL")
			t.Setenv("CHATDB_MIGRATION_URL", "")

			// The direct URL with the setting: fine, and said.
			code, stdout, _ = run(t, "doctor", "--url", cfg.MigrationURL, "--driver", target.Driver())
			require.Equal(t, cli.ExitOK, code, stdout)
			require.Contains(t, stdout, "CHATDB_POOLER=transaction, though no transaction pooler was seen")
			t.Setenv("CHATDB_POOLER", "")
			code, stdout, _ = run(t, "doctor", "--url", cfg.MigrationURL, "--driver", target.Driver())
			require.Equal(t, cli.ExitOK, code, stdout)
			require.Regexp(t, `(?m)^OK    pool        .*; no transaction pooler$`, stdout)
		})
	}
}

// chatdb migrate apply behind PgBouncer: refused through the pooler, with
// the way out named; applied on --url or CHATDB_MIGRATION_URL.
func TestMigrateApplyPgBouncer(t *testing.T) {
	pooledEnv(t)
	for _, target := range []dbtest.Target{dbtest.PGXBouncer, dbtest.PQBouncer} {
		t.Run(string(target), func(t *testing.T) {
			cfg := dbtest.EmptyConfig(t, target)
			t.Setenv("CHATDB_PG_DRIVER", target.Driver())

			// --url is taken for a direct connection; this one is the
			// pooler's, and apply finds it out.
			code, _, stderr := run(t, "migrate", "apply", "--url", cfg.URL)
			require.Equal(t, cli.ExitError, code)
			require.Contains(t, stderr, "transaction pooler")
			require.Contains(t, stderr, "detected")
			require.Contains(t, stderr, "CHATDB_MIGRATION_URL")

			// The environment says the URL is the pooler's.
			t.Setenv("DATABASE_URL", cfg.URL)
			t.Setenv("CHATDB_POOLER", database.PoolerTransaction)
			code, _, stderr = run(t, "migrate", "apply")
			require.Equal(t, cli.ExitError, code)
			require.Contains(t, stderr, `CHATDB_POOLER) is "transaction"`)
			require.Contains(t, stderr, "--url")

			code, stdout, stderr := run(t, "migrate", "status")
			require.Equal(t, cli.ExitAttention, code, stderr)
			require.Contains(t, stdout, "pending")

			// --url, a direct connection, with the pooler's environment.
			code, stdout, stderr = run(t, "migrate", "apply", "--url", cfg.MigrationURL, "--dry-run")
			require.Equal(t, cli.ExitOK, code, stderr)
			require.Contains(t, stdout, "would be applied")

			// CHATDB_MIGRATION_URL.
			t.Setenv("CHATDB_MIGRATION_URL", cfg.MigrationURL)
			code, stdout, stderr = run(t, "migrate", "apply")
			require.Equal(t, cli.ExitOK, code, stderr)
			require.Contains(t, stdout, "applied ")
			require.Contains(t, stdout, database.Redact(cfg.MigrationURL), "the database migrated is named")

			code, stdout, stderr = run(t, "migrate", "apply", "--url", cfg.MigrationURL)
			require.Equal(t, cli.ExitOK, code, stderr)
			require.Contains(t, stdout, "is up to date")
		})
	}
}
