package store_test

import (
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/store"
)

func ids(ms []*store.Message) []uuid.UUID {
	out := make([]uuid.UUID, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestHistory(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		var want []*store.Message
		for i := range 7 {
			want = append(want, e.say(ada, c, fmt.Sprint("message ", i)))
		}

		// Newest first, three at a time.
		var got []*store.Message
		q := store.HistoryQuery{Limit: 3}
		pages := 0
		for {
			page, err := e.s.History(e.as(bob), c.ID, q)
			require.NoError(t, err)
			pages++
			got = append(got, page.Messages...)
			if page.Next == "" {
				break
			}
			q.Before = page.Next
		}
		require.Equal(t, 3, pages)
		for i, m := range got {
			require.Equal(t, want[len(want)-1-i].ID, m.ID)
		}

		// Oldest first.
		require.Equal(t, ids(want), ids(e.history(bob, c)))

		// After and Before together: the messages between.
		page, err := e.s.History(e.as(bob), c.ID, store.HistoryQuery{
			After: store.CursorOf(want[1]), Before: store.CursorOf(want[5]), Order: store.OldestFirst,
		})
		require.NoError(t, err)
		require.Equal(t, ids(want[2:5]), ids(page.Messages))
		require.Empty(t, page.Next)

		// Nothing after the newest: an empty page, no error.
		page, err = e.s.History(e.as(bob), c.ID, store.HistoryQuery{After: store.CursorOf(want[6])})
		require.NoError(t, err)
		require.Empty(t, page.Messages)

		// A non-member, and a chat that does not exist, are not found.
		_, err = e.s.History(e.as(e.user("eve")), c.ID, store.HistoryQuery{})
		requireKind(t, err, database.ErrNotFound)
		_, err = e.s.History(e.as(ada), uuid.New(), store.HistoryQuery{})
		requireKind(t, err, database.ErrNotFound)
	})
}

func TestHistoryLimit(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada := e.user("ada")
		c := e.group(ada)
		msgs := make([]store.NewMessage, 250)
		for i := range msgs {
			msgs[i] = store.NewMessage{Content: fmt.Sprint(i)}
		}
		_, err := e.s.ImportMessages(e.sys(), c.ID, msgs)
		require.NoError(t, err)
		for _, tc := range []struct{ limit, want int }{{0, 50}, {-1, 50}, {10, 10}, {200, 200}, {1000, 200}} {
			page, err := e.s.History(e.as(ada), c.ID, store.HistoryQuery{Limit: tc.limit})
			require.NoError(t, err)
			require.Len(t, page.Messages, tc.want, "limit %d", tc.limit)
			require.NotEmpty(t, page.Next)
		}
	})
}

func TestHistoryInvalidCursor(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob := e.user("ada"), e.user("bob")
		c := e.direct(ada, bob)
		m := e.say(ada, c, "x")
		e.say(ada, c, "y")
		good := store.CursorOf(m)
		raw, err := base64.RawURLEncoding.DecodeString(string(good))
		require.NoError(t, err)
		flip := func(i int) store.Cursor {
			b := append([]byte(nil), raw...)
			b[i] ^= 0x01
			return store.Cursor(base64.RawURLEncoding.EncodeToString(b))
		}
		inbox, err := e.s.Inbox(e.as(ada), store.InboxQuery{})
		require.NoError(t, err)
		bad := map[string]store.Cursor{
			"garbage":         "not a cursor!",
			"one byte":        store.Cursor(base64.RawURLEncoding.EncodeToString([]byte{1})),
			"std base64":      store.Cursor(base64.StdEncoding.EncodeToString(raw)),
			"truncated":       good[:len(good)-3],
			"extended":        good + "AAAA",
			"padded":          good + "=",
			"time flipped":    flip(3),
			"id flipped":      flip(12),
			"version flipped": flip(0),
			"checksum":        flip(len(raw) - 1),
			"inbox cursor":    inbox[0].Cursor,
		}
		for name, cur := range bad {
			t.Run(name, func(t *testing.T) {
				for _, q := range []store.HistoryQuery{{Before: cur}, {After: cur}} {
					_, err := e.s.History(e.as(ada), c.ID, q)
					requireKind(t, err, store.ErrInvalidCursor)
				}
			})
		}
		_, err = e.s.Inbox(e.as(ada), store.InboxQuery{Before: good})
		requireKind(t, err, store.ErrInvalidCursor)
	})
}

// A reader pages forward through a chat while writers append to it: it sees
// every message exactly once, in history order.
func TestHistoryWhileAppending(t *testing.T) {
	eachTarget(t, func(t *testing.T, e *env) {
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		c := e.group(ada, bob, carol)
		const writers, each = 3, 30
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w, u := range []*store.User{ada, bob, carol}[:writers] {
			wg.Go(func() {
				for i := range each {
					_, err := e.s.AppendMessage(e.as(u), store.NewMessage{ChatID: c.ID, Content: fmt.Sprintf("w%d-%d", w, i)})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()

		var seen []*store.Message
		q := store.HistoryQuery{Order: store.OldestFirst, Limit: 7}
		finished := false
		for {
			page, err := e.s.History(e.as(ada), c.ID, q)
			require.NoError(t, err)
			seen = append(seen, page.Messages...)
			switch {
			case page.Next != "":
				q.After = page.Next
			case len(page.Messages) > 0:
				// Caught up: follow from the last message seen.
				q.After = store.CursorOf(page.Messages[len(page.Messages)-1])
			case finished:
				goto check
			}
			select {
			case <-done:
				// One more pass after the writers stopped, to read the tail.
				if finished && len(page.Messages) == 0 {
					goto check
				}
				finished = true
			default:
			}
		}
	check:
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		all := e.history(bob, c)
		require.Len(t, all, writers*each)
		require.Equal(t, ids(all), ids(seen), "the reader skipped or repeated a message")
	})
}
