package database_test

import (
	"bytes"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// The secrets the tests below put in URLs; none may appear in an error, a log
// line or a printed URL.
const (
	secretPW    = "Sup3r-s3cret-PW"
	secretQuery = "qu3ry-s3cret-PW"
	secretKey   = "k3y-passphrase-PW"
)

func requireNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{secretPW, secretQuery, secretKey} {
		require.NotContains(t, s, secret, "%s leaks a secret", what)
	}
}

// Malformed URLs, each of which some parser (net/url, pgx, lib/pq) would quote
// back, password included: Open, Redact and ConfigFromEnv followed by Open all
// refuse them with a ConfigError that holds no secret.
func TestSecretMalformedURLs(t *testing.T) {
	const host = "db.internal"
	cases := []struct {
		name, url, driver string
	}{
		{"bad port", "postgres://app:" + secretPW + "@" + host + ":badport/chat?sslmode=require", ""},
		{"port out of range", "postgres://app:" + secretPW + "@" + host + ":99999999/chat", ""},
		{"bad escape in password", "postgres://app:" + secretPW + "%zz@" + host + "/chat", ""},
		{"bad escape in query", "postgres://app@" + host + "/chat?password=" + secretQuery + "&x=%zz", ""},
		{"unclosed IPv6 bracket", "postgres://app:" + secretPW + "@[::1/chat", ""},
		{"control character", "postgres://app:" + secretPW + "@" + host + "/chat\x7f", ""},
		{"no host", "postgres://app:" + secretPW + "@/chat", ""},
		{"unknown scheme", "mysql://app:" + secretPW + "@" + host + "/chat", ""},
		{"unknown driver", "postgres://app:" + secretPW + "@" + host + "/chat", "odbc"},
		{"keyword=value string, unterminated quote", "host=" + host + " user=app password='" + secretPW + " dbname=chat", ""},
		{"keyword=value string, unknown keyword", "host=" + host + " user=app password=" + secretPW[:5] + " " + secretPW[5:] + "=x dbname=chat", ""},
		{"missing // after postgres:", "postgres:app:" + secretPW + "@" + host + "/chat", ""},
		{"user:password@host without a scheme", "app:" + secretPW + "@" + host + "/chat", ""},
		{"sqlite with options", "sqlite://chat.db?_pragma=key('" + secretPW + "')", ""},
		{"pgx: bad sslmode", "postgres://app:" + secretPW + "@" + host + "/chat?sslmode=bogus&password=" + secretQuery, database.DriverPgx},
		{"pgx: bad connect_timeout", "postgres://app:" + secretPW + "@" + host + "/chat?sslmode=disable&connect_timeout=soon&password=" + secretQuery, database.DriverPgx},
		{"pgx: unreadable client key", "postgres://app:" + secretPW + "@" + host + "/chat?sslmode=require&sslcert=/nonexistent&sslkey=/nonexistent&sslpassword=" + secretKey, database.DriverPgx},
		{"pgx: bad target_session_attrs", "postgres://app:" + secretPW + "@" + host + "/chat?sslmode=disable&target_session_attrs=bogus", database.DriverPgx},
		{"pq: bad sslmode", "postgres://app:" + secretPW + "@" + host + "/chat?sslmode=bogus&password=" + secretQuery, database.DriverPQ},
		{"pq: bad binary_parameters", "postgres://app:" + secretPW + "@" + host + "/chat?sslmode=disable&binary_parameters=maybe", database.DriverPQ},
		{"pq: bad load_balance_hosts", "postgres://app@" + host + "/chat?sslmode=disable&load_balance_hosts=maybe&password=" + secretQuery, database.DriverPQ},
		{"pq: sslpassword", "postgres://app:" + secretPW + "@" + host + "/chat?sslmode=require&sslpassword=" + secretKey, database.DriverPQ},
		{"password in a misspelt parameter, bad sslmode", "postgres://app@" + host + "/chat?sslmode=bogus&pasword=" + secretQuery, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := database.Config{URL: tc.url, Driver: tc.driver, OpenRetryWindow: -1, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			db, err := database.Open(t.Context(), cfg)
			require.Nil(t, db)
			var ce *database.ConfigError
			require.ErrorAs(t, err, &ce, "%v", err)
			requireNoSecret(t, "Open's error", err.Error())
			require.NotContains(t, err.Error(), host, "the URL is not quoted at all")
			requireNoSecret(t, "the log", logs.String())
			requireNoSecret(t, "Redact", database.Redact(tc.url))

			clearEnv(t)
			t.Setenv("DATABASE_URL", tc.url)
			t.Setenv("CHATDB_PG_DRIVER", tc.driver)
			env, err := database.ConfigFromEnv()
			if err != nil {
				requireNoSecret(t, "ConfigFromEnv's error", err.Error())
				return
			}
			env.OpenRetryWindow = -1
			_, err = database.Open(t.Context(), env)
			require.ErrorAs(t, err, &ce)
			requireNoSecret(t, "Open's error from the environment", err.Error())
		})
	}
}

