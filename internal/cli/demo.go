package cli

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

func newDemo() *cobra.Command {
	var url string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Show chatdb working: users, chats, messages, an inbox and a history page",
		Long: `Demo opens the database (the SQLite file chatdb.db in the working directory
unless --url or DATABASE_URL says otherwise), applies the migrations, and acts
out a small chat through the store API: three users, a direct chat, a group
chat and an assistant chat, a few messages, one chat marked read. It then
prints Ada's inbox (titles, last message, unread counts) and a page of the group
chat's history, as an application would show them.

Running it again reuses the demo users (found by email) and chats, and appends
one more message to each chat, so the unread counts grow. Demos run at once
take turns for their set-up, so that they make one of each chat between them:
on PostgreSQL they hold an advisory lock, on SQLite the write lock of a small
file beside the database, chatdb.db.demo-lock for chatdb.db.`,
		Example: `  chatdb demo
  go run ./cmd/chatdb demo                      # from a checkout, nothing installed
  chatdb demo --url postgres://postgres@127.0.0.1:5432/chat?sslmode=disable`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			cfg, err := config(ctx, url)
			if err != nil {
				return err
			}
			return demo(ctx, c.OutOrStdout(), cfg)
		},
	}
	urlFlag(c.Flags(), &url)
	return c
}

// demoUser is one of the demo's people.
type demoUser struct {
	email, name string
}

var (
	demoAda   = demoUser{"ada@example.com", "Ada Lovelace"}
	demoGrace = demoUser{"grace@example.com", "Grace Hopper"}
	demoAlan  = demoUser{"alan@example.com", "Alan Turing"}
)

const (
	demoGroupTitle     = "Analytical Engine club"
	demoAssistantTitle = "Ada's research assistant"
)

// demoRun holds what the demo created or found.
type demoRun struct {
	s     *store.Store
	out   io.Writer
	names map[uuid.UUID]string
	ada   *store.User
	grace *store.User
	alan  *store.User
}

