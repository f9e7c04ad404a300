package store_test

import (
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
		// More rows than one SQLite statement can carry (8 columns, 32766
		// parameters): the import is split into several INSERTs.
		const n = 5000
		msgs := make([]store.NewMessage, n)
		for i := range msgs {
			msgs[i] = store.NewMessage{Content: fmt.Sprint("imported ", i)}
		}
		msgs[0].ID = schema.NewID()
		msgs[1].ReplyTo = msgs[0].ID
		msgs[2].ReplyTo = first.ID
		msgs[3].Metadata = schematype.MessageMetadata{Model: "m", Extra: map[string]any{"k": "v"}}
		got, err := e.s.ImportMessages(e.as(ada), c.ID, msgs)
		require.NoError(t, err)
		require.Equal(t, n, got)

		all := e.history(ada, c)
		require.Len(t, all, n+1)
		require.Equal(t, first.ID, all[0].ID)
		for i, m := range all[1:] {
			require.Equal(t, fmt.Sprint("imported ", i), m.Content, "slice order is history order")
			require.Equal(t, ada.ID, m.SenderID)
			require.True(t, m.CreatedAt.After(all[i].CreatedAt))
		}
		require.Equal(t, msgs[0].ID, all[1].ID)
		require.Equal(t, msgs[0].ID, all[2].ReplyTo)
		require.Equal(t, first.ID, all[3].ReplyTo)
		require.Equal(t, "m", all[4].Metadata.Model)
		require.Equal(t, "v", all[4].Metadata.Extra["k"])
		require.True(t, e.chat(c).LastMessageAt.Equal(all[n].CreatedAt), "last_message_at is the newest imported")

		// Appending after an import goes after it.
		after := e.say(bob, c, "after")
		require.True(t, after.CreatedAt.After(all[n].CreatedAt))

		inbox, err := e.s.Inbox(e.as(bob), store.InboxQuery{})
		require.NoError(t, err)
		require.Equal(t, n, inbox[0].Unread)
	})
}

// A backfill keeps the times it was given; the system imports for any sender.
func TestImportMessagesBackfill(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		e := newEnv(t, target, store.WithImportBatchSize(2))
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		latest := e.say(ada, c, "latest")
		old := time.Date(2020, 5, 1, 10, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
		msgs := []store.NewMessage{
			{Content: "old 1", SenderID: bob.ID, CreatedAt: old},
			{Content: "old 2", SenderID: ada.ID, CreatedAt: old.Add(time.Minute)},
			{Content: "old 3", Role: message.RoleSystem, CreatedAt: old.Add(2 * time.Minute)},
		}
		got, err := e.s.ImportMessages(e.sys(), c.ID, msgs)
		require.NoError(t, err)
		require.Equal(t, 3, got)
		all := e.history(ada, c)
		require.Len(t, all, 4)
		require.True(t, all[0].CreatedAt.Equal(old.Truncate(time.Microsecond)))
		require.Equal(t, bob.ID, all[0].SenderID)
		require.Equal(t, uuid.Nil, all[2].SenderID)
		require.Equal(t, latest.ID, all[3].ID)
		require.True(t, e.chat(c).LastMessageAt.Equal(latest.CreatedAt), "a backfill does not move last_message_at back")
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
			{"another sender", func(m []store.NewMessage) { m[5].SenderID = bob.ID }, store.ErrForbidden},
			{"system message", func(m []store.NewMessage) { m[5].Role = message.RoleSystem }, store.ErrForbidden},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				msgs := good(100)
				tc.edit(msgs)
				n, err := e.s.ImportMessages(e.as(ada), c.ID, msgs)
				requireKind(t, err, tc.want)
				require.Zero(t, n)
				require.Equal(t, 1, e.countMessages(c))
				require.True(t, before.Equal(e.chat(c).LastMessageAt))
			})
		}
		// Not a member.
		_, err := e.s.ImportMessages(e.as(eve), c.ID, good(3))
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.ImportMessages(e.t.Context(), c.ID, good(3))
		requireKind(t, err, store.ErrForbidden)
		_, err = e.s.ImportMessages(e.as(ada), uuid.New(), good(3))
		requireKind(t, err, database.ErrNotFound)
		require.Equal(t, 1, e.countMessages(c))
		n, err := e.s.ImportMessages(e.as(ada), c.ID, nil)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}
