package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
)

// noEnvironment clears every variable chatdb reads, as on a machine where
// nothing was set up.
func noEnvironment(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" || strings.HasPrefix(name, "CHATDB_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

// maskDemo masks mask's words and the number of migration files, which grows
// with the schema.
func maskDemo(s string) string {
	s = mask(s)
	return regexp.MustCompile(`(applied migration <migration>\.sql\n)+`).ReplaceAllString(s, "applied migration <migration>.sql ...\n")
}

// TestDemoNewcomer runs the demo as the README's first command does: in an
// empty directory, with no environment.
func TestDemoNewcomer(t *testing.T) {
	t.Chdir(t.TempDir())
	noEnvironment(t)

	code, stdout, stderr := run(t, "demo")
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Empty(t, stderr)
	require.FileExists(t, "chatdb.db")
	require.Contains(t, stdout, "chatdb demo on sqlite://chatdb.db")
	require.Contains(t, stdout, "Inbox of Ada Lovelace")
	require.Regexp(t, `(?m)^  Analytical Engine club +group +3 +Alan Turing: Then the test is whether`, stdout)
	require.Regexp(t, `(?m)^  Grace Hopper +direct +0 `, stdout)
	require.Regexp(t, `(?m)^  Ada's research assistant +assistant +1 +Assistant: `, stdout)
	golden(t, "demo_first.golden", maskDemo(stdout))

	code, stdout, stderr = run(t, "demo")
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Empty(t, stderr)
	require.NotContains(t, stdout, "(new)")
	require.Regexp(t, `(?m)^  Analytical Engine club +group +4 `, stdout)
	golden(t, "demo_again.golden", maskDemo(stdout))

	code, stdout, _ = run(t, "doctor")
	require.Equal(t, cli.ExitOK, code, stdout)
}

func TestDemoPostgres(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.EmptyConfig(t, target)
		cfg.URL = withPassword(t, cfg.URL, "hunter2")
		args := append([]string{"demo"}, dbArgs(target, cfg)...)
		for i, unread := range []string{"3", "4", "5"} {
			code, stdout, stderr := run(t, args...)
			require.Equal(t, cli.ExitOK, code, "run %d\nstdout:\n%s\nstderr:\n%s", i+1, stdout, stderr)
			require.Empty(t, stderr)
			require.Regexp(t, `(?m)^  Analytical Engine club +group +`+unread+` `, stdout, "run %d", i+1)
			require.Contains(t, stdout, "driver "+target.Driver())
			require.NotContains(t, stdout, "hunter2")
		}
	})
}

// TestDemoLogQueries checks that query logging shows statements and never
// their arguments: message bodies, emails, password hashes.
func TestDemoLogQueries(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "chat.db")
	code, stdout, stderr := run(t, "--log-queries", "demo", "--url", path)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stderr, "level=DEBUG msg=query sql=")
	require.Contains(t, stderr, "INSERT INTO")
	require.NotContains(t, stderr, "args=")
	for _, secret := range []string{"Note G is remarkable", "ada@example.com"} {
		require.Contains(t, stdout, secret, "the demo did write it")
		require.NotContains(t, stderr, secret)
	}

	// Without the flag, a quiet stderr.
	code, _, stderr = run(t, "demo", "--url", path)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Empty(t, stderr)

	// An explicit level above debug keeps statements out.
	code, _, stderr = run(t, "--log-queries", "--log-level", "info", "demo", "--url", path)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.NotContains(t, stderr, "msg=query")
}

func TestDemoUnreachable(t *testing.T) {
	u := "postgres://chat:hunter2@127.0.0.1:" + closedPort(t) + "/chat?sslmode=disable"
	t.Setenv("CHATDB_OPEN_RETRY_WINDOW", "-1s")
	code, stdout, stderr := run(t, "demo", "--url", u)
	require.Equal(t, cli.ExitError, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "chatdb: demo: database: cannot connect to postgres://chat:xxxxx@")
	require.Contains(t, stderr, "hint: nothing accepts connections on 127.0.0.1:")
	require.NotContains(t, stderr, "hunter2")
}

// TestDemoConcurrent runs two demos at once on one database, each pausing
// where demos without a lock would both create a chat (the other, if it is
// there too, gets up to a second to catch up), and finds one of each chat.
func TestDemoConcurrent(t *testing.T) {
	// Not parallel: the race hook is the package's.
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		cfg := dbtest.EmptyConfig(t, target)
		args := append([]string{"demo"}, dbArgs(target, cfg)...)
		code, _, stderr := run(t, "migrate", "apply", "--url", cfg.URL)
		require.Equal(t, cli.ExitOK, code, stderr)

		var mu sync.Mutex
		arrived := 0
		both := make(chan struct{})
		cli.SetDemoRace(t, func() {
			mu.Lock()
			arrived++
			if arrived == 2 {
				close(both)
			}
			mu.Unlock()
			select {
			case <-both:
			case <-time.After(time.Second):
			}
		})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				code, stdout, stderr := run(t, args...)
				assert.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			})
		}
		wg.Wait()

		db := openCfg(t, cfg)
		for _, kind := range []string{"direct", "group", "assistant"} {
			var n int
			require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM chats WHERE kind = '"+kind+"'").Scan(&n))
			require.Equal(t, 1, n, "%s chats", kind)
		}
	})
}
