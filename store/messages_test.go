package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/store"
)

func TestAppendMessage(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		md := schematype.MessageMetadata{Attachments: []schematype.Attachment{{URL: "https://x/a.png", Name: "a.png"}}}
		m, err := e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: c.ID, Content: "hello", Metadata: md})
		require.NoError(t, err)
		require.NotEqual(t, uuid.Nil, m.ID)
		require.Equal(t, message.RoleUser, m.Role)
		require.Equal(t, ada.ID, m.SenderID)
		require.Equal(t, md, m.Metadata)
		require.True(t, e.chat(c).LastMessageAt.Equal(m.CreatedAt), "last_message_at is the message's time")

		reply, err := e.s.AppendMessage(e.as(bob), store.NewMessage{ChatID: c.ID, Content: "hi", ReplyTo: m.ID})
		require.NoError(t, err)
		require.Equal(t, m.ID, reply.ReplyTo)
		require.True(t, reply.CreatedAt.After(m.CreatedAt))

		h := e.history(bob, c)
		require.Len(t, h, 2)
		require.Equal(t, md, h[0].Metadata)
		require.True(t, h[0].CreatedAt.Equal(m.CreatedAt), "the time read back is the time written")
	})
}

// created_at increases in commit order even when the clock stands still or
// steps back.
func TestAppendMessageMonotonic(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		var mu sync.Mutex
		now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		e := newEnv(t, target, store.WithClock(clock))
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		m1 := e.say(ada, c, "one")
		m2 := e.say(bob, c, "two")
		mu.Lock()
		now = now.Add(-time.Hour)
		mu.Unlock()
		m3 := e.say(ada, c, "three")
		// The order is the seq, gapless; times never go back, even when the
		// clock does, and may be equal.
		require.Equal(t, []int64{1, 2, 3}, []int64{m1.Seq, m2.Seq, m3.Seq})
		require.True(t, m1.CreatedAt.Equal(now.Add(time.Hour)), "the clock's time")
		require.True(t, m2.CreatedAt.Equal(m1.CreatedAt))
		require.True(t, m3.CreatedAt.Equal(m2.CreatedAt), "not before the chat's last message")
		require.EqualValues(t, 3, e.chat(c).LastSeq)
	})
}

func TestAppendMessageIdempotent(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		nm := store.NewMessage{ID: schema.NewID(), ChatID: c.ID, Content: "once"}
		m1, err := e.s.AppendMessage(e.as(ada), nm)
		require.NoError(t, err)
		bumped := e.chat(c).LastMessageAt
		m2, err := e.s.AppendMessage(e.as(ada), nm)
		require.NoError(t, err)
		require.Equal(t, m1.ID, m2.ID)
		require.True(t, m1.CreatedAt.Equal(m2.CreatedAt))
		require.True(t, bumped.Equal(e.chat(c).LastMessageAt), "a retry writes nothing")
		require.Equal(t, 1, e.countMessages(c))

		// The same ID with anything else is a conflict.
		other := nm
		other.Content = "twice"
		_, err = e.s.AppendMessage(e.as(ada), other)
		requireKind(t, err, database.ErrConflict)
		_, err = e.s.AppendMessage(e.as(bob), nm)
		requireKind(t, err, database.ErrConflict)
		elsewhere := nm
		elsewhere.ChatID = e.group(ada).ID
		_, err = e.s.AppendMessage(e.as(ada), elsewhere)
		requireKind(t, err, database.ErrConflict)
		require.Equal(t, 1, e.countMessages(c))
	})
}

// The same append retried by many goroutines at once: one row, one bump, and
// every caller gets the stored message.
func TestAppendMessageRace(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		before := e.chat(c).LastMessageAt
		nm := store.NewMessage{ID: schema.NewID(), ChatID: c.ID, Content: "retried"}
		const n = 10
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			got   [n]*store.Message
			errs  [n]error
		)
		for i := range n {
			wg.Go(func() {
				<-start
				got[i], errs[i] = e.s.AppendMessage(e.as(ada), nm)
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, nm.ID, got[i].ID)
			require.True(t, got[0].CreatedAt.Equal(got[i].CreatedAt))
		}
		require.Equal(t, 1, e.countMessages(c))
		last := e.chat(c).LastMessageAt
		require.True(t, last.Equal(got[0].CreatedAt), "bumped once, to the message's time")
		require.True(t, last.After(before))
	})
}

