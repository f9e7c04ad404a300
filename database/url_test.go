package database_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/viewer"
)

// Strings that are meant for PostgreSQL but are not what Open accepts: each is
// refused with a ConfigError that names the problem, creates no file, and
// holds no secret, not even a part of one; Redact prints none either.
func TestURLMistakes(t *testing.T) {
	const pw = "PWsecret9" // also checked in parts: "PWsec", "ret9"
	cases := []struct {
		name, url, reason string
	}{
		{"missing // after postgresql:", "postgresql:app:" + pw + "@db.internal/chat", "missing // after postgresql:"},
		{"missing // after postgres:, one slash", "postgres:/app:" + pw + "@db.internal/chat", "missing // after postgres:"},
		{"missing // in upper case", "POSTGRES:app:" + pw + "@db.internal/chat", "missing // after postgres:"},
		{"missing : after postgres", "postgres//app:" + pw + "@db.internal/chat", "missing : after postgres"},
		{"bad port", "postgres://app:" + pw + "@db.internal:x/chat", `bad port "x"`},
		{"port out of range", "postgres://app:" + pw + "@db.internal:70000/chat", `bad port "70000"`},
		{"second host's bad port", "postgres://app:" + pw + "@db1.internal:5432,db2.internal:y/chat", `bad port "y"`},
		{"password holding '/'", "postgres://app:PWs/ecret9@db.internal/chat", "percent-encode"},
		{"password holding '/' before digits", "postgres://app:1234/" + pw + "@db.internal/chat", "percent-encode"},
		{"password holding '#'", "postgres://app:PWs#ecret9@db.internal/chat", "percent-encode"},
		{"bad escape in the password", "postgres://app:" + pw + "%zz@db.internal/chat", "percent-escape"},
		{"unclosed IPv6 bracket", "postgres://app:" + pw + "@[::1/chat", "missing ]"},
		{"control character", "postgres://app:" + pw + "@db.internal/chat\x01", "control character"},
		{"no host", "postgres://app:" + pw + "@/chat", "no host"},
		{"user:password@host without a scheme", "app:" + pw + "@db.internal/chat", "postgres://"},
		{"file: with user:password@host", "file:app:" + pw + "@db.internal/chat", "postgres://"},
		{"unknown scheme", "mysql://app:" + pw + "@db.internal/chat", "unsupported URL scheme"},
		{"key/value: unterminated quote", "host=db.internal user=app password='" + pw + " dbname=chat", "unterminated quoted value"},
		{"key/value: word without =", "host=db.internal user=app password " + pw + " dbname=chat", `missing "=" after "password"`},
		{"key/value: a password with a space, unquoted", "host=db.internal password=PWsec ret9=x", "unknown keyword"},
		{"key/value: bad port", "host=db.internal port=x password=" + pw, `bad port "x"`},
		{"key/value: no host", "user=app password=" + pw + " dbname=chat", "no host"},
		{"key/value: spaces around =", "host = db.internal password = '" + pw, "unterminated quoted value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			_, err := database.ParseURL(tc.url)
			var ce *database.ConfigError
			require.ErrorAs(t, err, &ce)
			require.Contains(t, err.Error(), tc.reason)
			db, err := database.Open(t.Context(), database.Config{URL: tc.url, OpenRetryWindow: -1})
			require.Nil(t, db)
			require.ErrorAs(t, err, &ce)
			for _, part := range []string{pw, pw[:5], pw[5:], "PWs/", "/ecret9", "1234"} {
				require.NotContains(t, err.Error(), part)
				require.NotContains(t, database.Redact(tc.url), part)
			}
			require.NotContains(t, err.Error(), "db.internal", "the URL is not quoted")
			entries, err := os.ReadDir(".")
			require.NoError(t, err)
			require.Empty(t, entries, "no file was created")
			require.False(t, database.IsPostgresURL(tc.url) && !strings.HasPrefix(strings.ToLower(tc.url), "postgres"))
		})
	}
}

