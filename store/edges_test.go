package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/store"
)

// Writes through the ent client keep what the store keeps: a member cannot
// date a message or a chat in the future, a message written through the client
// takes its place in the chat's sequence (a reader following with a cursor
// sees it) and moves the chat in its members' inboxes, a reply stays in its
// chat, and nobody writes another member's read position.
func TestClientKeepsStoreFields(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		client := e.db.Client()
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		g := e.group(ada, bob)
		other := e.group(carol)
		first := e.say(ada, g, "first")
		elsewhere := e.say(carol, other, "elsewhere")
		cursor := store.CursorOf(first)
		inTx := func(as *store.User, build func(*ent.MessageCreate)) (*ent.Message, error) {
			var m *ent.Message
			err := e.db.WithTxContext(e.as(as), func(ctx context.Context, tx *ent.Tx) error {
				mc := tx.Message.Create().SetChatID(g.ID).SetRole(message.RoleUser).SetSenderID(as.ID).SetContent("through the client")
				build(mc)
				var err error
				m, err = mc.Save(ctx)
				return err
			})
			return m, err
		}

		// Dated in the future: refused, nothing written.
		_, err := inTx(bob, func(mc *ent.MessageCreate) { mc.SetCreatedAt(time.Now().Add(24 * time.Hour)) })
		require.ErrorIs(t, err, schema.ErrFutureTime)
		requireKind(t, database.MapError(err), database.ErrInvalid)
		require.Equal(t, 1, e.countMessages(g))

		// Dated in the past: it takes the next seq and a time no earlier than
		// the chat's last message, so a reader following with a cursor sees it.
		m, err := inTx(bob, func(mc *ent.MessageCreate) { mc.SetCreatedAt(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)).SetSeq(999) })
		require.NoError(t, err)
		require.Equal(t, first.Seq+1, m.Seq, "the seq is the store's, not the writer's")
		require.False(t, m.CreatedAt.Before(first.CreatedAt))
		page, err := e.s.History(e.as(ada), g.ID, store.HistoryQuery{After: cursor})
		require.NoError(t, err)
		require.Len(t, page.Messages, 1)
		require.Equal(t, m.ID, page.Messages[0].ID)
		// ... and moved the chat for its members: ada has it unread, bob not.
		require.Equal(t, 1, unread(t, e, ada, g.ID))
		require.Equal(t, 0, unread(t, e, bob, g.ID))
		require.EqualValues(t, m.Seq, e.chat(g).LastSeq)
		require.True(t, e.chat(g).LastMessageAt.Equal(m.CreatedAt))

		// A reply into another chat: refused.
		_, err = inTx(bob, func(mc *ent.MessageCreate) { mc.SetReplyToID(elsewhere.ID) })
		require.ErrorIs(t, err, schema.ErrReplyOutside)

		// A chat dated in the future, or created with a sequence: refused, or
		// started as the store starts one.
		_, err = client.Chat.Create().SetKind(chat.KindGroup).SetCreatedBy(bob.ID).
			SetCreatedAt(time.Now().Add(time.Hour)).Save(e.as(bob))
		require.ErrorIs(t, err, schema.ErrFutureTime)
		c, err := client.Chat.Create().SetKind(chat.KindGroup).SetCreatedBy(bob.ID).
			SetLastMessageAt(time.Now().Add(365 * 24 * time.Hour)).SetLastSeq(42).SetLarge(true).Save(e.as(bob))
		require.NoError(t, err)
		require.True(t, c.LastMessageAt.Equal(c.CreatedAt), "a new chat's time is its creation")
		require.Zero(t, c.LastSeq)
		require.False(t, c.Large)

		// A membership joined in the future: refused. Another member's read
		// position: not written.
		_, err = client.Membership.Create().SetChatID(g.ID).SetUserID(carol.ID).
			SetJoinedAt(time.Now().Add(time.Hour)).Save(e.as(ada))
		require.ErrorIs(t, err, schema.ErrFutureTime)
		requireNoRow(t)(client.Membership.Update().
			Where(membership.ChatID(g.ID), membership.UserID(bob.ID)).SetReadSeq(0).Save(e.as(ada)))
		requireNoRow(t)(client.Membership.Update().
			Where(membership.ChatID(g.ID), membership.UserID(bob.ID)).SetLastReadMessageID(first.ID).Save(e.as(ada)))
		_, err = client.Membership.Update().
			Where(membership.ChatID(g.ID), membership.UserID(ada.ID)).SetChatLastMessageAt(time.Now().Add(time.Hour)).Save(e.as(ada))
		requireDenied(t, err)
	})
}