// Bad input is refused before any SQL and writes nothing.
func TestAppendMessageInvalid(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		other := e.direct(ada, e.user("carol"))
		elsewhere := e.say(ada, other, "elsewhere")
		before := e.chat(c).LastMessageAt
		cases := []struct {
			name string
			m    store.NewMessage
			want error
		}{
			{"empty", store.NewMessage{ChatID: c.ID, Content: "  "}, database.ErrInvalid},
			{"too long", store.NewMessage{ChatID: c.ID, Content: strings.Repeat("a", schema.MaxContentBytes+1)}, database.ErrInvalid},
			{"NUL", store.NewMessage{ChatID: c.ID, Content: "a\x00b"}, database.ErrInvalid},
			{"invalid UTF-8", store.NewMessage{ChatID: c.ID, Content: "\xff"}, database.ErrInvalid},
			{"bad metadata", store.NewMessage{ChatID: c.ID, Content: "x", Metadata: schematype.MessageMetadata{Model: "\x00"}}, database.ErrInvalid},
			{"bad role", store.NewMessage{ChatID: c.ID, Content: "x", Role: "robot"}, database.ErrInvalid},
			{"unknown chat", store.NewMessage{ChatID: uuid.New(), Content: "x"}, database.ErrNotFound},
			{"reply in another chat", store.NewMessage{ChatID: c.ID, Content: "x", ReplyTo: elsewhere.ID}, database.ErrInvalidReference},
			{"reply to nothing", store.NewMessage{ChatID: c.ID, Content: "x", ReplyTo: uuid.New()}, database.ErrInvalidReference},
			{"another sender", store.NewMessage{ChatID: c.ID, Content: "x", SenderID: bob.ID}, store.ErrForbidden},
			{"system role", store.NewMessage{ChatID: c.ID, Content: "x", Role: message.RoleSystem}, store.ErrForbidden},
			{"assistant outside an assistant chat", store.NewMessage{ChatID: c.ID, Content: "x", Role: message.RoleAssistant}, store.ErrForbidden},
		}
		for _, tc := range cases {
			_, err := e.s.AppendMessage(e.as(ada), tc.m)
			requireKind(t, err, tc.want)
			require.NotContains(t, err.Error(), strings.Repeat("a", 100), "%s: the error repeats the content", tc.name)
		}
		require.Zero(t, e.countMessages(c))
		require.True(t, before.Equal(e.chat(c).LastMessageAt))
	})
}

// Assistant and tool messages have no sender and go to assistant chats; system
// messages are the system's.
func TestAppendMessageRoles(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada := e.user("ada")
		c, err := e.s.CreateAssistantChat(e.as(ada), "Ask")
		require.NoError(t, err)
		e.say(ada, c, "question")
		a, err := e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: c.ID, Role: message.RoleAssistant, Content: "answer",
			Metadata: schematype.MessageMetadata{Model: "m", PromptTokens: 3, CompletionTokens: 5}})
		require.NoError(t, err)
		require.Equal(t, uuid.Nil, a.SenderID)
		_, err = e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: c.ID, Role: message.RoleTool, Content: "{}"})
		require.NoError(t, err)
		_, err = e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: c.ID, Role: message.RoleSystem, Content: "be brief"})
		requireKind(t, err, store.ErrForbidden)
		s, err := e.s.AppendMessage(e.sys(), store.NewMessage{ChatID: c.ID, Role: message.RoleSystem, Content: "be brief"})
		require.NoError(t, err)
		require.Equal(t, uuid.Nil, s.SenderID)
		require.Len(t, e.history(ada, c), 4)
	})
}

func TestEditMessage(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.group(ada, bob)
		m := e.say(bob, c, "helo")
		got, err := e.s.EditMessage(e.as(bob), m.ID, "hello")
		require.NoError(t, err)
		require.Equal(t, "hello", got.Content)
		require.NotNil(t, got.EditedAt)
		require.True(t, got.CreatedAt.Equal(m.CreatedAt), "editing keeps the message's place")

		// Only the sender edits, even an owner may not.
		_, err = e.s.EditMessage(e.as(ada), m.ID, "hacked")
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.EditMessage(e.as(e.user("carol")), m.ID, "hacked")
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.EditMessage(e.as(bob), m.ID, "")
		requireKind(t, err, database.ErrInvalid)
		require.NoError(t, e.s.DeleteMessage(e.as(bob), m.ID))
		_, err = e.s.EditMessage(e.as(bob), m.ID, "undead")
		requireKind(t, err, database.ErrNotFound)
	})
}

func TestDeleteMessage(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		c := e.group(ada, bob, carol)
		mb := e.say(bob, c, "mine")
		mc := e.say(carol, c, "carol's")
		ma := e.say(ada, c, "owner's")

		requireKind(t, e.s.DeleteMessage(e.as(bob), mc.ID), store.ErrForbidden)
		require.NoError(t, e.s.DeleteMessage(e.as(bob), mb.ID))
		require.NoError(t, e.s.DeleteMessage(e.as(ada), mc.ID), "an owner deletes anyone's")
		requireKind(t, e.s.DeleteMessage(e.as(ada), mc.ID), database.ErrNotFound)
		_, err := e.s.SetRole(e.as(ada), c.ID, carol.ID, "admin")
		require.NoError(t, err)
		require.NoError(t, e.s.DeleteMessage(e.as(carol), ma.ID), "an admin deletes anyone's")

		h := e.history(bob, c)
		require.Len(t, h, 3, "deleted messages keep their place in history")
		for _, m := range h {
			require.NotNil(t, m.DeletedAt)
			require.Empty(t, m.Content, "deleted content is blanked")
		}
		require.Equal(t, 3, e.countMessages(c), "soft delete keeps the rows")
	})
}

// An append inside a caller's transaction is refused, not committed apart.
func TestAppendMessageNestedTx(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		err := e.db.WithTxContext(e.as(ada), func(ctx context.Context, _ *ent.Tx) error {
			_, err := e.s.AppendMessage(ctx, store.NewMessage{ChatID: c.ID, Content: "x"})
			require.ErrorIs(t, err, database.ErrNestedTx)
			_, err = e.s.ImportMessages(ctx, c.ID, []store.NewMessage{{Content: "x"}})
			require.ErrorIs(t, err, database.ErrNestedTx)
			_, err = e.s.CreateGroupChat(ctx, "x", nil)
			return err
		})
		require.ErrorIs(t, err, database.ErrNestedTx)
		require.Zero(t, e.countMessages(c))
	})
}
