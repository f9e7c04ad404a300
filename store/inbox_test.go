package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/store"
)

func TestInbox(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		gone := e.group(ada, bob)
		quiet := e.group(carol, ada)
		d := e.direct(ada, bob)
		b1 := e.say(bob, d, "one")
		b2 := e.say(bob, d, "two")
		e.say(ada, d, "mine")
		b3 := e.say(bob, d, "three")
		deleted := e.say(bob, d, "oops")
		require.NoError(t, e.s.DeleteMessage(e.as(bob), deleted.ID))
		a, err := e.s.CreateAssistantChat(e.as(ada), "Ask")
		require.NoError(t, err)
		_, err = e.db.Client().Chat.UpdateOneID(gone.ID).SetDeletedAt(schema.Now()).Save(e.sys())
		require.NoError(t, err)
		_, err = e.db.Client().Membership.Update().
			Where(membership.ChatID(quiet.ID), membership.UserID(ada.ID)).SetMuted(true).Save(e.as(ada))
		require.NoError(t, err)

		inbox, err := e.s.Inbox(e.as(ada), store.InboxQuery{})
		require.NoError(t, err)
		require.Len(t, inbox, 3, "deleted chats are left out")
		// Newest activity first: the assistant chat was created after the direct
		// chat's last message; the quiet chat has had nothing since its creation.
		require.Equal(t, []uuid.UUID{a.ID, d.ID, quiet.ID}, []uuid.UUID{inbox[0].Chat.ID, inbox[1].Chat.ID, inbox[2].Chat.ID})

		ae, de, qe := inbox[0], inbox[1], inbox[2]
		require.Equal(t, chat.KindAssistant, ae.Chat.Kind)
		require.Equal(t, "Ask", ae.Chat.Title)
		require.Nil(t, ae.LastMessage)
		require.Zero(t, ae.Unread)
		require.Equal(t, membership.RoleOwner, ae.Membership.Role)

		require.NotNil(t, de.LastMessage)
		require.Equal(t, deleted.ID, de.LastMessage.ID)
		require.NotNil(t, de.LastMessage.DeletedAt)
		require.Empty(t, de.LastMessage.Content, "a deleted last message is blanked")
		require.Equal(t, 2, de.Unread, "after ada's own message (which moved her read position): bob's third and the deleted one, which keeps its place")
		require.True(t, de.Chat.LastMessageAt.Equal(deleted.CreatedAt))
		require.Equal(t, ada.ID, de.Membership.UserID)

		require.True(t, qe.Membership.Muted)
		require.Equal(t, membership.RoleMember, qe.Membership.Role)
		require.Equal(t, carol.ID, qe.Chat.CreatedBy)

		// Reading moves the position forward only; ada's own message had moved
		// it past b1 and b2 already.
		require.NoError(t, e.s.MarkRead(e.as(ada), d.ID, b2.ID))
		require.Equal(t, 2, unread(t, e, ada, d.ID), "marking an older message read changes nothing")
		require.NoError(t, e.s.MarkRead(e.as(ada), d.ID, b1.ID))
		require.Equal(t, 2, unread(t, e, ada, d.ID))
		require.NoError(t, e.s.MarkRead(e.as(ada), d.ID, b3.ID))
		require.Equal(t, 1, unread(t, e, ada, d.ID), "the deleted message after b3")
		require.NoError(t, e.s.MarkRead(e.as(ada), d.ID, deleted.ID))
		require.Zero(t, unread(t, e, ada, d.ID))
		require.Zero(t, unread(t, e, bob, d.ID), "bob sent the last two, after ada's message")

		// Marking read needs a message of that chat.
		requireKind(t, e.s.MarkRead(e.as(ada), d.ID, uuid.New()), database.ErrNotFound)
		other := e.say(carol, quiet, "in another chat")
		requireKind(t, e.s.MarkRead(e.as(ada), d.ID, other.ID), database.ErrNotFound)
		requireKind(t, e.s.MarkRead(e.as(e.user("eve")), d.ID, b3.ID), database.ErrNotFound)
		_, err = e.s.Inbox(e.sys(), store.InboxQuery{})
		requireKind(t, err, store.ErrForbidden)
	})
}

// unread returns u's unread count for chatID from u's inbox.
func unread(t *testing.T, e *env, u *store.User, chatID uuid.UUID) int {
	t.Helper()
	inbox, err := e.s.Inbox(e.as(u), store.InboxQuery{Limit: 200})
	require.NoError(t, err)
	for _, entry := range inbox {
		if entry.Chat.ID == chatID {
			return entry.Unread
		}
	}
	t.Fatalf("chat %s is not in the inbox", chatID)
	return 0
}

func TestInboxPaging(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada := e.user("ada")
		var want []uuid.UUID
		for i := range 25 {
			c := e.group(ada)
			e.say(ada, c, fmt.Sprint(i))
			want = append([]uuid.UUID{c.ID}, want...)
		}
		var got []uuid.UUID
		q := store.InboxQuery{Limit: 10}
		for {
			page, err := e.s.Inbox(e.as(ada), q)
			require.NoError(t, err)
			for _, entry := range page {
				got = append(got, entry.Chat.ID)
			}
			if len(page) < q.Limit {
				break
			}
			q.Before = page[len(page)-1].Cursor
		}
		require.Equal(t, want, got)
		page, err := e.s.Inbox(e.as(ada), store.InboxQuery{})
		require.NoError(t, err)
		require.Len(t, page, 20, "the default limit")
	})
}

