package database_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// pooledTargets pairs each PostgreSQL driver with its target through the
// PgBouncer dbtest starts (transaction mode).
var pooledTargets = map[string]dbtest.Target{database.DriverPgx: dbtest.PGXBouncer, database.DriverPQ: dbtest.PQBouncer}

func TestPoolerConfig(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: each of these is refused before dialling.
	const pg = "postgres://app:s3cret@127.0.0.1:1/chat?sslmode=disable"
	cases := []struct {
		name string
		cfg  database.Config
		want string
	}{
		{"unknown pooler", database.Config{URL: pg, Pooler: "pgbouncer"}, `unknown Pooler "pgbouncer"`},
		{"statement mode", database.Config{URL: pg, Pooler: "statement"}, "statement mode"},
		{"pgx cache_statement", database.Config{URL: pg + "&default_query_exec_mode=cache_statement", Pooler: database.PoolerTransaction}, "default_query_exec_mode=cache_statement"},
		{"pgx describe_exec", database.Config{URL: pg + "&default_query_exec_mode=describe_exec", Pooler: database.PoolerTransaction}, "default_query_exec_mode=describe_exec"},
		{"lib/pq without binary parameters", database.Config{URL: pg + "&binary_parameters=no", Driver: database.DriverPQ, Pooler: database.PoolerTransaction}, "binary_parameters must be yes"},
		{"migration URL of another dialect", database.Config{URL: pg, MigrationURL: "sqlite://chat.db"}, "MigrationURL is sqlite3 but URL is postgres"},
		{"malformed migration URL", database.Config{URL: pg, MigrationURL: "postgres:/app:s3cret@db/chat"}, "MigrationURL: missing // after postgres:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.OpenRetryWindow = -1
			_, err := database.Open(t.Context(), tc.cfg)
			var ce *database.ConfigError
			require.ErrorAs(t, err, &ce)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func TestConfigFromEnvPooler(t *testing.T) {
	clearEnv(t)
	t.Setenv("CHATDB_POOLER", "transaction")
	t.Setenv("CHATDB_MIGRATION_URL", "postgres://owner@db.internal:5432/chat?sslmode=require")
	cfg, err := database.ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, database.PoolerTransaction, cfg.Pooler)
	require.Equal(t, "postgres://owner@db.internal:5432/chat?sslmode=require", cfg.MigrationURL)

	m := cfg.ForMigration()
	require.Equal(t, cfg.MigrationURL, m.URL)
	require.Empty(t, m.Pooler, "the migration URL is a direct connection")
	require.Empty(t, m.MigrationURL)
	cfg.MigrationURL = ""
	require.Equal(t, cfg, cfg.ForMigration(), "without a migration URL, migrations run on the URL")
}

// Through PgBouncer in transaction mode a session's statements outside a
// transaction may run on any server connection. Session A runs a statement
// on the pool's one server connection, B holds that connection in a
// transaction, and A runs the statement again, on a new one. With pgx's
// default exec mode (cache_statement) A's second run binds the named
// statement it prepared on the first server connection, which the second
// does not have; with Config.Pooler set to PoolerTransaction it works, on
// both drivers, and so do a transaction with a temporary table, COPY and
// many sessions at once.
func TestPgBouncerTransactionMode(t *testing.T) {
	t.Parallel()
	// A's statement, then the same again while B holds the server connection
	// A ran it on; it returns A's second error.
	switchServer := func(t *testing.T, db *database.DB) error {
		t.Helper()
		ctx := t.Context()
		a, err := db.SQL().Conn(ctx)
		require.NoError(t, err)
		defer a.Close()
		b, err := db.SQL().Conn(ctx)
		require.NoError(t, err)
		defer b.Close()
		const q = "SELECT pg_backend_pid() + $1::int"
		var first, second int64
		require.NoError(t, a.QueryRowContext(ctx, q, 0).Scan(&first))
		tx, err := b.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback()
		var held int64
		require.NoError(t, tx.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&held))
		require.Equal(t, first, held, "B took the server connection A had (PgBouncer reuses the last one given back)")
		if err := a.QueryRowContext(ctx, q, 0).Scan(&second); err != nil {
			return err
		}
		require.NotEqual(t, first, second, "A ran on another server connection")
		return nil
	}

	t.Run("pgx cache_statement breaks", func(t *testing.T) {
		t.Parallel()
		cfg := dbtest.Config(t, dbtest.PGXBouncer)
		cfg.Pooler = ""
		db := openPooled(t, cfg)
		err := switchServer(t, db)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "26000", pgErr.Code, "prepared statement does not exist: %v", err)
	})
	for drv, target := range pooledTargets {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db := openPooled(t, dbtest.Config(t, target))
			require.Equal(t, database.PoolerTransaction, db.Pooler())
			require.NoError(t, switchServer(t, db))

			ctx := t.Context()
			// A temporary table dropped at commit, filled by COPY, in one
			// transaction: what AddMembers does.
			conn, err := db.SQL().Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			tx, err := conn.BeginTx(ctx, nil)
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx, "CREATE TEMPORARY TABLE pooled_copy (n int NOT NULL, s text NOT NULL) ON COMMIT DROP")
			require.NoError(t, err)
			rows := make([][]any, 1000)
			for i := range rows {
				rows[i] = []any{i, fmt.Sprint("row ", i)}
			}
			n, err := db.CopyFrom(ctx, conn, "pooled_copy", []string{"n", "s"}, rows)
			require.NoError(t, err)
			require.EqualValues(t, len(rows), n)
			var sum int
			require.NoError(t, tx.QueryRowContext(ctx, "SELECT sum(n) FROM pooled_copy WHERE s LIKE $1", "row %").Scan(&sum))
			require.Equal(t, 999*1000/2, sum)
			require.NoError(t, tx.Commit())

			// Many sessions, many statements with arguments, outside and
			// inside transactions, on fewer server connections than sessions
			// at times.
			g := make(chan error, 16)
			for w := range cap(g) {
				go func() {
					g <- func() error {
						for i := range 40 {
							var got int
							if err := db.SQL().QueryRowContext(ctx, "SELECT $1::int + $2::int", w, i).Scan(&got); err != nil {
								return err
							}
							if got != w+i {
								return fmt.Errorf("got %d, want %d", got, w+i)
							}
							tx, err := db.SQL().BeginTx(ctx, nil)
							if err != nil {
								return err
							}
							var s string
							if err := tx.QueryRowContext(ctx, "SELECT $1::text || $2::text", "a", fmt.Sprint(i)).Scan(&s); err != nil {
								tx.Rollback()
								return err
							}
							if err := tx.Commit(); err != nil {
								return err
							}
						}
						return nil
					}()
				}()
			}
			for range cap(g) {
				require.NoError(t, <-g)
			}
		})
	}
}

