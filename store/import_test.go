package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/store"
)

func TestImportMessages(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.group(ada, bob)
		first := e.say(bob, c, "before the import")
		// More rows than one SQLite statement can carry (9 columns, 32766
		// parameters): the import is split into several INSERTs.
		const n = 5000
		msgs := make([]store.NewMessage, n)
		for i := range msgs {
			msgs[i] = store.NewMessage{Content: fmt.Sprint("imported ", i), SenderID: ada.ID}
		}
		msgs[0].ID = schema.NewID()
		msgs[1].ReplyTo = msgs[0].ID
		msgs[2].ReplyTo = first.ID
		msgs[3].Metadata = schematype.MessageMetadata{Model: "m", Extra: map[string]any{"k": "v"}}
		got, err := e.s.ImportMessages(e.sys(), c.ID, msgs)
		require.NoError(t, err)
		require.Equal(t, n, got)

		all := e.history(ada, c)
		require.Len(t, all, n+1)
		require.Equal(t, first.ID, all[0].ID)
		for i, m := range all[1:] {
			require.Equal(t, fmt.Sprint("imported ", i), m.Content, "slice order is history order")
			require.Equal(t, ada.ID, m.SenderID)
			require.Equal(t, all[i].Seq+1, m.Seq, "seqs follow, without gaps")
			require.False(t, m.CreatedAt.Before(all[i].CreatedAt))
		}
		require.Equal(t, msgs[0].ID, all[1].ID)
		require.Equal(t, msgs[0].ID, all[2].ReplyTo)
		require.Equal(t, first.ID, all[3].ReplyTo)
		require.Equal(t, "m", all[4].Metadata.Model)
		require.Equal(t, "v", all[4].Metadata.Extra["k"])
		require.True(t, e.chat(c).LastMessageAt.Equal(all[n].CreatedAt), "last_message_at is the newest imported")

		require.EqualValues(t, n+1, e.chat(c).LastSeq)

		// Appending after an import goes after it.
		after := e.say(bob, c, "after")
		require.EqualValues(t, n+2, after.Seq)
		require.False(t, after.CreatedAt.Before(all[n].CreatedAt))

		// The import is unread for bob (his own message came before it); ada
		// sent it, so it is not unread for her.
		inbox, err := e.s.Inbox(e.as(bob), store.InboxQuery{})
		require.NoError(t, err)
		require.Equal(t, 0, inbox[0].Unread, "bob's own append moved his read position past the import")
		inbox, err = e.s.Inbox(e.as(ada), store.InboxQuery{})
		require.NoError(t, err)
		require.Equal(t, 1, inbox[0].Unread, "bob's message after her import")
	})
}

// A backfill keeps the times it was given, in time order, into a chat that
// has nothing newer; the system imports for any sender. Older than the chat's
// newest message is refused: History and sync are in seq order, and an import
// takes the seqs after the chat's last one.
func TestImportMessagesBackfill(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		e := newEnv(t, target, store.WithImportBatchSize(2))
		ada, bob := e.user("ada"), e.user("bob")
		old := time.Date(2020, 5, 1, 10, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
		c := e.direct(ada, bob)
		// A backfill into a chat with nothing newer: its times are kept, and
		// the seqs follow them whatever the slice order.
		msgs := []store.NewMessage{
			{Content: "old 2", SenderID: ada.ID, CreatedAt: old.Add(time.Minute)},
			{Content: "old 1", SenderID: bob.ID, CreatedAt: old},
			{Content: "old 3", Role: message.RoleSystem, CreatedAt: old.Add(2 * time.Minute)},
		}
		// A chat made for the backfill, whose last_message_at (its creation)
		// a migration from elsewhere would set to before the history.
		bf, err := e.s.CreateGroupChat(e.as(ada), "backfilled", []uuid.UUID{bob.ID})
		require.NoError(t, err)
		_, err = e.db.SQL().ExecContext(t.Context(), `UPDATE chats SET last_message_at = $1 WHERE id = $2`, old.Add(-time.Hour).UTC(), bf.ID)
		require.NoError(t, err)
		got, err := e.s.ImportMessages(e.sys(), bf.ID, msgs)
		require.NoError(t, err)
		require.Equal(t, 3, got)
		all := e.history(ada, bf)
		require.Len(t, all, 3)
		require.Equal(t, []string{"old 1", "old 2", "old 3"}, []string{all[0].Content, all[1].Content, all[2].Content})
		require.Equal(t, []int64{1, 2, 3}, []int64{all[0].Seq, all[1].Seq, all[2].Seq})
		require.True(t, all[0].CreatedAt.Equal(old.Truncate(time.Microsecond)))
		require.Equal(t, bob.ID, all[0].SenderID)
		require.Equal(t, uuid.Nil, all[2].SenderID)
		require.True(t, e.chat(bf).LastMessageAt.Equal(all[2].CreatedAt))

		// Into a chat with newer messages: refused, nothing written.
		latest := e.say(ada, c, "latest")
		_, err = e.s.ImportMessages(e.sys(), c.ID, msgs)
		requireKind(t, err, database.ErrInvalid)
		require.Equal(t, 1, e.countMessages(c))
		require.True(t, e.chat(c).LastMessageAt.Equal(latest.CreatedAt))
		// At the chat's newest time or later, and without a time: appended.
		got, err = e.s.ImportMessages(e.sys(), c.ID, []store.NewMessage{
			{Content: "same instant", SenderID: bob.ID, CreatedAt: latest.CreatedAt},
			{Content: "now", SenderID: bob.ID},
		})
		require.NoError(t, err)
		require.Equal(t, 2, got)
		h := e.history(ada, c)
		require.Equal(t, []string{"latest", "same instant", "now"}, []string{h[0].Content, h[1].Content, h[2].Content})
	})
}