// The inbox costs one query whatever the number of chats; history and append
// cost what their doc comments say.
func TestQueryCounts(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		e, count := newCountingEnv(t, target)
		ada, bob := e.user("ada"), e.user("bob")
		inbox := func() (int, int) {
			return count.measure(func() {
				_, err := e.s.Inbox(e.as(ada), store.InboxQuery{Limit: 100})
				require.NoError(t, err)
			})
		}
		d := e.direct(ada, bob)
		e.say(bob, d, "hello")
		s1, r1 := inbox()
		for i := range 30 {
			c := e.group(bob, ada)
			e.say(bob, c, fmt.Sprint(i))
			e.say(ada, c, fmt.Sprint(i))
		}
		s31, r31 := inbox()
		require.Equal(t, 1, s1, "inbox statements")
		require.Equal(t, 1, r1, "inbox round trips")
		require.Equal(t, s1, s31, "inbox statements with 31 chats")
		require.Equal(t, r1, r31, "inbox round trips with 31 chats")

		var page *store.HistoryPage
		s, r := count.measure(func() {
			var err error
			page, err = e.s.History(e.as(ada), d.ID, store.HistoryQuery{})
			require.NoError(t, err)
		})
		require.Equal(t, 1, s, "history statements")
		require.Equal(t, 1, r, "history round trips")
		require.Len(t, page.Messages, 1)

		nm := store.NewMessage{ID: schema.NewID(), ChatID: d.ID, Content: "counted"}
		s, r = count.measure(func() {
			_, err := e.s.AppendMessage(e.as(ada), nm)
			require.NoError(t, err)
		})
		// PostgreSQL: one statement that locks, checks, inserts and bumps; a
		// retry, that statement and the read of the stored message. SQLite: the
		// chat under the rules, the lookup by ID, the insert, the bumps of the
		// chat, the sender's read position and the other members' inbox order,
		// with BEGIN and COMMIT; a retry, the chat, the lookup and the read of
		// the stored message.
		wantS, wantR, retryS, retryR := 1, 1, 2, 2
		if target == dbtest.SQLite {
			wantS, wantR, retryS, retryR = 6, 8, 3, 5
		}
		require.Equal(t, wantS, s, "append statements")
		require.Equal(t, wantR, r, "append round trips")
		s, r = count.measure(func() {
			_, err := e.s.AppendMessage(e.as(ada), nm)
			require.NoError(t, err)
		})
		require.Equal(t, retryS, s, "retried append statements")
		require.Equal(t, retryR, r, "retried append round trips")
		t.Logf("%s: inbox %d/%d, history %d, append %d/%d, retry %d/%d (statements/round trips)",
			target, s1, r1, 1, wantS, wantR, retryS, retryR)
	})
}

// TestInboxOrderCopy checks the memberships' copy of their chat's
// last_message_at, which the inbox is ordered by: appends and imports move every
// member's copy with the chat, a member who joins later starts at the joining
// time, and an inbox pages through many chats in order without a repeat.
func TestInboxOrderCopy(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		g := e.group(ada, bob)
		copies := func(c *store.Chat) map[uuid.UUID]time.Time {
			ms, err := e.db.Client().Membership.Query().Where(membership.ChatID(c.ID)).All(e.sys())
			require.NoError(t, err)
			out := map[uuid.UUID]time.Time{}
			for _, m := range ms {
				out[m.UserID] = m.ChatLastMessageAt
			}
			return out
		}
		for _, at := range copies(g) {
			require.True(t, at.Equal(e.chat(g).LastMessageAt), "a new chat's members start at its creation")
		}
		m := e.say(bob, g, "hello")
		for _, at := range copies(g) {
			require.True(t, at.Equal(m.CreatedAt), "an append moves every member's copy")
		}
		_, err := e.s.AddMember(e.as(ada), g.ID, carol.ID, "")
		require.NoError(t, err)
		require.False(t, copies(g)[carol.ID].Before(m.CreatedAt), "a later member starts at the joining time")
		n, err := e.s.ImportMessages(e.sys(), g.ID, []store.NewMessage{{Content: "imported", SenderID: ada.ID}})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		last := e.chat(g).LastMessageAt
		for u, at := range copies(g) {
			require.True(t, at.Equal(last), "an import moves every member's copy (%s)", u)
		}

		// Paging through more chats than a page, newest first, each once.
		var want []uuid.UUID
		for i := range 7 {
			c := e.group(bob, ada)
			if i%2 == 0 {
				e.say(bob, c, "x")
			}
			want = append([]uuid.UUID{c.ID}, want...)
		}
		want = append(want, g.ID)
		var got []uuid.UUID
		var cur store.Cursor
		for {
			page, err := e.s.Inbox(e.as(ada), store.InboxQuery{Limit: 3, Before: cur})
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			for _, en := range page {
				got = append(got, en.Chat.ID)
			}
			cur = page[len(page)-1].Cursor
		}
		require.Equal(t, want, got)
	})
}
