package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/store"
)

// TestBackendsAgree runs one script of calls through both backends, each on a
// database of its own, and requires the same transcript: every answer, value
// for value (IDs named by order of appearance, times from one fake clock), and
// every refusal by its kind. The script visits the operations both backends
// implement from every side the rules have: members and strangers, deleted
// users and chats, archived chats, every message role, retries, replies, and
// cursors in both directions.
func TestBackendsAgree(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		var got [2][]string
		for i, b := range backends {
			got[i] = backendScript(t, target, b)
		}
		for i := range min(len(got[0]), len(got[1])) {
			if got[0][i] != got[1][i] {
				t.Fatalf("%s and %s answer differently:\n%s\n%s", backends[0].name, backends[1].name, got[0][i], got[1][i])
			}
		}
		require.Equal(t, len(got[0]), len(got[1]))
		require.Greater(t, len(got[0]), 100)
		t.Logf("%d calls answered alike", len(got[0]))
	})
}

// fakeClock is a clock that moves one millisecond each time it is read.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// transcriber records calls and their answers, naming each UUID it meets by
// the order it first appeared in.
type transcriber struct {
	lines []string
	names map[string]string
}

// uuidPattern matches a UUID; cursorPattern an opaque cursor (which encodes
// one, so it is named by order of appearance too).
var (
	uuidPattern   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	cursorPattern = regexp.MustCompile(`\b[A-Za-z0-9_-]{39}\b`)
)

func (tr *transcriber) record(call string, v any, err error) {
	var b strings.Builder
	b.WriteString(call + " => ")
	if err != nil {
		b.WriteString("error:")
		for _, k := range kinds {
			if errors.Is(err, k) {
				b.WriteString(" " + k.Error())
			}
		}
	} else {
		j, jerr := json.Marshal(v)
		if jerr != nil {
			panic(jerr)
		}
		b.Write(j)
	}
	line := cursorPattern.ReplaceAllStringFunc(b.String(), func(c string) string {
		n, ok := tr.names[c]
		if !ok {
			n = fmt.Sprintf("cursor%d", len(tr.names)+1)
			tr.names[c] = n
		}
		return n
	})
	line = uuidPattern.ReplaceAllStringFunc(line, func(id string) string {
		if id == uuid.Nil.String() {
			return "nil"
		}
		n, ok := tr.names[id]
		if !ok {
			n = fmt.Sprintf("id%d", len(tr.names)+1)
			tr.names[id] = n
		}
		return n
	})
	tr.lines = append(tr.lines, line)
}