// A retry must be identical in everything the caller sent: the same ID with
// other metadata is a conflict, and the same metadata spelled another way
// (an int where the store keeps a float) is the same.
func TestAppendRetryMetadata(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		nm := store.NewMessage{ID: schema.NewID(), ChatID: c.ID, Content: "answer",
			Metadata: schematype.MessageMetadata{Model: "m1", PromptTokens: 3, Extra: map[string]any{"n": 1}}}
		first, err := e.s.AppendMessage(e.as(ada), nm)
		require.NoError(t, err)
		again, err := e.s.AppendMessage(e.as(ada), nm)
		require.NoError(t, err)
		require.Equal(t, first.Seq, again.Seq)
		for name, md := range map[string]schematype.MessageMetadata{
			"another model": {Model: "m2", PromptTokens: 3, Extra: map[string]any{"n": 1}},
			"other tokens":  {Model: "m1", PromptTokens: 4, Extra: map[string]any{"n": 1}},
			"another extra": {Model: "m1", PromptTokens: 3, Extra: map[string]any{"n": 2}},
			"no metadata":   {},
			"an attachment": {Model: "m1", PromptTokens: 3, Extra: map[string]any{"n": 1}, Attachments: []schematype.Attachment{{URL: "https://x/a"}}},
		} {
			t.Run(name, func(t *testing.T) {
				other := nm
				other.Metadata = md
				_, err := e.s.AppendMessage(e.as(ada), other)
				requireKind(t, err, database.ErrConflict)
			})
		}
		require.Equal(t, 1, e.countMessages(c))
	})
}

