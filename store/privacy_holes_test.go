package store_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/store"
)

// The holes issue #9 found, each closed by the rules: through the raw ent
// client as a user, and through the store on both backends. The client's
// field and edge predicates are covered by TestClientLeaksNothing.

// Soft deletes are undone by the system only.
func TestPrivacySoftDeleteUndo(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		client := e.db.Client()
		ada, bob := e.user("ada"), e.user("bob")
		g := e.group(ada, bob)
		m := e.say(bob, g, "mine")

		// A deleted user cannot bring themselves back.
		require.NoError(t, e.s.DeleteUser(e.as(bob), bob.ID))
		_, err := client.User.UpdateOneID(bob.ID).ClearDeletedAt().Save(e.as(bob))
		requireDenied(t, err)
		requireNoRow(t)(client.User.Update().Where(user.ID(bob.ID)).SetDisplayName("back").Save(e.as(bob)))
		_, err = e.s.GetUser(e.as(ada), bob.ID)
		requireKind(t, err, database.ErrNotFound)

		// The author cannot restore a message an owner deleted.
		carol := e.user("carol")
		_, err = e.s.AddMember(e.as(ada), g.ID, carol.ID, "")
		require.NoError(t, err)
		cm := e.say(carol, g, "carol's")
		require.NoError(t, e.s.DeleteMessage(e.as(ada), cm.ID))
		_, err = client.Message.UpdateOneID(cm.ID).ClearDeletedAt().SetContent("carol's").Save(e.as(carol))
		requireDenied(t, err)
		_, err = client.Message.UpdateOneID(cm.ID).ClearDeletedAt().SetContent("x").Save(e.as(ada))
		requireDenied(t, err) // not even an owner restores one
		_, err = e.s.EditMessage(e.as(carol), cm.ID, "again")
		requireKind(t, err, database.ErrNotFound)

		// Nor an owner a deleted chat.
		_, err = client.Chat.UpdateOneID(g.ID).SetDeletedAt(schema.Now()).Save(e.as(ada))
		require.NoError(t, err)
		_, err = client.Chat.UpdateOneID(g.ID).ClearDeletedAt().Save(e.as(ada))
		requireDenied(t, err)

		// The system restores.
		_, err = client.User.UpdateOneID(bob.ID).ClearDeletedAt().Save(e.sys())
		require.NoError(t, err)
		_, err = client.Chat.UpdateOneID(g.ID).ClearDeletedAt().Save(e.sys())
		require.NoError(t, err)
		got, err := e.s.History(e.as(bob), g.ID, store.HistoryQuery{Order: store.OldestFirst})
		require.NoError(t, err)
		require.Equal(t, m.ID, got.Messages[0].ID)
	})
}

// A deleted message's content is gone, not hidden: no reader, not even the
// system, gets it back by any field of the client.
func TestPrivacyDeletedContentErased(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		client := e.db.Client()
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		m, err := e.s.AppendMessage(e.as(bob), store.NewMessage{ChatID: c.ID, Content: "regrettable",
			Metadata: schematype.MessageMetadata{Model: "secret-model"}})
		require.NoError(t, err)
		require.NoError(t, e.s.DeleteMessage(e.as(bob), m.ID))

		for _, ctx := range []struct {
			name string
			as   *store.User
		}{{"ada", ada}, {"bob", bob}, {"system", nil}} {
			as := e.sys()
			if ctx.as != nil {
				as = e.as(ctx.as)
			}
			got, err := client.Message.Get(as, m.ID)
			require.NoError(t, err, ctx.name)
			require.Empty(t, got.Content, ctx.name)
			require.True(t, got.Metadata.IsZero(), ctx.name)
			found, err := client.Message.Query().Where(message.ContentEQ("regrettable")).Exist(as)
			require.NoError(t, err)
			require.False(t, found, "%s finds the deleted text by a predicate", ctx.name)
			found, err = client.Message.Query().Where(message.ContentHasPrefix("r")).Exist(as)
			require.NoError(t, err)
			require.False(t, found, ctx.name)
		}
		page, err := e.s.History(e.as(ada), c.ID, store.HistoryQuery{})
		require.NoError(t, err)
		require.Len(t, page.Messages, 1)
		require.NotNil(t, page.Messages[0].DeletedAt)
		require.Empty(t, page.Messages[0].Content)
		require.True(t, page.Messages[0].Metadata.IsZero())
		// The row is still there, so a reply to it stays valid.
		_, err = e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: c.ID, Content: "what was that?", ReplyTo: m.ID})
		require.NoError(t, err)
	})
}