// One bad message, or one taken ID, and nothing is written.
func TestImportMessagesAllOrNothing(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, eve := e.user("ada"), e.user("bob"), e.user("eve")
		c := e.direct(ada, bob)
		taken := e.say(ada, c, "taken")
		other := e.direct(ada, eve)
		elsewhere := e.say(ada, other, "elsewhere")
		before := e.chat(c).LastMessageAt
		good := func(n int) []store.NewMessage {
			msgs := make([]store.NewMessage, n)
			for i := range msgs {
				msgs[i] = store.NewMessage{Content: fmt.Sprint(i)}
			}
			return msgs
		}
		dup := schema.NewID()
		cases := []struct {
			name string
			edit func([]store.NewMessage)
			want error
		}{
			{"empty content", func(m []store.NewMessage) { m[50].Content = "" }, database.ErrInvalid},
			{"NUL", func(m []store.NewMessage) { m[99].Content = "\x00" }, database.ErrInvalid},
			{"bad metadata", func(m []store.NewMessage) { m[1].Metadata.Model = "\xff" }, database.ErrInvalid},
			{"other chat", func(m []store.NewMessage) { m[3].ChatID = other.ID }, database.ErrInvalid},
			{"repeated ID", func(m []store.NewMessage) { m[3].ID, m[4].ID = dup, dup }, database.ErrConflict},
			{"stored ID", func(m []store.NewMessage) { m[70].ID = taken.ID }, database.ErrConflict},
			{"ID stored in another chat", func(m []store.NewMessage) { m[70].ID = elsewhere.ID }, database.ErrConflict},
			{"reply elsewhere", func(m []store.NewMessage) { m[5].ReplyTo = elsewhere.ID }, database.ErrInvalidReference},
			{"in the future", func(m []store.NewMessage) { m[5].CreatedAt = time.Now().Add(time.Hour) }, database.ErrInvalid},
			{"in year 10000", func(m []store.NewMessage) { m[5].CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, database.ErrInvalid},
			{"in year 0", func(m []store.NewMessage) { m[5].CreatedAt = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) }, database.ErrInvalid},
			{"before the chat's newest", func(m []store.NewMessage) { m[5].CreatedAt = taken.CreatedAt.Add(-time.Second) }, database.ErrInvalid},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				msgs := good(100)
				tc.edit(msgs)
				n, err := e.s.ImportMessages(e.sys(), c.ID, msgs)
				requireKind(t, err, tc.want)
				require.Zero(t, n)
				require.Equal(t, 1, e.countMessages(c))
				require.True(t, before.Equal(e.chat(c).LastMessageAt))
			})
		}
		// Only the system imports: not a member, not a member of the chat, not
		// its owner, and not a context without a viewer.
		for _, ctx := range []context.Context{e.as(eve), e.as(ada), e.as(bob), e.t.Context()} {
			_, err := e.s.ImportMessages(ctx, c.ID, good(3))
			requireKind(t, err, store.ErrForbidden)
		}
		_, err := e.s.ImportMessages(e.sys(), uuid.New(), good(3))
		requireKind(t, err, database.ErrNotFound)
		require.Equal(t, 1, e.countMessages(c))
		n, err := e.s.ImportMessages(e.sys(), c.ID, nil)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}
