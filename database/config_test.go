package database_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/viewer"
)

// envVars are every variable ConfigFromEnv reads.
var envVars = []string{
	"DATABASE_URL",
	"CHATDB_PG_DRIVER",
	"CHATDB_MAX_OPEN_CONNS",
	"CHATDB_MAX_IDLE_CONNS",
	"CHATDB_CONN_MAX_LIFETIME",
	"CHATDB_CONN_MAX_IDLE_TIME",
	"CHATDB_HEALTH_CHECK_AFTER",
	"CHATDB_CONNECT_TIMEOUT",
	"CHATDB_OPEN_RETRY_WINDOW",
	"CHATDB_SQLITE_BUSY_TIMEOUT",
	"CHATDB_CLOSE_TIMEOUT",
	"CHATDB_LOG_QUERIES",
	"CHATDB_REQUIRE_TLS",
	"CHATDB_POOLER",
	"CHATDB_MIGRATION_URL",
}

// clearEnv unsets every variable ConfigFromEnv reads for the rest of the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, name := range envVars {
		t.Setenv(name, "")
	}
}

func TestConfigFromEnvUnset(t *testing.T) {
	clearEnv(t)
	cfg, err := database.ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, database.Config{}, cfg, "unset variables leave every field zero")
}

func TestConfigFromEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("DATABASE_URL", "postgres://app:pw@db.internal:5432/chat?sslmode=require")
	t.Setenv("CHATDB_PG_DRIVER", "pq")
	t.Setenv("CHATDB_MAX_OPEN_CONNS", "50")
	t.Setenv("CHATDB_MAX_IDLE_CONNS", "-1")
	t.Setenv("CHATDB_CONN_MAX_LIFETIME", "1h")
	t.Setenv("CHATDB_CONN_MAX_IDLE_TIME", "90s")
	t.Setenv("CHATDB_HEALTH_CHECK_AFTER", "250ms")
	t.Setenv("CHATDB_CONNECT_TIMEOUT", "3s")
	t.Setenv("CHATDB_OPEN_RETRY_WINDOW", "-1s")
	t.Setenv("CHATDB_SQLITE_BUSY_TIMEOUT", "2s")
	t.Setenv("CHATDB_CLOSE_TIMEOUT", "45s")
	t.Setenv("CHATDB_LOG_QUERIES", "true")
	t.Setenv("CHATDB_REQUIRE_TLS", "1")
	cfg, err := database.ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, database.Config{
		URL:               "postgres://app:pw@db.internal:5432/chat?sslmode=require",
		Driver:            database.DriverPQ,
		MaxOpenConns:      50,
		MaxIdleConns:      -1,
		ConnMaxLifetime:   time.Hour,
		ConnMaxIdleTime:   90 * time.Second,
		HealthCheckAfter:  250 * time.Millisecond,
		ConnectTimeout:    3 * time.Second,
		OpenRetryWindow:   -time.Second,
		SQLiteBusyTimeout: 2 * time.Second,
		CloseTimeout:      45 * time.Second,
		LogQueries:        true,
		RequireTLS:        true,
	}, cfg)

	t.Setenv("CHATDB_LOG_QUERIES", "1")
	cfg, err = database.ConfigFromEnv()
	require.NoError(t, err)
	require.True(t, cfg.LogQueries)
	t.Setenv("CHATDB_LOG_QUERIES", "false")
	cfg, err = database.ConfigFromEnv()
	require.NoError(t, err)
	require.False(t, cfg.LogQueries)
}

