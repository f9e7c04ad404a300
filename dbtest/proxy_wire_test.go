// Tests of the proxy's reading of the PostgreSQL wire protocol.

package dbtest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

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
