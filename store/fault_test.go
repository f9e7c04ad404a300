package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/store"
)

// proxied is a store whose pool reaches PostgreSQL through a test proxy.
type proxied struct {
	*env
	px *dbtest.Proxy
}

func newProxied(t *testing.T, target dbtest.Target) *proxied {
	t.Helper()
	px, cfg := dbtest.ProxyFor(t, dbtest.Config(t, target))
	cfg.OpenRetryWindow = -1
	frugal(&cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return &proxied{env: &env{t: t, target: target, db: db, s: store.New(db)}, px: px}
}

// appendStatements returns the statements one AppendMessage sends, as the proxy
// sees them. The fault test arms on the last one that makes the message
// durable: the COMMIT when AppendMessage runs a transaction, the INSERT into
// messages when it runs as one statement in autocommit.
func (p *proxied) appendStatements(as context.Context, c *store.Chat) []string {
	p.t.Helper()
	var (
		mu   sync.Mutex
		seen []string
	)
	probe := p.px.CutBefore(func(m dbtest.Message) bool {
		if m.Runs() {
			mu.Lock()
			seen = append(seen, m.SQL())
			mu.Unlock()
		}
		return false
	})
	_, err := p.s.AppendMessage(as, store.NewMessage{ChatID: c.ID, Content: "probe"})
	require.NoError(p.t, err)
	require.True(p.t, p.px.Disarm(probe))
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), seen...)
}

// insertsMessage reports whether sql writes a row of messages.
func insertsMessage(sql string) bool {
	s := strings.ToLower(sql)
	return strings.Contains(s, "insert into") && strings.Contains(s, "messages")
}

// durableStep returns the matcher of the statement whose answer, when lost,
// leaves the append's outcome unknown: COMMIT if AppendMessage sends one,
// otherwise its INSERT into messages.
func durableStep(t *testing.T, stmts []string) (string, func(dbtest.Message) bool) {
	t.Helper()
	for _, s := range stmts {
		if dbtest.IsCommit(dbtest.Message{Type: 'Q', Body: append([]byte(s), 0)}) {
			return "COMMIT", dbtest.IsCommit
		}
	}
	for _, s := range stmts {
		if insertsMessage(s) {
			return "INSERT", func(m dbtest.Message) bool { return m.Runs() && insertsMessage(m.SQL()) }
		}
	}
	t.Fatalf("AppendMessage sent neither a COMMIT nor an INSERT into messages: %q", stmts)
	return "", nil
}

