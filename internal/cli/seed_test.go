package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/internal/cli"
	"github.com/chatdb/chatdb/schema/schematype"
)

// openCfg opens cfg for the test's own queries.
func openCfg(t *testing.T, cfg database.Config) *database.DB {
	t.Helper()
	db, err := database.Open(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, db *database.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// seedDump renders everything a seed run wrote that does not depend on the
// run (IDs and times do): users, chats with their members, and each chat's
// messages in history order. Chats are keyed by kind, title, creator and
// members, and listed sorted, since they get different IDs in each database.
func seedDump(t *testing.T, db *database.DB) []string {
	t.Helper()
	ctx := context.Background()
	q := func(query string, scan func(rows interface{ Scan(...any) error }) error) {
		rows, err := db.SQL().QueryContext(ctx, query)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			require.NoError(t, scan(rows))
		}
		require.NoError(t, rows.Err())
	}
	var users []string
	q(`SELECT email, display_name FROM users ORDER BY email`, func(r interface{ Scan(...any) error }) error {
		var email, name string
		err := r.Scan(&email, &name)
		users = append(users, "user "+email+" "+name)
		return err
	})
	type chatRow struct {
		key      string
		members  []string
		messages []string
	}
	chats := map[string]*chatRow{}
	var ids []string
	q(`SELECT c.id, c.kind, COALESCE(c.title, ''), u.email FROM chats c JOIN users u ON u.id = c.created_by`, func(r interface{ Scan(...any) error }) error {
		var id, kind, title, creator string
		err := r.Scan(&id, &kind, &title, &creator)
		chats[id] = &chatRow{key: fmt.Sprintf("chat %s %q by %s", kind, title, creator)}
		ids = append(ids, id)
		return err
	})
	q(`SELECT m.chat_id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id`, func(r interface{ Scan(...any) error }) error {
		var id, email, role string
		err := r.Scan(&id, &email, &role)
		chats[id].members = append(chats[id].members, email+" "+role)
		return err
	})
	q(`SELECT m.chat_id, COALESCE(u.email, ''), m.role, m.content, m.metadata
		FROM messages m LEFT JOIN users u ON u.id = m.sender_id
		ORDER BY m.chat_id, m.created_at, m.id`, func(r interface{ Scan(...any) error }) error {
		var id, sender, role, content string
		var md schematype.MessageMetadata
		err := r.Scan(&id, &sender, &role, &content, &md)
		b, _ := json.Marshal(md) // jsonb and SQLite text differ in spacing and key order
		chats[id].messages = append(chats[id].messages, fmt.Sprintf("  %s %s: %s %s", role, sender, content, b))
		return err
	})
	var blocks []string
	for _, id := range ids {
		c := chats[id]
		slices.Sort(c.members)
		blocks = append(blocks, c.key+" with "+strings.Join(c.members, ", ")+"\n"+strings.Join(c.messages, "\n"))
	}
	slices.Sort(blocks)
	return append(users, blocks...)
}

var summaryLine = regexp.MustCompile(`(?m)^  (users|chats|messages|all rows) +(\d+) +in .* rows/s(?: \(with (\d+) memberships\))?$`)

// summary returns the counts in seed's summary, by name.
func summary(t *testing.T, stdout string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range summaryLine.FindAllStringSubmatch(stdout, -1) {
		n, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		got[m[1]] = n
		if m[3] != "" {
			got["memberships"], _ = strconv.Atoi(m[3])
		}
	}
	require.Len(t, got, 5, stdout)
	return got
}

func TestSeedCounts(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.EmptyConfig(t, target)
		code, stdout, stderr := run(t, append([]string{"seed", "--users", "12", "--chats", "9", "--messages", "300", "--seed", "3", "--batch", "40"}, dbArgs(target, cfg)...)...)
		require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		got := summary(t, stdout)
		require.Equal(t, 12, got["users"])
		require.Equal(t, 9, got["chats"])
		require.Equal(t, 300, got["messages"])
		// Progress goes to stderr as lines, since it is not a terminal.
		require.Contains(t, stderr, "seed: messages 300/300 (100%)")

		db := openCfg(t, cfg)
		require.Equal(t, 12, count(t, db, "users"))
		require.Equal(t, 9, count(t, db, "chats"))
		require.Equal(t, 300, count(t, db, "messages"))
		require.Equal(t, got["memberships"], count(t, db, "memberships"))
		require.Equal(t, got["users"]+got["chats"]+got["memberships"]+got["messages"], got["all rows"])

		// Every chat's last_message_at is its newest message, for the inbox.
		var stale int
		require.NoError(t, db.SQL().QueryRowContext(t.Context(), `SELECT count(*) FROM chats c
			WHERE c.last_message_at < (SELECT max(m.created_at) FROM messages m WHERE m.chat_id = c.id)`).Scan(&stale))
		require.Zero(t, stale)
	})
}