// Every store write called with a context that carries a transaction is
// refused, the same way on both dialects, and writes nothing, inside the
// transaction or outside it.
func TestWritesInsideTx(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		g := e.group(ada, bob)
		m := e.say(ada, g, "hello")
		hash := "h"
		name := "Ada"
		writes := map[string]func(ctx context.Context) error{
			"CreateUser": func(ctx context.Context) error {
				_, err := e.s.CreateUser(ctx, store.NewUser{Email: "x@example.com", DisplayName: "x"})
				return err
			},
			"UpdateProfile": func(ctx context.Context) error {
				_, err := e.s.UpdateProfile(ctx, ada.ID, store.ProfileUpdate{DisplayName: &name, PasswordHash: &hash})
				return err
			},
			"DeleteUser":       func(ctx context.Context) error { return e.s.DeleteUser(ctx, ada.ID) },
			"CreateDirectChat": func(ctx context.Context) error { _, _, err := e.s.CreateDirectChat(ctx, carol.ID); return err },
			"CreateGroupChat": func(ctx context.Context) error {
				_, err := e.s.CreateGroupChat(ctx, "g", []uuid.UUID{carol.ID})
				return err
			},
			"CreateAssistantChat": func(ctx context.Context) error { _, err := e.s.CreateAssistantChat(ctx, "a"); return err },
			"AddMember":           func(ctx context.Context) error { _, err := e.s.AddMember(ctx, g.ID, carol.ID, ""); return err },
			"AddMembers": func(ctx context.Context) error {
				_, err := e.s.AddMembers(ctx, g.ID, []uuid.UUID{carol.ID}, "")
				return err
			},
			"RemoveMember": func(ctx context.Context) error { return e.s.RemoveMember(ctx, g.ID, bob.ID) },
			"SetRole": func(ctx context.Context) error {
				_, err := e.s.SetRole(ctx, g.ID, bob.ID, membership.RoleAdmin)
				return err
			},
			"ArchiveChat": func(ctx context.Context) error { _, err := e.s.ArchiveChat(ctx, g.ID); return err },
			"AppendMessage": func(ctx context.Context) error {
				_, err := e.s.AppendMessage(ctx, store.NewMessage{ChatID: g.ID, Content: "x"})
				return err
			},
			"EditMessage":   func(ctx context.Context) error { _, err := e.s.EditMessage(ctx, m.ID, "edited"); return err },
			"DeleteMessage": func(ctx context.Context) error { return e.s.DeleteMessage(ctx, m.ID) },
			"MarkRead":      func(ctx context.Context) error { return e.s.MarkRead(ctx, g.ID, m.ID) },
			"ImportMessages": func(ctx context.Context) error {
				_, err := e.s.ImportMessages(ctx, g.ID, []store.NewMessage{{Content: "x"}})
				return err
			},
		}
		for name, write := range writes {
			for _, as := range []context.Context{e.as(ada), e.sys()} {
				before := e.countRows()
				err := e.db.WithTxContext(as, func(ctx context.Context, _ *ent.Tx) error {
					err := write(ctx)
					requireKind(t, err, database.ErrNestedTx)
					return err
				})
				require.ErrorIs(t, err, database.ErrNestedTx, name)
				require.Equal(t, before, e.countRows(), "%s wrote something", name)
			}
		}
	})
}

// countRows counts the rows of the tables the store writes.
func (e *env) countRows() [5]int {
	e.t.Helper()
	var out [5]int
	for i, table := range []string{"users", "chats", "memberships", "messages", "credentials"} {
		require.NoError(e.t, e.db.SQL().QueryRowContext(e.t.Context(), "SELECT count(*) FROM "+table).Scan(&out[i]))
	}
	return out
}

// TestClientCreateBulk: messages created together through the client get
// consecutive seqs in the order given, and leave the chat and its members
// where the last of them leaves them: the sequence hook's after-steps run from
// the last message back to the first, and must not move anything backward.
func TestClientCreateBulk(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		g := e.group(ada, bob)
		e.say(ada, g, "before")
		var made []*ent.Message
		err := e.db.WithTxContext(e.as(ada), func(ctx context.Context, tx *ent.Tx) error {
			builders := make([]*ent.MessageCreate, 3)
			for i := range builders {
				builders[i] = tx.Message.Create().SetChatID(g.ID).SetRole(message.RoleUser).SetSenderID(ada.ID).SetContent("bulk")
			}
			var err error
			made, err = tx.Message.CreateBulk(builders...).Save(ctx)
			return err
		})
		require.NoError(t, err)
		require.Len(t, made, 3)
		for i, m := range made {
			require.Equal(t, int64(2+i), m.Seq)
		}
		last := made[2]
		c := e.chat(g)
		require.Equal(t, last.Seq, c.LastSeq)
		require.True(t, c.LastMessageAt.Equal(last.CreatedAt))
		ms, err := e.db.Client().Membership.Query().Where(membership.ChatID(g.ID)).All(e.sys())
		require.NoError(t, err)
		for _, m := range ms {
			require.True(t, m.ChatLastMessageAt.Equal(last.CreatedAt), "member %s: inbox time %s, last message %s", m.UserID, m.ChatLastMessageAt, last.CreatedAt)
			if m.UserID == ada.ID {
				require.Equal(t, last.Seq, m.ReadSeq)
			}
		}
		page, err := e.s.History(e.as(bob), g.ID, store.HistoryQuery{Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Messages, 4)
		require.Equal(t, last.ID, page.Messages[0].ID)
	})
}