func demo(ctx context.Context, out io.Writer, cfg database.Config) (err error) {
	db, err := database.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer db.Close()
	fmt.Fprintf(out, "chatdb demo on %s (%s, driver %s)\n\n", db.URL(), db.Dialect(), db.Driver())

	applied := 0
	err = database.Migrate(ctx, db, database.WithProgress(func(m database.Migration) {
		applied++
		fmt.Fprintf(out, "applied migration %s\n", m.File())
	}))
	if err != nil {
		return fmt.Errorf("demo: migrate: %w", err)
	}
	if applied == 0 {
		fmt.Fprintln(out, "migrations: up to date")
	}
	unlock, err := demoLock(ctx, cfg, db.Dialect())
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() { err = errors.Join(err, unlock()) }()

	r := &demoRun{s: store.New(db), out: out, names: map[uuid.UUID]string{}}
	// Signing users up is the platform's job, so it runs as the system viewer;
	// everything after it runs as the user who does it.
	sys := viewer.SystemContext(ctx)
	for _, u := range []struct {
		dst **store.User
		du  demoUser
	}{{&r.ada, demoAda}, {&r.grace, demoGrace}, {&r.alan, demoAlan}} {
		if *u.dst, err = r.user(sys, u.du); err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	return r.chats(ctx)
}

// user finds the demo user by email, or creates them.
func (r *demoRun) user(sys context.Context, du demoUser) (*store.User, error) {
	u, err := r.s.UserByEmail(sys, du.email)
	state := "existing"
	if errors.Is(err, database.ErrNotFound) {
		u, err = r.s.CreateUser(sys, store.NewUser{Email: du.email, DisplayName: du.name})
		state = "new"
		if errors.Is(err, database.ErrConflict) { // another demo created them just now
			u, err = r.s.UserByEmail(sys, du.email)
			state = "existing"
		}
	}
	if err != nil {
		return nil, fmt.Errorf("demo: user %s: %w", du.email, err)
	}
	r.names[u.ID] = u.DisplayName
	fmt.Fprintf(r.out, "user %-13s <%s> (%s)\n", u.DisplayName, u.Email, state)
	return u, nil
}

func (r *demoRun) chats(ctx context.Context) error {
	ada := viewer.NewContext(ctx, r.ada.ID)
	grace := viewer.NewContext(ctx, r.grace.ID)
	alan := viewer.NewContext(ctx, r.alan.ID)

	// A direct chat exists once per pair: asking again returns the same one.
	direct, created, err := r.s.CreateDirectChat(ada, r.grace.ID)
	if err != nil {
		return fmt.Errorf("demo: direct chat: %w", err)
	}
	// Named as Ada's inbox names it: by the other person.
	r.chatLine("direct", r.grace.DisplayName, created)

	group, groupNew, err := r.findOrCreate(ada, chat.KindGroup, demoGroupTitle, func() (*store.Chat, error) {
		return r.s.CreateGroupChat(ada, demoGroupTitle, []uuid.UUID{r.grace.ID, r.alan.ID})
	})
	if err != nil {
		return err
	}
	r.chatLine("group", demoGroupTitle, groupNew)

	assistant, assistantNew, err := r.findOrCreate(ada, chat.KindAssistant, demoAssistantTitle, func() (*store.Chat, error) {
		return r.s.CreateAssistantChat(ada, demoAssistantTitle)
	})
	if err != nil {
		return err
	}
	r.chatLine("assistant", demoAssistantTitle, assistantNew)

	type post struct {
		as   context.Context
		chat *store.Chat
		msg  store.NewMessage
	}
	var posts []post
	if created {
		posts = append(posts,
			post{ada, direct, store.NewMessage{Content: "Grace, have you seen the notes on the Engine?"}},
			post{grace, direct, store.NewMessage{Content: "Reading them now. Note G is remarkable."}},
		)
	} else {
		posts = append(posts, post{grace, direct, store.NewMessage{Content: "Back again? Let's compile something."}})
	}
	if groupNew {
		posts = append(posts,
			post{ada, group, store.NewMessage{Content: "Welcome to the club! First topic: can machines compose music?"}},
			post{alan, group, store.NewMessage{Content: "Only if we can say what composing is. I have a test in mind."}},
			post{grace, group, store.NewMessage{Content: "I'll bring a compiler. Machines should write their own programs."}},
			post{alan, group, store.NewMessage{Content: "Then the test is whether we can tell the difference."}},
		)
	} else {
		posts = append(posts, post{alan, group, store.NewMessage{Content: "Another meeting of the club, another imitation game."}})
	}
	if assistantNew {
		posts = append(posts,
			post{ada, assistant, store.NewMessage{Content: "Summarise the Bernoulli numbers program in one line."}},
			post{ada, assistant, store.NewMessage{
				Role:     message.RoleAssistant,
				Content:  "It computes Bernoulli numbers with a loop of operations on the Engine's store and mill.",
				Metadata: schematype.MessageMetadata{Model: "demo-model", PromptTokens: 12, CompletionTokens: 19},
			}},
		)
	} else {
		posts = append(posts, post{ada, assistant, store.NewMessage{Content: "And once more, shorter?"}})
	}

	last := map[uuid.UUID]*store.Message{}
	for _, p := range posts {
		p.msg.ChatID = p.chat.ID
		m, err := r.s.AppendMessage(p.as, p.msg)
		if err != nil {
			return fmt.Errorf("demo: append to %s chat: %w", p.chat.Kind, err)
		}
		last[p.chat.ID] = m
	}
	fmt.Fprintf(r.out, "appended %d message(s)\n", len(posts))

	// Ada has read the direct chat up to its newest message.
	if m := last[direct.ID]; m != nil {
		if err := r.s.MarkRead(ada, direct.ID, m.ID); err != nil {
			return fmt.Errorf("demo: mark read: %w", err)
		}
		fmt.Fprintln(r.out, "Ada read the direct chat")
	}

	if err := r.printInbox(ada, r.ada); err != nil {
		return err
	}
	return r.printHistory(ada, group)
}

// findOrCreate returns the viewer's chat of that kind and title, or creates it.
func (r *demoRun) findOrCreate(as context.Context, kind chat.Kind, title string, create func() (*store.Chat, error)) (*store.Chat, bool, error) {
	q := store.InboxQuery{Limit: 200}
	for {
		entries, err := r.s.Inbox(as, q)
		if err != nil {
			return nil, false, fmt.Errorf("demo: inbox: %w", err)
		}
		for _, e := range entries {
			if e.Chat.Kind == kind && e.Chat.Title == title {
				return e.Chat, false, nil
			}
		}
		if len(entries) < q.Limit {
			break
		}
		q.Before = entries[len(entries)-1].Cursor
	}
	if demoRace != nil {
		demoRace()
	}
	c, err := create()
	if err != nil {
		return nil, false, fmt.Errorf("demo: %s chat: %w", kind, err)
	}
	return c, true, nil
}

// demoRace, when a test sets it, runs between finding no chat and creating
// one: the window in which demos that took no lock would each create it.
var demoRace func()

// demoLockName names the lock demos take turns with: the key of PostgreSQL's
// advisory lock is its FNV-1 32 hash, as the migration lock's is of its name.
const demoLockName = "chatdb_demo"

// demoLock waits for the lock demos on the database cfg names take for their
// set-up, and returns what releases it. On PostgreSQL it is an advisory lock,
// held by a pool of one connection of its own (so the demo's pool keeps all of
// its connections); on SQLite, which has no such lock, it is the write lock of
// a small database beside the demo's, PATH.demo-lock, held in an open
// transaction: it works across processes on every system SQLite runs on, and
// the operating system releases it when a demo dies.
func demoLock(ctx context.Context, cfg database.Config, dialect string) (func() error, error) {
	lcfg := cfg
	lcfg.MaxOpenConns, lcfg.MaxIdleConns, lcfg.LogQueries = 1, 1, false
	if dialect == database.SQLite {
		path, _ := database.SQLitePath(cfg.URL)
		if path == ":memory:" {
			return func() error { return nil }, nil // no other process can see it
		}
		lcfg.URL, lcfg.SQLiteBusyTimeout = path+".demo-lock", time.Minute
	}
	ldb, err := database.Open(ctx, lcfg)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if dialect == database.SQLite {
		tx, err := ldb.SQL().BeginTx(ctx, nil) // BEGIN IMMEDIATE: its write lock
		if err != nil {
			return nil, errors.Join(fmt.Errorf("lock: %w", database.MapError(err)), ldb.Close())
		}
		return func() error { return errors.Join(tx.Rollback(), ldb.Close()) }, nil
	}
	h := fnv.New32()
	h.Write([]byte(demoLockName))
	key := int64(h.Sum32())
	if _, err := ldb.SQL().ExecContext(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return nil, errors.Join(fmt.Errorf("lock: %w", database.MapError(err)), ldb.Close())
	}
	// Closing the pool ends the session, and the lock with it, even when the
	// unlock fails.
	return func() error {
		_, err := ldb.SQL().ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key)
		return errors.Join(err, ldb.Close())
	}, nil
}

