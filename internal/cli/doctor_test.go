package cli_test

import (
	"flag"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testdata is the absolute path of testdata, for tests that change directory.
var testdata = func() string {
	p, err := filepath.Abs("testdata")
	if err != nil {
		panic(err)
	}
	return p
}()

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(testdata, name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run the test with -update to create %s", path)
	require.Equal(t, string(want), got, "golden file %s (run with -update to rewrite it after checking the difference)", path)
}

// mask replaces what changes from run to run (durations, versions, IDs,
// times, paths) with fixed words, so that output can be compared with a
// golden file.
func mask(s string, extra ...string) string {
	for i := 0; i+1 < len(extra); i += 2 {
		s = strings.ReplaceAll(s, extra[i], extra[i+1])
	}
	for _, r := range []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`\b\d+(\.\d+)?(µs|ms|s|m)\b`), "<duration>"},
		{regexp.MustCompile(`(SQLite|PostgreSQL) \d+(\.\d+)*`), "$1 <version>"},
		{regexp.MustCompile(`\d{14}_\w+\.sql`), "<migration>.sql"},
		{regexp.MustCompile(`\d+ applied`), "<n> applied"},
		{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uuid>"},
		{regexp.MustCompile(`\b\d\d:\d\d:\d\d\b`), "<time>"},
	} {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return s
}

// pgArgs returns --url and, for PostgreSQL, --driver for cfg.
func dbArgs(target dbtest.Target, cfg database.Config) []string {
	args := []string{"--url", cfg.URL}
	if target.Postgres() {
		args = append(args, "--driver", target.Driver())
	}
	return args
}

// withPassword returns the PostgreSQL URL u with the password pw, which the
// test server's trust authentication ignores, or without one when pw is
// empty. A URL that names no user gets the one the drivers would use, so that
// tests can tell what a redacted URL shows.
func withPassword(t *testing.T, u, pw string) string {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	name := p.User.Username()
	if name == "" {
		name = p.Query().Get("user")
	}
	if name == "" {
		name = os.Getenv("PGUSER")
	}
	if name == "" {
		me, err := user.Current()
		require.NoError(t, err)
		name = me.Username
	}
	q := p.Query()
	q.Del("user")
	p.RawQuery = q.Encode()
	p.User = url.User(name)
	if pw != "" {
		p.User = url.UserPassword(name, pw)
	}
	return p.String()
}

func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.Config(t, target)
		if target.Postgres() {
			cfg.URL = withPassword(t, cfg.URL, "hunter2")
		}
		code, stdout, stderr := run(t, append([]string{"doctor"}, dbArgs(target, cfg)...)...)
		require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		require.Empty(t, stderr)
		for _, check := range []string{"database", "connect", "server", "pool", "migrations", "drift", "pool stats"} {
			require.Regexp(t, `(?m)^OK    `+check+` `, stdout)
		}
		require.Contains(t, stdout, "7 ok, 0 failed, 0 skipped")
		require.Contains(t, stdout, ", 0 pending")
		require.Contains(t, stdout, "driver "+map[bool]string{true: target.Driver(), false: "sqlite"}[target.Postgres()])
		require.NotContains(t, stdout, "hunter2")
		if target == dbtest.SQLite {
			golden(t, "doctor_healthy_sqlite.golden", mask(stdout, cfg.URL, "<file>"))
		} else {
			require.Contains(t, stdout, "xxxxx")
		}
	})
}

func TestDoctorPendingMigrations(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.EmptyConfig(t, target)
		if target == dbtest.SQLite {
			// An empty file: a database without tables, as opposed to no database.
			require.NoError(t, os.WriteFile(cfg.URL, nil, 0o644))
		}
		code, stdout, stderr := run(t, append([]string{"doctor"}, dbArgs(target, cfg)...)...)
		require.Equal(t, cli.ExitAttention, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		require.Regexp(t, `(?m)^FAIL  migrations  0 applied, \d+ pending: \d{14}_initial\.sql`, stdout)
		require.Contains(t, stdout, "chatdb migrate apply")
		require.Regexp(t, `(?m)^OK    connect `, stdout)
		require.Regexp(t, `(?m)^OK    pool stats `, stdout, "the checks after a failure still run")
		require.Contains(t, stdout, "6 ok, 1 failed, 0 skipped")
		require.Equal(t, "chatdb: doctor: 1 check(s) failed: migrations\n", stderr)

		// Doctor changes nothing: the migrations are still pending.
		code, _, _ = run(t, append([]string{"doctor"}, dbArgs(target, cfg)...)...)
		require.Equal(t, cli.ExitAttention, code)

		code, _, stderr = run(t, append([]string{"migrate", "apply"}, "--url", cfg.URL)...)
		require.Equal(t, cli.ExitOK, code, stderr)
		code, stdout, _ = run(t, append([]string{"doctor"}, dbArgs(target, cfg)...)...)
		require.Equal(t, cli.ExitOK, code, stdout)
	})
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(l.Addr().String())
	require.NoError(t, err)
	require.NoError(t, l.Close())
	return port
}

func TestDoctorUnreachable(t *testing.T) {
	t.Parallel()
	for _, driver := range []string{database.DriverPgx, database.DriverPQ} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			u := "postgres://chat:hunter2@127.0.0.1:" + closedPort(t) + "/chat?sslmode=disable"
			code, stdout, stderr := run(t, "doctor", "--url", u, "--driver", driver)
			require.Equal(t, cli.ExitAttention, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			require.Contains(t, stdout, "FAIL  connect     database: cannot connect to postgres://chat:xxxxx@127.0.0.1:")
			require.Contains(t, stdout, "after 1 attempt(s)", "one attempt unless --wait")
			require.Contains(t, stdout, "-> nothing accepts connections on 127.0.0.1:")
			for _, check := range []string{"server", "pool", "migrations", "drift", "pool stats"} {
				require.Regexp(t, `(?m)^SKIP  `+check+` +not connected$`, stdout)
			}
			require.Contains(t, stdout, "1 ok, 1 failed, 5 skipped")
			require.Equal(t, "chatdb: doctor: 1 check(s) failed: connect\n", stderr)
			require.NotContains(t, stdout+stderr, "hunter2")
		})
	}
}