// TestSeedReproducible loads the same seed into fresh databases, on both
// dialects, and gets the same data; another seed gives other data.
func TestSeedReproducible(t *testing.T) {
	t.Parallel()
	args := []string{"seed", "--users", "15", "--chats", "10", "--messages", "250", "--batch", "30", "--progress", "none"}
	load := func(t *testing.T, target dbtest.Target, seed string) []string {
		cfg := dbtest.EmptyConfig(t, target)
		code, stdout, stderr := run(t, append(append(args, "--seed", seed), dbArgs(target, cfg)...)...)
		require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		return seedDump(t, openCfg(t, cfg))
	}
	first := load(t, dbtest.SQLite, "11")
	require.Len(t, first, 15+10)
	require.Equal(t, first, load(t, dbtest.SQLite, "11"), "the same seed, on a fresh database")
	require.NotEqual(t, first, load(t, dbtest.SQLite, "12"), "another seed")
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		require.Equal(t, first, load(t, target, "11"), "the same seed on PostgreSQL")
	})
}

func TestSeedTwiceRefused(t *testing.T) {
	t.Parallel()
	cfg := dbtest.Config(t, dbtest.SQLite)
	args := []string{"seed", "--users", "3", "--chats", "2", "--messages", "10", "--url", cfg.URL}
	code, _, stderr := run(t, args...)
	require.Equal(t, cli.ExitOK, code, stderr)
	code, stdout, stderr := run(t, args...)
	require.Equal(t, cli.ExitError, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "seed 1 is already loaded")
	require.Equal(t, 3, count(t, openCfg(t, cfg), "users"), "nothing more was written")
}

func TestSeedNothing(t *testing.T) {
	t.Parallel()
	cfg := dbtest.Config(t, dbtest.SQLite)
	code, stdout, stderr := run(t, "seed", "--users", "0", "--chats", "0", "--messages", "0", "--url", cfg.URL)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Equal(t, 0, summary(t, stdout)["all rows"])
}

// TestSeedFewUsers covers plans with too few users for direct chats and
// groups: one user (no pair at all), two (a single pair).
func TestSeedFewUsers(t *testing.T) {
	t.Parallel()
	for _, users := range []string{"1", "2"} {
		cfg := dbtest.EmptyConfig(t, dbtest.SQLite)
		code, stdout, stderr := run(t, "seed", "--users", users, "--chats", "6", "--messages", "40", "--url", cfg.URL, "--progress", "none")
		require.Equal(t, cli.ExitOK, code, "--users %s\nstdout:\n%s\nstderr:\n%s", users, stdout, stderr)
		db := openCfg(t, cfg)
		require.Equal(t, 6, count(t, db, "chats"))
		require.Equal(t, 40, count(t, db, "messages"))
		var direct int
		require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM chats WHERE kind = 'direct'").Scan(&direct))
		require.LessOrEqual(t, direct, 1, "one pair at most")
	}
}

// cancelAfter is a writer for a command's stderr that cancels the command's
// context once n lines matching re have been written.
type cancelAfter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	re     *regexp.Regexp
	n      int
	cancel context.CancelFunc
}

func (w *cancelAfter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n -= len(w.re.FindAll(b, -1))
	if w.n <= 0 {
		w.cancel()
	}
	return w.buf.Write(b)
}

