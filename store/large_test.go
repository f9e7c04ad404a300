package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/store"
)

// bulkUsers writes n live users straight into the users table, by COPY, as a
// platform's sign-up would have: the set-up of the large-group tests, where
// n CreateUser calls would take minutes.
func bulkUsers(t *testing.T, db *database.DB, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	rows := make([][]any, n)
	now := schema.Now()
	tag := uuid.New().String()[:8]
	for i := range ids {
		ids[i] = schema.NewID()
		rows[i] = []any{ids[i], now, now, fmt.Sprintf("bulk-%s-%d@example.com", tag, i), fmt.Sprint("member ", i), "active"}
	}
	err := db.WithConnTx(t.Context(), func(ctx context.Context, conn *sql.Conn, _ *ent.Client) error {
		_, err := db.CopyFrom(ctx, conn, "users", []string{"id", "created_at", "updated_at", "email", "display_name", "status"}, rows)
		return err
	})
	require.NoError(t, err)
	return ids
}

// TestGroupsOfAHundredThousand creates a group of 100,000 members in one call
// and appends to it, on every target: the members are written in bulk (COPY on
// PostgreSQL), the chat is large, an append writes no member's row but the
// sender's, and every member sees it as unread.
func TestGroupsOfAHundredThousand(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		owner := e.user("owner")
		members := bulkUsers(t, e.db, store.MaxMembersPerCall)
		start := time.Now()
		g, err := e.s.CreateGroupChat(e.as(owner), "everyone", members)
		require.NoError(t, err)
		t.Logf("%d members added in %v", len(members), time.Since(start).Round(time.Millisecond))
		require.Equal(t, store.MaxMembersPerCall+1, e.countMembers(g.ID))
		require.True(t, e.chat(g).Large)

		// Appends to it change no membership but the sender's.
		before := e.membershipStamps(g.ID)
		m := e.say(owner, g, "hello, everyone")
		after := e.membershipStamps(g.ID)
		changed := 0
		for id, s := range after {
			if s != before[id] {
				changed++
			}
		}
		require.Equal(t, 1, changed, "an append to a large chat writes the sender's membership only")
		reader := members[len(members)/2]
		inbox, err := e.s.Inbox(e.as(&store.User{ID: reader}), store.InboxQuery{})
		require.NoError(t, err)
		require.Len(t, inbox, 1)
		require.Equal(t, g.ID, inbox[0].Chat.ID)
		require.Equal(t, 1, inbox[0].Unread)
		require.Equal(t, m.ID, inbox[0].LastMessage.ID)
		require.NoError(t, e.s.MarkRead(e.as(&store.User{ID: reader}), g.ID, m.ID))

		// Too many in one call, a zero ID, an unknown user: refused, nothing
		// written.
		more := append(bulkUsers(t, e.db, 1), members...)
		_, err = e.s.AddMembers(e.as(owner), g.ID, more, "")
		requireKind(t, err, database.ErrInvalid)
		_, err = e.s.CreateGroupChat(e.as(owner), "too many", more)
		requireKind(t, err, database.ErrInvalid)
		_, err = e.s.AddMembers(e.as(owner), g.ID, []uuid.UUID{more[0], uuid.Nil}, "")
		requireKind(t, err, database.ErrInvalid)
		_, err = e.s.AddMembers(e.as(owner), g.ID, []uuid.UUID{more[0], uuid.New()}, "")
		requireKind(t, err, database.ErrNotFound)
		require.Equal(t, store.MaxMembersPerCall+1, e.countMembers(g.ID))
		// Adding everyone again adds only who was not there.
		added, err := e.s.AddMembers(e.as(owner), g.ID, more[:10], membership.RoleMember)
		require.NoError(t, err)
		require.Equal(t, 1, added)
	})
}

// countMembers counts chatID's memberships, as the system.
func (e *env) countMembers(chatID uuid.UUID) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.SQL().QueryRowContext(e.t.Context(),
		`SELECT count(*) FROM memberships WHERE chat_id = $1`, chatID).Scan(&n))
	return n
}

// membershipStamps returns each membership of chatID's inbox time and read
// position, as text: what an append may write.
func (e *env) membershipStamps(chatID uuid.UUID) map[string]string {
	e.t.Helper()
	rows, err := e.db.SQL().QueryContext(e.t.Context(),
		`SELECT CAST(id AS TEXT), CAST(chat_last_message_at AS TEXT) || '|' || CAST(read_seq AS TEXT) FROM memberships WHERE chat_id = $1`, chatID)
	require.NoError(e.t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, stamp string
		require.NoError(e.t, rows.Scan(&id, &stamp))
		out[id] = stamp
	}
	require.NoError(e.t, rows.Err())
	return out
}

// TestTurnsLargeAtTheLimit: a chat turns large when its members pass the
// fan-out limit, counted exactly (users who are members already do not
// count twice), whether they come one by one or in bulk, and then every
// membership, old and new, is large.
func TestTurnsLargeAtTheLimit(t *testing.T) {
	eachTargetOpts(t, []store.Option{store.WithFanOutLimit(4)}, func(t *testing.T, e *env) {
		owner, a, b := e.user("owner"), e.user("a"), e.user("b")
		c := e.group(owner, a, b) // 3 members
		largeFlags := func() (chatLarge bool, members map[bool]int) {
			members = map[bool]int{}
			ms, err := e.db.Client().Membership.Query().Where(membership.ChatID(c.ID)).All(e.sys())
			require.NoError(t, err)
			for _, m := range ms {
				members[m.Large]++
			}
			return e.chat(c).Large, members
		}

		// a and b again, and one new user: 4 members, at the limit.
		d := e.user("d")
		n, err := e.s.AddMembers(e.as(owner), c.ID, []uuid.UUID{a.ID, b.ID, d.ID, d.ID}, "")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		large, members := largeFlags()
		require.False(t, large, "4 members, limit 4")
		require.Equal(t, map[bool]int{false: 4}, members)

		// Bulk, over the limit: every membership large, the new ones as written.
		x, y := e.user("x"), e.user("y")
		n, err = e.s.AddMembers(e.as(owner), c.ID, []uuid.UUID{x.ID, a.ID, y.ID}, "")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		large, members = largeFlags()
		require.True(t, large)
		require.Equal(t, map[bool]int{true: 6}, members)

		// One by one: the fifth member turns it.
		c2 := e.group(owner, a, b)
		_, err = e.s.AddMember(e.as(owner), c2.ID, d.ID, "")
		require.NoError(t, err)
		require.False(t, e.chat(c2).Large, "4 members, limit 4")
		_, err = e.s.AddMember(e.as(owner), c2.ID, x.ID, "")
		require.NoError(t, err)
		require.True(t, e.chat(c2).Large)
		n2, err := e.db.Client().Membership.Query().Where(membership.ChatID(c2.ID), membership.Large(false)).Count(e.sys())
		require.NoError(t, err)
		require.Zero(t, n2)
	})
}