// Redact removes every secret a well-formed URL can carry.
func TestSecretRedact(t *testing.T) {
	t.Parallel()
	u := "postgres://app:" + secretPW + "@db.internal:5432/chat?sslmode=verify-full&password=" + secretQuery +
		"&sslpassword=" + secretKey + "&pasword=" + secretPW + "&application_name=chat-api"
	got := database.Redact(u)
	requireNoSecret(t, "Redact", got)
	parsed, err := url.Parse(got)
	require.NoError(t, err)
	q := parsed.Query()
	require.Equal(t, "xxxxx", q.Get("password"))
	require.Equal(t, "xxxxx", q.Get("sslpassword"))
	require.Equal(t, "xxxxx", q.Get("pasword"), "an unknown parameter may be a misspelt password")
	require.Equal(t, "verify-full", q.Get("sslmode"), "known parameters are kept")
	require.Equal(t, "chat-api", q.Get("application_name"))
	require.Equal(t, "db.internal:5432", parsed.Host)
	require.Equal(t, "app", parsed.User.Username())

	// With sslinline, lib/pq reads the private key from sslkey itself.
	inline := "postgres://app@db.internal/chat?sslmode=verify-full&sslinline=true&sslkey=" + url.QueryEscape("-----BEGIN PRIVATE KEY-----"+secretKey)
	requireNoSecret(t, "Redact with sslinline", database.Redact(inline))
}

// A server that cannot be reached, with secrets in the user information, the
// query and the client key's passphrase: the ConnectError, its URL and every
// line logged while Open retried (debug level, queries logged) hold none of
// them.
func TestSecretConnectErrorAndLogs(t *testing.T) {
	t.Parallel()
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			u := "postgres://app:" + secretPW + "@127.0.0.1:1/chat?sslmode=disable&password=" + secretQuery
			if drv == database.DriverPgx {
				u += "&sslpassword=" + secretKey
			}
			var (
				logs bytes.Buffer
				mu   sync.Mutex
			)
			logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			_, err := database.Open(t.Context(), database.Config{
				URL: u, Driver: drv, OpenRetryWindow: 500 * time.Millisecond, ConnectTimeout: time.Second,
				Logger: logger, LogQueries: true,
			})
			var ce *database.ConnectError
			require.ErrorAs(t, err, &ce)
			require.GreaterOrEqual(t, ce.Attempts, 2)
			requireNoSecret(t, "ConnectError", err.Error())
			requireNoSecret(t, "ConnectError.URL", ce.URL)
			requireNoSecret(t, "the inner error", ce.Err.Error())
			mu.Lock()
			out := logs.String()
			mu.Unlock()
			require.Contains(t, out, "retrying")
			requireNoSecret(t, "the log", out)
		})
	}
}

// A server that answers: an unknown database is reported without the
// password, and the URL of an open pool is printed redacted.
func TestSecretServerErrors(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.Config(t, target)
		u, err := url.Parse(cfg.URL)
		require.NoError(t, err)
		u.User = url.UserPassword(u.User.Username(), secretPW) // the test server trusts, and ignores it
		q := u.Query()
		q.Set("password", secretQuery)
		u.RawQuery = q.Encode()

		db, err := database.Open(t.Context(), database.Config{URL: u.String(), Driver: cfg.Driver})
		require.NoError(t, err)
		defer db.Close()
		requireNoSecret(t, "URL", db.URL())
		_, err = db.SQL().ExecContext(t.Context(), "SELECT * FROM no_such_table")
		requireNoSecret(t, "a server error", database.MapError(err).Error())

		missing := *u
		missing.Path = "/chatdb_missing_" + secretPW[:4]
		_, err = database.Open(t.Context(), database.Config{URL: missing.String(), Driver: cfg.Driver, OpenRetryWindow: -1})
		var ce *database.ConnectError
		require.ErrorAs(t, err, &ce)
		requireNoSecret(t, "ConnectError", err.Error())
		require.Contains(t, err.Error(), "xxxxx", "the URL in the error is redacted, not removed")
	})
}

// Whatever Open logs about a URL (the warning about a missing sslmode, the
// retries) prints it redacted.
func TestSecretLoggerNeverSeesPassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"postgres://app:" + secretPW + "@127.0.0.1:1/chat?sslmode=disable",
		"postgresql://app@127.0.0.1:1/chat?password=" + secretQuery,
	} {
		var logs bytes.Buffer
		var mu sync.Mutex
		logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		_, err := database.Open(t.Context(), database.Config{URL: u, OpenRetryWindow: 300 * time.Millisecond, Logger: logger})
		require.Error(t, err)
		mu.Lock()
		out := logs.String()
		mu.Unlock()
		require.NotEmpty(t, strings.TrimSpace(out))
		requireNoSecret(t, "the log", out)
		require.Contains(t, out, "xxxxx")
	}
}
