package store_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/store"
)

// TestUnreadProperty drives random appends, imports, deletes, joins, leaves and
// MarkRead (forward and backward) by several users in a small chat (whose
// appends fan out), a large one (whose appends do not) and a direct chat, and
// after every step compares each user's inbox with a model of the documented
// semantics, counted by brute force: a member's unread count is the number of
// messages of the chat after their read position, deleted ones included (a
// deleted message keeps its place in history as a tombstone); the read
// position starts at the chat's last message when they join, and moves forward
// only, to a message they mark read or one they send (append or import). The
// inbox lists exactly the chats the user is a member of.
func TestUnreadProperty(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			eachTargetOpts(t, append(b.opts, store.WithFanOutLimit(3)), func(t *testing.T, e *env) {
				seed := uint64(len(b.name))*7919 + uint64(len(e.target))
				t.Logf("seed %d", seed)
				runUnreadModel(t, e, rand.New(rand.NewPCG(seed, 42)), 250)
			})
		})
	}
}

// unreadModel is what the test expects: per chat its messages' senders in seq
// order, per chat and member the read position.
type unreadModel struct {
	senders map[uuid.UUID][]uuid.UUID       // chat -> sender of seq i+1 (uuid.Nil: none)
	ids     map[uuid.UUID][]uuid.UUID       // chat -> message ID of seq i+1
	pos     map[uuid.UUID]map[uuid.UUID]int // chat -> member -> read position
	owner   map[uuid.UUID]uuid.UUID         // chat -> its owner, who never leaves
	kinds   map[uuid.UUID]string            // chat -> name, for messages
}

func (m *unreadModel) sent(c, sender, id uuid.UUID) {
	m.senders[c] = append(m.senders[c], sender)
	m.ids[c] = append(m.ids[c], id)
	if p, ok := m.pos[c][sender]; ok && p < len(m.senders[c]) {
		m.pos[c][sender] = len(m.senders[c])
	}
}