// State the viewer no longer has does not count: a removed member, a deleted
// user with a live session, a deleted chat, a direct chat's pair.
func TestPrivacyLostState(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		client := e.db.Client()
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		g := e.group(ada, bob, carol)

		// A removed member neither edits nor deletes their old messages, and
		// nothing of the edit is stored.
		old := e.say(bob, g, "before")
		require.NoError(t, e.s.RemoveMember(e.as(ada), g.ID, bob.ID))
		_, err := e.s.EditMessage(e.as(bob), old.ID, "after")
		requireKind(t, err, database.ErrNotFound)
		requireKind(t, e.s.DeleteMessage(e.as(bob), old.ID), database.ErrNotFound)
		requireNoRow(t)(client.Message.Update().Where(message.ID(old.ID)).SetContent("after").Save(e.as(bob)))
		stored, err := client.Message.Get(e.sys(), old.ID)
		require.NoError(t, err)
		require.Equal(t, "before", stored.Content)
		require.Nil(t, stored.EditedAt)

		// A deleted user whose session is still alive creates nothing.
		require.NoError(t, e.s.DeleteUser(e.as(carol), carol.ID))
		before := e.countChats()
		_, err = e.s.CreateGroupChat(e.as(carol), "mine", nil)
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.CreateGroupChat(e.as(carol), "ours", []uuid.UUID{ada.ID})
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.CreateAssistantChat(e.as(carol), "ask")
		requireKind(t, err, store.ErrForbidden)
		_, _, err = e.s.CreateDirectChat(e.as(carol), ada.ID)
		requireKind(t, err, store.ErrForbidden)
		_, err = client.Chat.Create().SetKind(chat.KindGroup).SetCreatedBy(carol.ID).Save(e.as(carol))
		requireDenied(t, err)
		require.Equal(t, before, e.countChats())
		// Nor reads: the chats they were in are gone for them.
		_, err = e.s.History(e.as(carol), g.ID, store.HistoryQuery{})
		requireKind(t, err, database.ErrNotFound)
		inbox, err := e.s.Inbox(e.as(carol), store.InboxQuery{})
		require.NoError(t, err)
		require.Empty(t, inbox)
		_, err = e.s.GetUser(e.as(carol), ada.ID)
		requireKind(t, err, database.ErrNotFound)

		// A deleted chat is gone for every entry point.
		m := e.say(ada, g, "last words")
		_, err = client.Chat.UpdateOneID(g.ID).SetDeletedAt(schema.Now()).Save(e.as(ada))
		require.NoError(t, err)
		_, err = e.s.GetChat(e.as(ada), g.ID)
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.History(e.as(ada), g.ID, store.HistoryQuery{})
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.Members(e.as(ada), g.ID)
		requireKind(t, err, database.ErrNotFound)
		requireKind(t, e.s.MarkRead(e.as(ada), g.ID, m.ID), database.ErrNotFound)
		_, err = e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: g.ID, Content: "x"})
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.AddMember(e.as(ada), g.ID, bob.ID, "")
		requireKind(t, err, store.ErrForbidden)
		inbox, err = e.s.Inbox(e.as(ada), store.InboxQuery{})
		require.NoError(t, err)
		require.Empty(t, inbox)
		n, err := client.Message.Query().Where(message.ChatID(g.ID)).Count(e.as(ada))
		require.NoError(t, err)
		require.Zero(t, n)

		// Both of a direct chat's pair own it, and stay owners.
		d := e.direct(ada, bob)
		_, err = e.s.SetRole(e.as(ada), d.ID, bob.ID, membership.RoleMember)
		requireKind(t, err, store.ErrForbidden)
		requireNoRow(t)(client.Membership.Update().
			Where(membership.ChatID(d.ID), membership.UserID(bob.ID)).SetRole(membership.RoleMember).Save(e.as(ada)))
		ms, err := e.s.Members(e.as(bob), d.ID)
		require.NoError(t, err)
		for _, m := range ms {
			require.Equal(t, membership.RoleOwner, m.Role)
		}
	})
}

// countChats counts every chat row, as the system.
func (e *env) countChats() int {
	e.t.Helper()
	n, err := e.db.Client().Chat.Query().Count(e.sys())
	require.NoError(e.t, err)
	return n
}