// openPooled opens cfg with a pool big enough for the test's sessions.
func openPooled(t *testing.T, cfg database.Config) *database.DB {
	t.Helper()
	cfg.OpenRetryWindow = -1
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDetectPooler(t *testing.T) {
	t.Parallel()
	for drv, target := range pooledTargets {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			direct := dbtest.Config(t, map[string]dbtest.Target{database.DriverPgx: dbtest.PGX, database.DriverPQ: dbtest.PQ}[drv])
			pooled, err := openPooled(t, direct).DetectPooler(t.Context())
			require.NoError(t, err)
			require.False(t, pooled, "a direct connection")

			for _, setting := range []string{"", database.PoolerTransaction} {
				cfg := dbtest.Config(t, target)
				cfg.Pooler = setting
				pooled, err := openPooled(t, cfg).DetectPooler(t.Context())
				require.NoError(t, err)
				require.True(t, pooled, "through PgBouncer, Config.Pooler %q", setting)
			}
		})
	}
	db := openPooled(t, database.Config{URL: ":memory:"})
	pooled, err := db.DetectPooler(t.Context())
	require.NoError(t, err)
	require.False(t, pooled)
}

// Migrate behind PgBouncer in transaction mode: refused, with the pooler
// named by Config.Pooler or found; applied on Config.MigrationURL.
func TestMigrateThroughPgBouncer(t *testing.T) {
	t.Parallel()
	for drv, target := range pooledTargets {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			cfg := dbtest.EmptyConfig(t, target)
			direct := cfg.MigrationURL
			require.NotEmpty(t, direct)

			pending := func(t *testing.T) int {
				t.Helper()
				st, err := database.Migrations(ctx, openPooled(t, database.Config{URL: direct, Driver: drv}))
				require.NoError(t, err)
				return len(st.Pending)
			}
			all := pending(t)
			require.Positive(t, all)

			for _, tc := range []struct {
				name     string
				pooler   string
				detected bool
			}{
				{"configured", database.PoolerTransaction, false},
				{"detected", "", true},
			} {
				c := cfg
				c.Pooler, c.MigrationURL = tc.pooler, ""
				err := database.Migrate(ctx, openPooled(t, c))
				require.ErrorIs(t, err, database.ErrPooler, tc.name)
				var pe *database.PoolerError
				require.ErrorAs(t, err, &pe)
				require.Equal(t, tc.detected, pe.Detected, tc.name)
				require.Contains(t, err.Error(), "MigrationURL")
				require.Contains(t, err.Error(), "--url")
				require.Equal(t, all, pending(t), "%s: nothing applied", tc.name)
			}

			// A dry run takes no lock: it may go through the pooler.
			c := cfg
			c.MigrationURL = ""
			n := 0
			require.NoError(t, database.Migrate(ctx, openPooled(t, c), database.WithDryRun(), database.WithProgress(func(database.Migration) { n++ })))
			require.Equal(t, all, n)

			// A MigrationURL that is itself the pooler's is found out too.
			c = cfg
			c.MigrationURL = cfg.URL
			err := database.Migrate(ctx, openPooled(t, c))
			var pe *database.PoolerError
			require.True(t, errors.As(err, &pe) && pe.Detected, "%v", err)
			require.Equal(t, all, pending(t), "nothing applied")

			// With MigrationURL, the files are applied there, and the pool
			// through PgBouncer sees them.
			db := openPooled(t, cfg)
			require.NoError(t, database.Migrate(ctx, db))
			require.Zero(t, pending(t))
			st, err := database.Migrations(ctx, db)
			require.NoError(t, err)
			require.Empty(t, st.Pending)
			require.Len(t, st.Applied, all)
			require.NoError(t, database.Migrate(ctx, db), "a second run finds nothing to do")

			// With nothing pending, Migrate takes no lock and looks for no
			// pooler (an application's every start-up): through the pooler,
			// with no MigrationURL, it succeeds.
			c = cfg
			c.MigrationURL = ""
			require.NoError(t, database.Migrate(ctx, openPooled(t, c)), "nothing pending: no lock needed")
		})
	}
}