// What ParseURL accepts, what it makes of it, and how it prints it.
func TestParseURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		url, dialect, redacted string
		isPostgresURL          bool
	}{
		{"postgres://app:pw@db:5432/chat?sslmode=require", database.Postgres, "postgres://app:xxxxx@db:5432/chat?sslmode=require", true},
		{"POSTGRES://app:pw@db/chat", database.Postgres, "postgres://app:xxxxx@db/chat", true},
		{"PostgreSQL://app:pw@db/chat", database.Postgres, "postgresql://app:xxxxx@db/chat", true},
		{"postgres://app@db/chat", database.Postgres, "postgres://app@db/chat", true},
		{"postgres://app:@db/chat", database.Postgres, "postgres://app@db/chat", true},
		{"postgres://app:p%2Fw@db1:5432,db2:5433/chat", database.Postgres, "postgres://app:xxxxx@db1:5432,db2:5433/chat", true},
		{"postgres://[::1]:5432/chat", database.Postgres, "postgres://[::1]:5432/chat", true},
		{"postgres:///chat?host=/run/postgresql", database.Postgres, "postgres:///chat?host=/run/postgresql", true},
		{"host=db port=5432 user=app password=pw dbname=chat sslmode=require", database.Postgres, "host=db port=5432 user=app password=xxxxx dbname=chat sslmode=require", false},
		{"host = db  user=app password='p w\\'s' dbname=chat", database.Postgres, "host=db user=app password=xxxxx dbname=chat", false},
		{"dbname='my chat' host=db sslpassword=k", database.Postgres, "dbname='my chat' host=db sslpassword=xxxxx", false},
		{"", database.SQLite, "sqlite://" + database.DefaultSQLitePath, false},
		{"chat.db", database.SQLite, "sqlite://chat.db", false},
		{"postgres.db", database.SQLite, "sqlite://postgres.db", false},
		{"postgres/chat.db", database.SQLite, "sqlite://postgres/chat.db", false},
		{"sqlite://:memory:", database.SQLite, "sqlite://:memory:", false},
		{"file:data/a@b.db", database.SQLite, "sqlite://data/a@b.db", false},
	}
	for _, tc := range cases {
		info, err := database.ParseURL(tc.url)
		require.NoError(t, err, tc.url)
		require.Equal(t, tc.dialect, info.Dialect, tc.url)
		require.Equal(t, tc.redacted, info.Redacted, tc.url)
		require.Equal(t, tc.redacted, database.Redact(tc.url), tc.url)
		require.Equal(t, tc.isPostgresURL, database.IsPostgresURL(tc.url), tc.url)
	}
}

// A key/value connection string and an upper-case scheme open the test
// server on both drivers, and print redacted.
func TestOpenURLForms(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.Config(t, target)
		info, err := database.ParseURL(cfg.URL)
		require.NoError(t, err)
		u := mustParse(t, cfg.URL)
		dsn := "host=" + u.Hostname() + " port=" + u.Port() + " user=" + u.User.Username() +
			" password='s3cret pw' dbname='" + strings.TrimPrefix(u.Path, "/") + "' sslmode=disable"
		for _, raw := range []string{dsn, "POSTGRESQL" + cfg.URL[strings.Index(cfg.URL, "://"):]} {
			db, err := database.Open(t.Context(), database.Config{URL: raw, Driver: cfg.Driver})
			require.NoError(t, err, database.Redact(raw))
			require.NotContains(t, db.URL(), "s3cret")
			n, err := db.Client().User.Query().Count(viewer.SystemContext(t.Context()))
			require.NoError(t, err)
			require.Zero(t, n)
			require.NoError(t, db.Close())
		}
		require.Equal(t, database.Postgres, info.Dialect)
	})
}

// A file whose name happens to contain '@' opens as SQLite when no ':' comes
// before the '@'.
func TestSQLitePathWithAt(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "a@b.db")
	db, err := database.Open(t.Context(), database.Config{URL: p})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = os.Stat(p)
	require.NoError(t, err)
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u
}

// TestOtherDatabase: the same server and settings, another database, from a
// URL or a key/value string; an SQLite URL or a malformed one is a
// *ConfigError that does not quote it.
func TestOtherDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, want string }{
		{"postgres://app:pw@db:5432/chat?sslmode=require", "postgres://app:pw@db:5432/postgres?sslmode=require"},
		{"POSTGRESQL://app@db/chat", "postgresql://app@db/postgres"},
		{"postgres://app@db1:5432,db2:5433/chat?target_session_attrs=read-write", "postgres://app@db1:5432,db2:5433/postgres?target_session_attrs=read-write"},
		{"host=db1,db2 port=5432,5433 user=app password='p w' dbname=chat sslmode=verify-full",
			"postgres:///postgres?host=db1%2Cdb2&password=p+w&port=5432%2C5433&sslmode=verify-full&user=app"},
	} {
		got, err := database.OtherDatabase(tc.raw, "postgres")
		require.NoError(t, err, tc.raw)
		require.Equal(t, tc.want, got)
	}
	for _, raw := range []string{"sqlite://chat.db", "chat.db", "postgres://app:hunter2@db:bad/chat", "host=db password=hunter2 bogus=1"} {
		_, err := database.OtherDatabase(raw, "postgres")
		var ce *database.ConfigError
		require.ErrorAs(t, err, &ce, raw)
		require.NotContains(t, err.Error(), "hunter2")
	}
}
