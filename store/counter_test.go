package store_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/store"
)

// counter counts what the driver is asked to do, from the database's own query
// log (database.Config.LogQueries wraps the ent driver in ent's debug driver,
// which logs one record per driver call, statement or transaction step, inside
// transactions too). It is a slog.Handler, so it needs no hook in the store.
type counter struct {
	mu         sync.Mutex
	statements int // queries and execs
	roundTrips int // statements plus BEGIN, COMMIT and ROLLBACK
	log        []string
}

func (c *counter) Enabled(context.Context, slog.Level) bool { return true }
func (c *counter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *counter) WithGroup(string) slog.Handler            { return c }

func (c *counter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "query" {
		return nil
	}
	var text string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "sql" {
			text = a.Value.String()
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roundTrips++
	if strings.Contains(text, "query=") {
		c.statements++
	}
	c.log = append(c.log, text)
	return nil
}

// measure runs fn and returns the statements and round trips it cost.
func (c *counter) measure(fn func()) (statements, roundTrips int) {
	c.mu.Lock()
	s0, r0 := c.statements, c.roundTrips
	c.mu.Unlock()
	fn()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statements - s0, c.roundTrips - r0
}

// newCountingEnv is newEnv on a database whose driver calls are counted.
func newCountingEnv(t *testing.T, target dbtest.Target, opts ...store.Option) (*env, *counter) {
	t.Helper()
	c := &counter{}
	db := dbtest.Open(t, target, frugal, dbtest.WithConfig(func(cfg *database.Config) {
		cfg.LogQueries = true
		cfg.Logger = slog.New(c)
	}))
	return &env{t: t, target: target, db: db, s: store.New(db, opts...)}, c
}

// TestCosts measures what every operation costs in statements and round trips,
// so that the numbers in the doc comments stay true.
func TestCosts(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		e, count := newCountingEnv(t, target)
		ada, bob, carol := e.user("ada"), e.user("bob"), e.user("carol")
		d := e.direct(ada, bob)
		g := e.group(ada, bob)
		m := e.say(bob, g, "hello")
		name := "Ada L."
		// On PostgreSQL appends and read positions are one statement each (see
		// store/sqlbackend.go); SQLite has no data-modifying WITH, and runs them
		// as a few statements in process.
		pg := target != dbtest.SQLite
		pick := func(onPG, onSQLite int) int {
			if pg {
				return onPG
			}
			return onSQLite
		}
		cases := []struct {
			name       string
			statements int
			roundTrips int
			fn         func() error
		}{
			{"CreateUser", 1, 1, func() error {
				_, err := e.s.CreateUser(e.sys(), store.NewUser{Email: "new@example.com", DisplayName: "New"})
				return err
			}},
			{"GetUser", 1, 1, func() error { _, err := e.s.GetUser(e.as(ada), bob.ID); return err }},
			{"UserByEmail", 1, 1, func() error { _, err := e.s.UserByEmail(e.as(ada), bob.Email); return err }},
			{"UpdateProfile", 2, 4, func() error {
				_, err := e.s.UpdateProfile(e.as(ada), ada.ID, store.ProfileUpdate{DisplayName: &name})
				return err
			}},
			{"CreateDirectChat existing", 1, 1, func() error { _, _, err := e.s.CreateDirectChat(e.as(bob), ada.ID); return err }},
			{"CreateDirectChat new", 10, 12, func() error { _, _, err := e.s.CreateDirectChat(e.as(carol), ada.ID); return err }},
			{"CreateGroupChat", pick(13, 14), pick(15, 16), func() error {
				_, err := e.s.CreateGroupChat(e.as(ada), "g", []uuid.UUID{bob.ID, carol.ID})
				return err
			}},
			{"CreateAssistantChat", 5, 7, func() error { _, err := e.s.CreateAssistantChat(e.as(ada), "a"); return err }},
			{"GetChat", 1, 1, func() error { _, err := e.s.GetChat(e.as(ada), g.ID); return err }},
			{"AddMember", 5, 7, func() error { _, err := e.s.AddMember(e.as(ada), g.ID, carol.ID, ""); return err }},
			{"SetRole", 2, 2, func() error { _, err := e.s.SetRole(e.as(ada), g.ID, carol.ID, "admin"); return err }},
			{"RemoveMember", 1, 1, func() error { return e.s.RemoveMember(e.as(ada), g.ID, carol.ID) }},
			{"Members", 2, 2, func() error { _, err := e.s.Members(e.as(ada), g.ID); return err }},
			{"AppendMessage", pick(1, 6), pick(1, 8), func() error {
				_, err := e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: g.ID, Content: "x"})
				return err
			}},
			{"AppendMessage reply", pick(1, 7), pick(1, 9), func() error {
				_, err := e.s.AppendMessage(e.as(ada), store.NewMessage{ChatID: g.ID, Content: "x", ReplyTo: m.ID})
				return err
			}},
			{"EditMessage", 2, 2, func() error { _, err := e.s.EditMessage(e.as(bob), m.ID, "edited"); return err }},
			{"History", 1, 1, func() error { _, err := e.s.History(e.as(ada), g.ID, store.HistoryQuery{}); return err }},
			{"Inbox", 1, 1, func() error { _, err := e.s.Inbox(e.as(ada), store.InboxQuery{}); return err }},
			{"MarkRead", pick(1, 2), pick(1, 4), func() error { return e.s.MarkRead(e.as(ada), g.ID, m.ID) }},
			{"DeleteMessage", 1, 1, func() error { return e.s.DeleteMessage(e.as(bob), m.ID) }},
			{"ArchiveChat", 2, 2, func() error { _, err := e.s.ArchiveChat(e.as(ada), d.ID); return err }},
			{"DeleteUser", 1, 1, func() error { return e.s.DeleteUser(e.as(carol), carol.ID) }},
		}
		for _, tc := range cases {
			s, r := count.measure(func() { require.NoError(t, tc.fn(), tc.name) })
			t.Logf("%-26s %d statements, %d round trips", tc.name, s, r)
			require.Equal(t, tc.statements, s, "%s: statements", tc.name)
			require.Equal(t, tc.roundTrips, r, "%s: round trips", tc.name)
		}
	})
}