func backendScript(t *testing.T, target dbtest.Target, b backend) []string {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, target, append(b.opts, store.WithClock(clock.now))...)
	tr := &transcriber{names: map[string]string{}}
	ctxOf := map[string]context.Context{}
	as := func(name string) context.Context { return ctxOf[name] }
	users := map[string]*store.User{}
	for _, name := range []string{"ada", "bob", "carol", "dan", "eve"} {
		u, err := e.s.CreateUser(e.sys(), store.NewUser{Email: name + "@example.com", DisplayName: name})
		require.NoError(t, err)
		users[name] = u
		ctxOf[name] = e.as(u)
		tr.record("user "+name, u.ID, nil)
	}
	ctxOf["system"] = e.sys()
	ctxOf["nobody"] = t.Context()
	viewers := []string{"ada", "bob", "carol", "dan", "eve", "system", "nobody"}

	group, err := e.s.CreateGroupChat(as("ada"), "group", []uuid.UUID{users["bob"].ID, users["carol"].ID, users["dan"].ID})
	require.NoError(t, err)
	tr.record("group", group.ID, nil)
	assistant, err := e.s.CreateAssistantChat(as("bob"), "ask")
	require.NoError(t, err)
	tr.record("assistant", assistant.ID, nil)
	direct, _, err := e.s.CreateDirectChat(as("ada"), users["bob"].ID)
	require.NoError(t, err)
	tr.record("direct", direct.ID, nil)
	archived, err := e.s.CreateGroupChat(as("carol"), "archived", []uuid.UUID{users["ada"].ID})
	require.NoError(t, err)
	tr.record("archived", archived.ID, nil)
	doomed, err := e.s.CreateGroupChat(as("dan"), "doomed", []uuid.UUID{users["ada"].ID})
	require.NoError(t, err)
	tr.record("doomed", doomed.ID, nil)
	chats := []struct {
		name string
		id   uuid.UUID
	}{{"group", group.ID}, {"assistant", assistant.ID}, {"direct", direct.ID}, {"archived", archived.ID}, {"doomed", doomed.ID}, {"unknown", uuid.New()}}

	// Messages, with IDs the script chooses so that retries can name them.
	var msgID int
	nextID := func() uuid.UUID {
		msgID++
		return uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(msgID)))
	}
	var stored []uuid.UUID
	appendAs := func(who string, nm store.NewMessage) {
		if nm.ID == uuid.Nil {
			nm.ID = nextID()
		}
		m, err := e.s.AppendMessage(as(who), nm)
		tr.record(fmt.Sprintf("append as %s %+v", who, nm), m, err)
		if err == nil {
			stored = append(stored, m.ID)
		}
	}
	for _, who := range viewers {
		for _, c := range chats {
			appendAs(who, store.NewMessage{ChatID: c.id, Content: who + " in " + c.name})
			for _, role := range []message.Role{message.RoleAssistant, message.RoleTool, message.RoleSystem} {
				appendAs(who, store.NewMessage{ChatID: c.id, Role: role, Content: string(role) + " by " + who})
			}
		}
	}
	// Senders other than the viewer, metadata, replies inside and outside.
	appendAs("ada", store.NewMessage{ChatID: group.ID, Content: "as bob", SenderID: users["bob"].ID})
	appendAs("system", store.NewMessage{ChatID: group.ID, Content: "for bob", SenderID: users["bob"].ID})
	appendAs("ada", store.NewMessage{ChatID: group.ID, Content: "with metadata",
		Metadata: schematype.MessageMetadata{Model: "m", PromptTokens: 2}})
	appendAs("bob", store.NewMessage{ChatID: group.ID, Content: "reply", ReplyTo: stored[0]})
	appendAs("bob", store.NewMessage{ChatID: group.ID, Content: "reply outside", ReplyTo: stored[len(stored)-1]})
	appendAs("bob", store.NewMessage{ChatID: group.ID, Content: "reply to nothing", ReplyTo: uuid.New()})
	// Retries: the same, and the same ID with something else.
	retry := store.NewMessage{ID: nextID(), ChatID: group.ID, Content: "once"}
	appendAs("carol", retry)
	appendAs("carol", retry)
	appendAs("dan", retry)
	changed := retry
	changed.Content = "twice"
	appendAs("carol", changed)
	changed = retry
	changed.ChatID = direct.ID
	appendAs("ada", changed)

	// State changes the rules must see.
	_, err = e.s.ArchiveChat(as("carol"), archived.ID)
	tr.record("archive", nil, err)
	now := clock.now()
	_, err = e.db.Client().Chat.UpdateOneID(doomed.ID).SetDeletedAt(now).SetUpdatedAt(now).Save(as("dan"))
	tr.record("delete chat", nil, err)
	_, err = e.db.Client().User.UpdateOneID(users["dan"].ID).SetStatus(user.StatusSuspended).SetUpdatedAt(clock.now()).Save(e.sys())
	tr.record("suspend dan", nil, err)
	require.NoError(t, e.s.DeleteMessage(as("ada"), stored[1]))
	tr.record("delete carol from group", nil, e.s.RemoveMember(as("ada"), group.ID, users["carol"].ID))
	for _, who := range viewers {
		for _, c := range chats {
			appendAs(who, store.NewMessage{ChatID: c.id, Content: "later " + who + " in " + c.name})
		}
	}
	tr.record("delete eve", nil, e.s.DeleteUser(as("eve"), users["eve"].ID))
	tr.record("delete bob", nil, e.s.DeleteUser(e.sys(), users["bob"].ID))

	// Reads, from every side.
	for _, who := range viewers {
		for _, u := range []string{"ada", "bob", "carol", "dan", "eve"} {
			got, err := e.s.GetUser(as(who), users[u].ID)
			tr.record("get user "+u+" as "+who, got, err)
		}
		for _, c := range chats {
			for _, order := range []store.Order{store.NewestFirst, store.OldestFirst} {
				q := store.HistoryQuery{Limit: 3, Order: order}
				for page := 0; page < 20; page++ {
					h, err := e.s.History(as(who), c.id, q)
					tr.record(fmt.Sprintf("history of %s as %s %+v", c.name, who, q), h, err)
					if err != nil || h.Next == "" {
						break
					}
					if order == store.NewestFirst {
						q.Before = h.Next
					} else {
						q.After = h.Next
					}
				}
			}
			if len(stored) > 4 {
				h, err := e.s.History(as(who), c.id, store.HistoryQuery{
					After:  store.CursorOf(&store.Message{ID: stored[2]}),
					Before: store.CursorOf(&store.Message{ID: stored[4], CreatedAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}),
				})
				tr.record("history between as "+who+" of "+c.name, h, err)
			}
			for _, m := range []uuid.UUID{stored[0], stored[len(stored)/2], stored[len(stored)-1], uuid.New()} {
				tr.record(fmt.Sprintf("mark read %s in %s as %s", m, c.name, who), nil, e.s.MarkRead(as(who), c.id, m))
			}
		}
		for _, limit := range []int{0, 1, 2} {
			q := store.InboxQuery{Limit: limit}
			for page := 0; page < 10; page++ {
				got, err := e.s.Inbox(as(who), q)
				tr.record(fmt.Sprintf("inbox as %s %+v", who, q), got, err)
				if err != nil || len(got) == 0 || limit == 0 {
					break
				}
				q.Before = got[len(got)-1].Cursor
			}
		}
	}
	// The store's own answers, as the system sees every chat.
	for _, c := range chats[:5] {
		n, err := e.db.Client().Chat.Query().Where(chat.ID(c.id)).Only(e.sys())
		if err == nil {
			tr.record("chat "+c.name, store.Chat{ID: n.ID, LastMessageAt: n.LastMessageAt.UTC(), UpdatedAt: n.UpdatedAt.UTC()}, nil)
		}
	}
	return tr.lines
}
