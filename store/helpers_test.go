package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// env is one test's store on a fresh database, with helpers to act as users.
type env struct {
	t      *testing.T
	target dbtest.Target
	db     *database.DB
	s      *store.Store
}

func newEnv(t *testing.T, target dbtest.Target, opts ...store.Option) *env {
	t.Helper()
	db := dbtest.Open(t, target, frugal)
	return &env{t: t, target: target, db: db, s: store.New(db, opts...)}
}

// backend is one of the store's two ways to run its operations.
type backend struct {
	name string
	opts []store.Option
}

// backends are the hand-written statements store.New chooses, and the ent
// client under its privacy policies that they are held to.
var backends = []backend{
	{"statements", nil},
	{"policies", []store.Option{store.WithPolicyBackend()}},
}

// eachBackend runs fn, in parallel, on a fresh env for every dbtest target and
// every backend: the same assertions hold both to the same answers.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		for _, b := range backends {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				fn(t, newEnv(t, target, b.opts...))
			})
		}
	})
}

// eachTargetOpts runs fn, in parallel, on a fresh env with opts for every
// dbtest target.
func eachTargetOpts(t *testing.T, opts []store.Option, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		fn(t, newEnv(t, target, opts...))
	})
}

// eachTarget runs fn, in parallel, on a fresh env for every dbtest target; the
// test itself runs in parallel with the package's others.
func eachTarget(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		fn(t, newEnv(t, target))
	})
}

// frugal keeps each test's pool small: the PostgreSQL server is shared by every
// test database at once, and its connection limit is the scarce resource. Eight
// connections are still enough for the races to race.
var frugal = dbtest.WithConfig(func(c *database.Config) {
	c.MaxOpenConns = 8
	c.MaxIdleConns = 2
})

// sys returns a context acting as the system.
func (e *env) sys() context.Context { return viewer.SystemContext(e.t.Context()) }

// as returns a context acting as u.
func (e *env) as(u *store.User) context.Context { return viewer.NewContext(e.t.Context(), u.ID) }

var userSeq atomic.Int64

// user creates a user with a unique email.
func (e *env) user(name string) *store.User {
	e.t.Helper()
	u, err := e.s.CreateUser(e.sys(), store.NewUser{
		Email:       fmt.Sprintf("%s-%d@example.com", name, userSeq.Add(1)),
		DisplayName: name,
	})
	require.NoError(e.t, err)
	return u
}

// direct creates the direct chat between a and b, as a.
func (e *env) direct(a, b *store.User) *store.Chat {
	e.t.Helper()
	c, created, err := e.s.CreateDirectChat(e.as(a), b.ID)
	require.NoError(e.t, err)
	require.True(e.t, created)
	return c
}

// group creates a group chat owned by owner with members.
func (e *env) group(owner *store.User, members ...*store.User) *store.Chat {
	e.t.Helper()
	ids := make([]uuid.UUID, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	c, err := e.s.CreateGroupChat(e.as(owner), "group", ids)
	require.NoError(e.t, err)
	return c
}

// say appends a user message from u to c.
func (e *env) say(u *store.User, c *store.Chat, content string) *store.Message {
	e.t.Helper()
	m, err := e.s.AppendMessage(e.as(u), store.NewMessage{ChatID: c.ID, Content: content})
	require.NoError(e.t, err)
	return m
}

// history reads the whole of c's history, oldest first, as u.
func (e *env) history(u *store.User, c *store.Chat) []*store.Message {
	e.t.Helper()
	var all []*store.Message
	q := store.HistoryQuery{Order: store.OldestFirst, Limit: 200}
	for {
		page, err := e.s.History(e.as(u), c.ID, q)
		require.NoError(e.t, err)
		all = append(all, page.Messages...)
		if page.Next == "" {
			return all
		}
		q.After = page.Next
	}
}

// countMessages counts c's rows in messages, as the system.
func (e *env) countMessages(c *store.Chat) int {
	e.t.Helper()
	n, err := e.db.Client().Message.Query().Where(message.ChatID(c.ID)).Count(e.sys())
	require.NoError(e.t, err)
	return n
}

// chat reads c's row, as the system.
func (e *env) chat(c *store.Chat) *ent.Chat {
	e.t.Helper()
	got, err := e.db.Client().Chat.Get(e.sys(), c.ID)
	require.NoError(e.t, err)
	return got
}

// requireKind checks that err is of kind want and of no other store or database
// sentinel.
func requireKind(t *testing.T, err, want error) {
	t.Helper()
	require.ErrorIs(t, err, want)
	for _, other := range kinds {
		if other != want {
			require.NotErrorIs(t, err, other, "%v", err)
		}
	}
}

var kinds = []error{
	store.ErrForbidden, store.ErrInvalidCursor,
	database.ErrNotFound, database.ErrConflict, database.ErrInvalidReference,
	database.ErrCheck, database.ErrInvalid, database.ErrTimeout, database.ErrSerialization,
}