func TestConfigFromEnvMalformed(t *testing.T) {
	const secret = "s3cret"
	cases := []struct{ name, value string }{
		{"CHATDB_MAX_OPEN_CONNS", "thirty-" + secret},
		{"CHATDB_MAX_OPEN_CONNS", "1.5"},
		{"CHATDB_MAX_IDLE_CONNS", secret},
		{"CHATDB_CONN_MAX_LIFETIME", "30" + secret},
		{"CHATDB_CONN_MAX_LIFETIME", "17"}, // a unit is required
		{"CHATDB_CONN_MAX_IDLE_TIME", secret},
		{"CHATDB_HEALTH_CHECK_AFTER", secret},
		{"CHATDB_CONNECT_TIMEOUT", secret},
		{"CHATDB_OPEN_RETRY_WINDOW", secret},
		{"CHATDB_SQLITE_BUSY_TIMEOUT", secret},
		{"CHATDB_CLOSE_TIMEOUT", secret},
		{"CHATDB_LOG_QUERIES", "yes-" + secret},
		{"CHATDB_REQUIRE_TLS", "yes-" + secret},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("DATABASE_URL", "postgres://u:"+secret+"@h/db")
			t.Setenv(tc.name, tc.value)
			cfg, err := database.ConfigFromEnv()
			require.Error(t, err)
			require.Equal(t, database.Config{}, cfg)
			require.Contains(t, err.Error(), tc.name, "the error names the variable")
			require.NotContains(t, err.Error(), tc.value, "the error repeats the value")
			require.NotContains(t, err.Error(), secret)
		})
	}
}

// A Config read from the environment opens the database it names, with the
// pool settings it names.
func TestConfigFromEnvOpens(t *testing.T) {
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		base := dbtest.Config(t, target)
		clearEnv(t)
		t.Setenv("DATABASE_URL", base.URL)
		t.Setenv("CHATDB_PG_DRIVER", base.Driver)
		t.Setenv("CHATDB_MAX_OPEN_CONNS", "5")
		cfg, err := database.ConfigFromEnv()
		require.NoError(t, err)
		db, err := database.Open(t.Context(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		require.Equal(t, target.Dialect(), db.Dialect())
		if target.Postgres() {
			require.Equal(t, target.Driver(), db.Driver())
		}
		require.Equal(t, 5, db.Stats().MaxOpenConnections)
		_, err = db.Client().User.Query().Count(viewer.SystemContext(t.Context()))
		require.NoError(t, err, "the database is the migrated one")
	})
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	// The documented defaults: 20 pooled connections plus 10 overflow.
	require.Equal(t, 30, database.DefaultMaxOpenConns)
	require.Equal(t, 20, database.DefaultMaxIdleConns)
	require.Positive(t, database.DefaultConnMaxLifetime)
	require.Positive(t, database.DefaultConnMaxIdleTime)
	require.Positive(t, database.DefaultHealthCheckAfter)
}

func TestRedact(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	cases := []struct{ in, want string }{
		{"postgres://u:" + secret + "@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgresql://u@h/db?password=" + secret + "&sslmode=disable", "postgresql://u@h/db?password=xxxxx&sslmode=disable"},
		{"postgres://u:" + secret + "@h/db?password=" + secret, "postgres://u:xxxxx@h/db?password=xxxxx"},
		{"postgres://u:p%40" + secret + "@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db", "postgres://h/db"},
		{"postgres://u:" + secret + "@host:badport/db", "(malformed URL)"},
		{"postgres://u:" + secret + "%zz@h/db", "(malformed URL)"},
		{"mysql://u:" + secret + "@h/db", "(malformed URL)"},
		{"", "sqlite://" + database.DefaultSQLitePath},
		{"sqlite://chat.db", "sqlite://chat.db"},
		{"sqlite:/var/lib/chat.db", "sqlite:///var/lib/chat.db"},
		{"file:chat.db", "sqlite://chat.db"},
		{"/var/lib/chat.db", "sqlite:///var/lib/chat.db"},
		{"sqlite://:memory:", "sqlite://:memory:"},
	}
	for _, tc := range cases {
		got := database.Redact(tc.in)
		require.Equal(t, tc.want, got, "Redact(%q)", tc.in)
		require.NotContains(t, got, secret)
	}
}

func TestConfigErrorNeverHoldsURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"postgres://u:s3cret@dbserver7:badport/db",
		"postgres://u:s3cret@[::1/dbserver7",
		"postgres://u:s3cret@/dbserver7",
		"postgres://u:s3cret%@dbserver7/db",
	} {
		_, err := database.Open(t.Context(), database.Config{URL: raw, OpenRetryWindow: -1})
		var ce *database.ConfigError
		require.ErrorAs(t, err, &ce, raw)
		require.True(t, strings.HasPrefix(err.Error(), "database: invalid config: "), err.Error())
		require.NotContains(t, err.Error(), "s3cret")
		require.NotContains(t, err.Error(), "dbserver7")
	}
}