// TestSeedInterruptResume cancels seed's context (as Ctrl-C does) in the
// middle of each phase, on both dialects: it stops, reports the counts the
// database holds, and the same command run again resumes and ends with what
// one uninterrupted run stores.
func TestSeedInterruptResume(t *testing.T) {
	t.Parallel()
	args := []string{"seed", "--users", "30", "--chats", "40", "--messages", "1500", "--seed", "5", "--batch", "25", "--progress", "lines"}
	var want []string // what an uninterrupted run stores
	{
		cfg := dbtest.EmptyConfig(t, dbtest.SQLite)
		code, stdout, stderr := run(t, append(args, "--url", cfg.URL)...)
		require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		want = seedDump(t, openCfg(t, cfg))
	}
	phases := []struct {
		name, statement string // the statement that writes the phase's rows, as --log-queries logs it
		users, chats    bool   // whether the phase is done when it is interrupted
		progress        string
	}{
		{"users", `INSERT INTO \W*users\W`, false, false, "lines"},
		{"chats", `INSERT INTO \W*chats\W`, true, false, "lines"},
		{"messages", `(COPY|INSERT INTO) \W*messages\W`, true, true, "bar"},
	}
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		for _, ph := range phases {
			t.Run(ph.name, func(t *testing.T) {
				t.Parallel()
				cfg := dbtest.EmptyConfig(t, target)
				cmd := append(append([]string{"--log-queries"}, args...), dbArgs(target, cfg)...)
				cmd = append(cmd, "--progress", ph.progress)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var stdout bytes.Buffer
				stderr := &cancelAfter{re: regexp.MustCompile(ph.statement), n: 5, cancel: cancel}
				code := cli.Main(ctx, cmd, &stdout, stderr)
				require.Equal(t, cli.ExitError, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.buf.String())
				require.Empty(t, stdout.String(), "no summary of a run that did not finish")

				db := openCfg(t, cfg)
				users, chats, messages := count(t, db, "users"), count(t, db, "chats"), count(t, db, "messages")
				require.Regexp(t, fmt.Sprintf(`chatdb: seed: interrupted: seed 5 in \S+ holds %d of 30 users, %d of 40 chats and %d of 1500 messages; run the same command again, with --seed 5, to load the rest`, users, chats, messages), stderr.buf.String())
				require.Equal(t, ph.users, users == 30, "users: %d", users)
				require.Equal(t, ph.chats, chats == 40, "chats: %d", chats)
				require.Less(t, messages, 1500)
				require.False(t, strings.Contains(stderr.buf.String(), "1500/1500"), "the progress shows what was done, not 100%")

				code, out, errOut := run(t, append(args, dbArgs(target, cfg)...)...)
				require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
				require.Contains(t, errOut, fmt.Sprintf("seed: resuming seed 5 in %s: %d of 30 users, %d of 40 chats and %d of 1500 messages are stored already", db.URL(), users, chats, messages))
				got := summary(t, out)
				require.Equal(t, 30-users, got["users"])
				require.Equal(t, 40-chats, got["chats"])
				require.Equal(t, 1500-messages, got["messages"])
				require.Equal(t, want, seedDump(t, db), "the same data as one uninterrupted run")

				code, _, errOut = run(t, append(args, dbArgs(target, cfg)...)...)
				require.Equal(t, cli.ExitError, code)
				require.Contains(t, errOut, "seed 5 is already loaded")
			})
		}
	})
}

// TestSeedOtherCounts: a seed loaded with other counts is not resumed with
// these: the users or chats would not be the plan's.
func TestSeedOtherCounts(t *testing.T) {
	t.Parallel()
	cfg := dbtest.Config(t, dbtest.SQLite)
	code, _, stderr := run(t, "seed", "--users", "6", "--chats", "4", "--messages", "20", "--url", cfg.URL)
	require.Equal(t, cli.ExitOK, code, stderr)
	code, stdout, stderr := run(t, "seed", "--users", "5", "--chats", "4", "--messages", "20", "--url", cfg.URL)
	require.Equal(t, cli.ExitError, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "the database holds data of this seed that these counts do not make")
	require.Equal(t, 6, count(t, openCfg(t, cfg), "users"), "nothing more was written")
}
