// Tests of the proxy's reading of the PostgreSQL wire protocol.

package dbtest_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

func TestProxyMessage(t *testing.T) {
	t.Parallel()
	q := func(s string) dbtest.Message { return dbtest.Message{Type: 'Q', Body: []byte(s + "\x00")} }
	parse := func(name, s string) dbtest.Message {
		return dbtest.Message{Type: 'P', Body: []byte(name + "\x00" + s + "\x00\x00\x00")}
	}
	require.Equal(t, "commit", q("commit").SQL())
	require.True(t, q("commit").Runs())
	require.False(t, parse("", "commit").Runs(), "a parse prepares; the execute runs")
	require.Equal(t, "SELECT $1", parse("stmt_1", "SELECT $1").SQL())
	require.Equal(t, "", dbtest.Message{Type: 'S'}.SQL())
	require.Equal(t, "", dbtest.Message{Type: 'P', Body: []byte("no terminator")}.SQL())

	for _, m := range []dbtest.Message{q("commit"), q("COMMIT"), q(" Commit ;"), q("END"), q("commit work")} {
		require.True(t, dbtest.IsCommit(m), "%q", m.Body)
	}
	for _, m := range []dbtest.Message{q("rollback"), q("SELECT 'commit'"), q("commit; select 1"), parse("", "COMMIT"), {Type: 'E', Body: []byte("COMMIT")}} {
		require.False(t, dbtest.IsCommit(m), "%q", m.Body)
	}
	match := dbtest.QueryContains("INSERT INTO t")
	require.True(t, match(q("insert into t values (1)")))
	require.False(t, match(parse("s", "INSERT INTO t VALUES ($1)")), "matchers match what runs")
	require.False(t, match(q("SELECT 1")))
	require.False(t, match(dbtest.Message{Type: 'B', Body: []byte("INSERT INTO t")}))
	require.True(t, dbtest.QueryContains("")(q("SELECT 1")))
}

// A client that asks for encryption (sslmode=prefer) gets it through the proxy
// when the server offers it, and plain traffic when it does not: the proxy reads
// the SSLRequest and the server's one-byte answer, then forwards what follows
// untouched.
func TestProxyEncryption(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.Config(t, target)
		u, err := url.Parse(cfg.URL)
		require.NoError(t, err)
		q := u.Query()
		q.Set("sslmode", "prefer")
		u.RawQuery = q.Encode()
		cfg.URL = u.String()
		px, cfg := dbtest.ProxyFor(t, cfg)
		cfg.OpenRetryWindow = -1
		db, err := database.Open(t.Context(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		require.GreaterOrEqual(t, px.Accepted(), 1)

		ctx := t.Context()
		conn, err := db.SQL().Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		var serverSSL string
		require.NoError(t, conn.QueryRowContext(ctx, "SHOW ssl").Scan(&serverSSL))
		var encrypted bool
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&encrypted))
		require.Equal(t, serverSSL == "on", encrypted)

		big := strings.Repeat("x", 1<<20)
		var got string
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT $1::text", big).Scan(&got))
		require.Equal(t, big, got)
	})
}