// Fault 4, store half: the answer to the statement that makes an appended
// message durable (the COMMIT, or the single INSERT when AppendMessage runs in
// autocommit) is lost. The caller cannot know whether the message is stored and
// is told so with a classified error; retrying with the same message ID stores
// the message exactly once, whatever the server did.
func TestFaultAppendMessageOutcomeUnknown(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		arm  func(px *dbtest.Proxy, match func(dbtest.Message) bool) *dbtest.Fault
		// stored is what the server did with the first attempt.
		stored bool
		// timeout bounds the first attempt; the answer is held until it passes.
		timeout time.Duration
	}{
		{"answer lost", (*dbtest.Proxy).CutAfterReply, true, 0},
		{"never arrived", (*dbtest.Proxy).CutBefore, false, 0},
		{"answer stalled past the deadline", (*dbtest.Proxy).StallAfter, true, time.Second},
	}
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				p := newProxied(t, target)
				ada, bob := p.user("ada"), p.user("bob")
				c := p.direct(ada, bob)
				as := p.as(ada)
				step, match := durableStep(t, p.appendStatements(as, c))
				t.Logf("AppendMessage's durable step: %s", step)

				msg := store.NewMessage{ID: schema.NewID(), ChatID: c.ID, Content: "sent once, whatever the network does"}
				f := tc.arm(p.px, match)
				ctx, cancel := as, context.CancelFunc(func() {})
				if tc.timeout > 0 {
					ctx, cancel = context.WithTimeout(as, tc.timeout)
				}
				start := time.Now()
				_, err := p.s.AppendMessage(ctx, msg)
				cancel()
				require.Less(t, time.Since(start), 10*time.Second, "the call returned within its bound")
				select {
				case <-f.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the proxy's fault did not happen")
				}
				if tc.timeout > 0 {
					p.px.CutAll() // the stalled path is closed at last
				}

				// What the caller sees: an error that says the outcome is unknown.
				// One exception: a single statement that never reached the server
				// may be sent again by database/sql on a new connection, and
				// succeed; then it is stored, once.
				t.Logf("the first attempt: %v", err)
				wantStored := tc.stored
				if err == nil && step == "INSERT" && !tc.stored {
					t.Log("the INSERT that never arrived was sent again and succeeded")
					wantStored = true
				} else {
					requireOutcomeUnknown(t, err, step, msg.Content)
				}

				// What the server did. A single statement stalled after its
				// Execute may not have reached its Sync: the server then rolls
				// it back when the connection goes, and either outcome is right.
				stored, err := p.db.Client().Message.Get(p.sys(), msg.ID)
				if step == "INSERT" && tc.timeout > 0 {
					t.Logf("the server stored the stalled statement: %v", err == nil)
				} else if wantStored {
					require.NoError(t, err, "the server stored the first attempt")
					require.Equal(t, msg.Content, stored.Content)
				} else {
					require.True(t, ent.IsNotFound(err), "the first attempt never reached the server: %v", err)
				}
				requireStoreHealthy(t, p.env)

				// The caller retries with the same ID, twice for good measure: the
				// message is stored exactly once, with the chat's time bumped to it.
				var got *store.Message
				for range 2 {
					got, err = p.s.AppendMessage(as, msg)
					require.NoError(t, err)
					require.Equal(t, msg.ID, got.ID)
					require.Equal(t, msg.Content, got.Content)
				}
				require.Equal(t, 2, p.countMessages(c), "the probe and the message, once")
				hist := p.history(ada, c)
				require.Len(t, hist, 2)
				require.Equal(t, msg.ID, hist[1].ID)
				require.True(t, p.chat(c).LastMessageAt.Equal(hist[1].CreatedAt), "last_message_at is the message's time")
				requireStoreHealthy(t, p.env)
			})
		}
	})
}

func errorsIsAny(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// requireStoreHealthy checks that the pool has no connection in use and that a
// store call works.
func requireStoreHealthy(t *testing.T, e *env) {
	t.Helper()
	require.Eventually(t, func() bool { return e.db.Stats().InUse == 0 }, 10*time.Second, 10*time.Millisecond,
		"connections still in use: %+v", e.db.Stats())
	// The pool works again: a store call succeeds (the user is simply not
	// found). A connection dialled while the fault's connections were still
	// being torn down may be reset once (seen through PgBouncer, which closes
	// its side of a cut connection a moment later): a new call, as an
	// application's next request would be, must then succeed.
	var err error
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(e.sys(), 10*time.Second)
		defer cancel()
		_, err = e.s.GetUser(ctx, uuid.New())
		return !errors.Is(err, database.ErrBadConn)
	}, 10*time.Second, 50*time.Millisecond, "the pool never worked again: %v", err)
	require.ErrorIs(t, err, database.ErrNotFound, "the pool works again")
}

// requireOutcomeUnknown checks the error of an append whose outcome the
// network hid: classified as "outcome unknown" (ErrCommitUnknown when a COMMIT
// was lost, ErrBadConn for a single statement), of no other kind, and without
// the message in its text.
func requireOutcomeUnknown(t *testing.T, err error, step, content string) {
	t.Helper()
	require.Error(t, err)
	unknown := errorsIsAny(err, database.ErrCommitUnknown, database.ErrBadConn)
	if step == "INSERT" && errors.Is(err, context.DeadlineExceeded) {
		// A single statement whose answer is held until the caller's deadline
		// reports the deadline: it may have run, as with a lost COMMIT.
		unknown = true
	}
	require.True(t, unknown, "a classified outcome-unknown error, got %v", err)
	for _, wrong := range []error{database.ErrConflict, database.ErrNotFound, database.ErrInvalid, store.ErrForbidden, database.ErrSerialization} {
		require.NotErrorIs(t, err, wrong)
	}
	if step == "COMMIT" {
		require.ErrorIs(t, err, database.ErrCommitUnknown)
		require.Contains(t, err.Error(), "commit outcome unknown")
	}
	require.NotContains(t, err.Error(), content, "the error does not carry the message")
}