func TestDoctorPasswordInQuery(t *testing.T) {
	t.Parallel()
	u := "postgres://chat@127.0.0.1:" + closedPort(t) + "/chat?sslmode=disable&password=hunter2"
	code, stdout, stderr := run(t, "doctor", "--url", u)
	require.Equal(t, cli.ExitAttention, code)
	require.NotContains(t, stdout+stderr, "hunter2")
	require.Contains(t, stdout, "password=xxxxx")
}

func TestDoctorNoSQLiteFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing.db")
	code, stdout, stderr := run(t, "doctor", "--url", path)
	require.Equal(t, cli.ExitAttention, code, stderr)
	require.Contains(t, stdout, "FAIL  database    sqlite://"+path+": no such file")
	require.Contains(t, stdout, "chatdb demo")
	require.Contains(t, stdout, "0 ok, 1 failed, 6 skipped")
	require.NoFileExists(t, path, "doctor must not create the database")
	golden(t, "doctor_no_file.golden", strings.ReplaceAll(stdout, path, "<file>"))
}

func TestDoctorBadURL(t *testing.T) {
	t.Parallel()
	code, stdout, _ := run(t, "doctor", "--url", "mysql://root:hunter2@db/chat")
	require.Equal(t, cli.ExitAttention, code)
	require.Contains(t, stdout, "FAIL  database    (malformed URL): not a URL chatdb can open")
	require.NotContains(t, stdout, "hunter2")
}

func TestDoctorEnvironment(t *testing.T) {
	cfg := dbtest.Config(t, dbtest.SQLite)
	t.Setenv("DATABASE_URL", cfg.URL)
	t.Setenv("CHATDB_MAX_OPEN_CONNS", "7")
	t.Setenv("CHATDB_MAX_IDLE_CONNS", "3")
	t.Setenv("CHATDB_CONN_MAX_LIFETIME", "1h")
	code, stdout, stderr := run(t, "doctor")
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "OK    database    sqlite://"+cfg.URL)
	require.Contains(t, stdout, "max open 7, max idle 3, max lifetime 1h0m0s")

	t.Setenv("CHATDB_MAX_OPEN_CONNS", "many")
	code, stdout, stderr = run(t, "doctor")
	require.Equal(t, cli.ExitAttention, code, stderr)
	require.Contains(t, stdout, "FAIL  database    database: CHATDB_MAX_OPEN_CONNS: not an integer")
	require.Contains(t, stdout, "0 ok, 1 failed, 6 skipped")

	// Other commands cannot run without their configuration.
	code, _, stderr = run(t, "demo")
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, stderr, "CHATDB_MAX_OPEN_CONNS: not an integer")
	t.Setenv("CHATDB_MAX_OPEN_CONNS", "")

	// An unknown driver is a configuration problem, not an unreachable server.
	t.Setenv("CHATDB_PG_DRIVER", "odbc")
	code, stdout, _ = run(t, "doctor", "--url", "postgres://chat:hunter2@127.0.0.1:"+closedPort(t)+"/chat?sslmode=disable")
	require.Equal(t, cli.ExitAttention, code)
	require.Contains(t, stdout, `unknown PostgreSQL driver "odbc"`)
	require.Contains(t, stdout, "check --url or DATABASE_URL")
	require.NotContains(t, stdout, "hunter2")
}

// TestDoctorReplicas: a line per replica of CHATDB_REPLICA_URLS, failing for
// one that is down (its password redacted) and for one that is not in
// recovery (here the primary itself, named as its own replica).
func TestDoctorReplicas(t *testing.T) {
	cfg := dbtest.Config(t, dbtest.PGX)
	down := "postgres://chat:hunter2@127.0.0.1:" + closedPort(t) + "/chat?sslmode=disable"
	t.Setenv("CHATDB_REPLICA_URLS", down+","+cfg.URL)
	code, stdout, stderr := run(t, "doctor", "--url", cfg.URL)
	require.Equal(t, cli.ExitAttention, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Regexp(t, `(?m)^FAIL  replica     replica1 postgres://chat:xxxxx@127\.0\.0\.1:\d+/chat\?sslmode=disable: down: `, stdout)
	require.Regexp(t, `(?m)^FAIL  replica     replica2 .*: promoted: not in recovery`, stdout)
	require.Contains(t, stdout, "-> remove it from CHATDB_REPLICA_URLS")
	require.Contains(t, stdout, "7 ok, 2 failed, 0 skipped")
	require.NotContains(t, stdout+stderr, "hunter2")
}

// TestDoctorReplicaHealthy: a streaming standby is an OK line with its lag
// and replay position.
func TestDoctorReplicaHealthy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary and a standby")
	}
	rs := dbtest.StartReplicas(t, 1)
	t.Setenv("CHATDB_REPLICA_URLS", rs.Standbys[0].URL())
	code, stdout, stderr := run(t, "doctor", "--url", rs.Primary.URL())
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Regexp(t, `(?m)^OK    replica     replica1 postgres://postgres@127\.0\.0\.1:\d+/postgres\?sslmode=disable: healthy, lag \S+ \(\d+ bytes\), replay at [0-9A-F]+/[0-9A-F]+$`, stdout)
	require.Contains(t, stdout, "8 ok, 0 failed, 0 skipped")
}