func runUnreadModel(t *testing.T, e *env, rng *rand.Rand, steps int) {
	users := make([]*store.User, 6)
	for i := range users {
		users[i] = e.user(fmt.Sprint("u", i))
	}
	ids := func(us []*store.User) []uuid.UUID {
		out := make([]uuid.UUID, len(us))
		for i, u := range us {
			out[i] = u.ID
		}
		return out
	}
	m := &unreadModel{senders: map[uuid.UUID][]uuid.UUID{}, ids: map[uuid.UUID][]uuid.UUID{},
		pos: map[uuid.UUID]map[uuid.UUID]int{}, owner: map[uuid.UUID]uuid.UUID{}, kinds: map[uuid.UUID]string{}}
	small, err := e.s.CreateGroupChat(e.as(users[0]), "small", ids(users[1:3]))
	require.NoError(t, err)
	large, err := e.s.CreateGroupChat(e.as(users[1]), "large", ids(users[2:6]))
	require.NoError(t, err)
	direct := e.direct(users[4], users[5])
	chats := []*store.Chat{small, large, direct}
	for _, c := range []struct {
		c       *store.Chat
		owner   *store.User
		members []*store.User
		name    string
	}{{small, users[0], users[0:3], "small"}, {large, users[1], users[1:6], "large"}, {direct, users[4], users[4:6], "direct"}} {
		m.pos[c.c.ID] = map[uuid.UUID]int{}
		for _, u := range c.members {
			m.pos[c.c.ID][u.ID] = 0
		}
		m.owner[c.c.ID] = c.owner.ID
		m.kinds[c.c.ID] = c.name
	}
	member := func(c uuid.UUID) (uuid.UUID, bool) {
		var ms []uuid.UUID
		for u := range m.pos[c] {
			ms = append(ms, u)
		}
		if len(ms) == 0 {
			return uuid.Nil, false
		}
		slices.SortFunc(ms, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		return ms[rng.IntN(len(ms))], true
	}
	as := func(id uuid.UUID) *store.User {
		for _, u := range users {
			if u.ID == id {
				return u
			}
		}
		t.Fatalf("no user %s", id)
		return nil
	}
	for step := range steps {
		c := chats[rng.IntN(len(chats))].ID
		var what string
		switch op := rng.IntN(10); {
		case op < 4: // append
			u, ok := member(c)
			if !ok {
				continue
			}
			msg, err := e.s.AppendMessage(e.as(as(u)), store.NewMessage{ChatID: c, Content: fmt.Sprint("step ", step)})
			require.NoError(t, err)
			m.sent(c, u, msg.ID)
			require.Equal(t, int64(len(m.senders[c])), msg.Seq, "seqs are gapless")
			what = "append"
		case op == 4: // import, as the system, for members and others
			n := 1 + rng.IntN(4)
			msgs := make([]store.NewMessage, n)
			for i := range msgs {
				sender := users[rng.IntN(len(users))].ID
				msgs[i] = store.NewMessage{ID: uuid.New(), Content: fmt.Sprint("imported ", step, i), SenderID: sender}
			}
			_, err := e.s.ImportMessages(e.sys(), c, msgs)
			require.NoError(t, err)
			for _, im := range msgs {
				m.sent(c, im.SenderID, im.ID)
			}
			what = "import"
		case op == 5: // delete a message: its sender if a member, else the owner
			if len(m.ids[c]) == 0 {
				continue
			}
			i := rng.IntN(len(m.ids[c]))
			by := m.owner[c]
			if _, ok := m.pos[c][m.senders[c][i]]; ok && rng.IntN(2) == 0 {
				by = m.senders[c][i]
			}
			err := e.s.DeleteMessage(e.as(as(by)), m.ids[c][i])
			if err != nil {
				requireKind(t, err, database.ErrNotFound) // deleted before
			}
			what = "delete"
		case op == 6: // join
			if m.kinds[c] == "direct" {
				continue
			}
			u := users[rng.IntN(len(users))]
			if _, ok := m.pos[c][u.ID]; ok {
				continue
			}
			_, err := e.s.AddMember(e.as(as(m.owner[c])), c, u.ID, membership.RoleMember)
			require.NoError(t, err)
			m.pos[c][u.ID] = len(m.senders[c])
			what = "join"
		case op == 7: // leave
			u, ok := member(c)
			if !ok || u == m.owner[c] {
				continue
			}
			require.NoError(t, e.s.RemoveMember(e.as(as(u)), c, u))
			delete(m.pos[c], u)
			what = "leave"
		default: // mark read, forward or backward
			u, ok := member(c)
			if !ok || len(m.ids[c]) == 0 {
				continue
			}
			i := rng.IntN(len(m.ids[c]))
			require.NoError(t, e.s.MarkRead(e.as(as(u)), c, m.ids[c][i]))
			if m.pos[c][u] < i+1 {
				m.pos[c][u] = i + 1
			}
			what = "mark read"
		}
		checkUnread(t, e, m, users, fmt.Sprintf("step %d (%s in %s)", step, what, m.kinds[c]))
	}
}

// checkUnread compares every user's whole inbox with the model.
func checkUnread(t *testing.T, e *env, m *unreadModel, users []*store.User, step string) {
	t.Helper()
	for _, u := range users {
		want := map[uuid.UUID]int{}
		for c, members := range m.pos {
			if p, ok := members[u.ID]; ok {
				// Brute force: every message after the position.
				n := 0
				for seq := p + 1; seq <= len(m.senders[c]); seq++ {
					n++
				}
				want[c] = n
			}
		}
		got := map[uuid.UUID]int{}
		q := store.InboxQuery{Limit: 2}
		for {
			page, err := e.s.Inbox(e.as(u), q)
			require.NoError(t, err)
			for _, entry := range page {
				_, dup := got[entry.Chat.ID]
				require.False(t, dup, "%s: a chat twice in %s's inbox", step, u.DisplayName)
				got[entry.Chat.ID] = entry.Unread
				require.EqualValues(t, len(m.senders[entry.Chat.ID]), entry.Chat.LastSeq, step)
			}
			if len(page) < q.Limit {
				break
			}
			q.Before = page[len(page)-1].Cursor
		}
		require.Equal(t, want, got, "%s: %s's unread counts", step, u.DisplayName)
	}
}