func (r *demoRun) chatLine(kind, title string, created bool) {
	state := "existing"
	if created {
		state = "new"
	}
	fmt.Fprintf(r.out, "chat %-9s %-26s (%s)\n", kind, title, state)
}

// title is what an inbox shows for a chat: its title, or for a direct chat the
// other person's name.
func (r *demoRun) title(c *store.Chat, me uuid.UUID, members []uuid.UUID) string {
	if c.Title != "" {
		return c.Title
	}
	for _, id := range members {
		if id != me {
			return r.name(id)
		}
	}
	return "(untitled)"
}

func (r *demoRun) name(id uuid.UUID) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	return "someone"
}

// author is who wrote m, as a chat list shows it.
func (r *demoRun) author(m *store.Message) string {
	switch {
	case m.SenderID != uuid.Nil:
		return r.name(m.SenderID)
	case m.Role == message.RoleAssistant:
		return "Assistant"
	default:
		return string(m.Role)
	}
}

func (r *demoRun) printInbox(as context.Context, me *store.User) error {
	entries, err := r.s.Inbox(as, store.InboxQuery{Limit: 20})
	if err != nil {
		return fmt.Errorf("demo: inbox: %w", err)
	}
	fmt.Fprintf(r.out, "\nInbox of %s (newest activity first)\n", me.DisplayName)
	tw := tabwriter.NewWriter(r.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHAT\tKIND\tUNREAD\tLAST MESSAGE")
	for _, e := range entries {
		var members []uuid.UUID
		if e.Chat.Kind == chat.KindDirect {
			ms, err := r.s.Members(as, e.Chat.ID)
			if err != nil {
				return fmt.Errorf("demo: members: %w", err)
			}
			for _, m := range ms {
				members = append(members, m.UserID)
			}
		}
		preview := "(no messages)"
		if m := e.LastMessage; m != nil {
			preview = r.author(m) + ": " + clip(m.Content, 48)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", r.title(e.Chat, me.ID, members), e.Chat.Kind, e.Unread, preview)
	}
	return tw.Flush()
}

func (r *demoRun) printHistory(as context.Context, c *store.Chat) error {
	const pageSize = 5
	page, err := r.s.History(as, c.ID, store.HistoryQuery{Limit: pageSize})
	if err != nil {
		return fmt.Errorf("demo: history: %w", err)
	}
	fmt.Fprintf(r.out, "\nHistory of %q, newest first (%d messages, up to %d a page)\n", c.Title, len(page.Messages), pageSize)
	tw := tabwriter.NewWriter(r.out, 0, 4, 2, ' ', 0)
	for _, m := range page.Messages {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.CreatedAt.Local().Format(time.TimeOnly), r.author(m), clip(m.Content, 64))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintln(r.out, "  ... older messages continue from page.Next (keyset pagination)")
	}
	fmt.Fprintln(r.out, `
Next:
  chatdb seed --users 100 --chats 50 --messages 10000   # data at scale
  chatdb doctor                                         # check the database`)
	return nil
}

// clip shortens s to n runes on one line, marking the cut.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
