package soak_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

var (
	soakFor     = flag.Duration("soak", 0, "run the soak test for this long (also CHATDB_SOAK); 0 skips it")
	soakDriver  = flag.String("soak.driver", "both", "pgx, pq or both")
	soakClients = flag.Int("soak.clients", 32, "number of appending clients")
)

// Shape of the load and of the faults.
const (
	clientsPerChat = 4                // clients appending to each chat: they contend for its row lock
	readers        = 4                // goroutines paging through history meanwhile
	maxOpenConns   = 24               // below the number of goroutines: callers also wait for connections
	attemptTimeout = 10 * time.Second // bounds every call; none may hang
	cancelRate     = 0.1              // fault 7: share of calls whose context is cancelled at a random moment
	killEvery      = 3 * time.Second  // fault 1: pg_terminate_backend of every client backend, idle or active
	restartEvery   = 20 * time.Second // fault 2: fast restart of the server
	drainGrace     = 2 * time.Minute  // after the run, for the last messages' retries
)

func duration(t *testing.T) time.Duration {
	if *soakFor > 0 {
		return *soakFor
	}
	if s := os.Getenv("CHATDB_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "CHATDB_SOAK")
		return d
	}
	t.Skip("soak: not requested; run with -soak=3m or CHATDB_SOAK=3m")
	return 0
}

func TestSoak(t *testing.T) {
	d := duration(t)
	for _, target := range []dbtest.Target{dbtest.PGX, dbtest.PQ} {
		if *soakDriver != "both" && !strings.HasSuffix(string(target), *soakDriver) {
			continue
		}
		t.Run(string(target), func(t *testing.T) { soak(t, target, d) })
	}
}

// ack is an acknowledged append, in the order its client saw it.
type ack struct {
	id      uuid.UUID
	chat    uuid.UUID
	content string
	at      time.Time
}

// counters of what happened during the run.
type counters struct {
	attempts, retries, acked, gaveUp, dedup          atomic.Int64
	cancelled, kills, killed, restarts, reads, pages atomic.Int64
	hard                                             atomic.Int64
	maxOpen                                          atomic.Int64
	slowest                                          atomic.Int64 // nanoseconds
	byKind                                           sync.Map     // string -> *atomic.Int64
	mu                                               sync.Mutex
	hardErrs                                         []string
}

func (c *counters) kind(err error) {
	k := "other"
	for _, s := range []struct {
		name string
		err  error
	}{
		{"ErrCommitUnknown", database.ErrCommitUnknown}, {"ErrBadConn", database.ErrBadConn},
		{"ErrTimeout", database.ErrTimeout}, {"ErrSerialization", database.ErrSerialization},
		{"context.Canceled", context.Canceled}, {"context.DeadlineExceeded", context.DeadlineExceeded},
	} {
		if errors.Is(err, s.err) {
			k = s.name
			break
		}
	}
	v, _ := c.byKind.LoadOrStore(k, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (c *counters) hardError(what string, err error) {
	c.hard.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.hardErrs) < 20 {
		c.hardErrs = append(c.hardErrs, fmt.Sprintf("%s: %v", what, err))
	}
}

// retryable reports whether a caller may send the same idempotent call again:
// the outcome is unknown or nothing happened.
func retryable(err error) bool {
	for _, target := range []error{database.ErrBadConn, database.ErrTimeout, database.ErrCommitUnknown,
		database.ErrSerialization, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// call runs fn with a bounded context that, for a share of calls, is cancelled
// at a random moment (fault 7).
func call(parent context.Context, rng *rand.Rand, c *counters, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, attemptTimeout)
	defer cancel()
	if rng.Float64() < cancelRate {
		c.cancelled.Add(1)
		timer := time.AfterFunc(time.Duration(rng.Int64N(int64(20*time.Millisecond))), cancel)
		defer timer.Stop()
	}
	start := time.Now()
	err := fn(ctx)
	if took := time.Since(start); int64(took) > c.slowest.Load() {
		c.slowest.Store(int64(took))
	}
	return err
}

func soak(t *testing.T, target dbtest.Target, d time.Duration) {
	cl := dbtest.StartCluster(t)
	ctx := context.Background()
	cfg := database.Config{URL: cl.URL(), Driver: target.Driver(), MaxOpenConns: maxOpenConns, MaxIdleConns: maxOpenConns}
	db, err := database.Open(ctx, cfg)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, database.Migrate(ctx, db))
	s := store.New(db)

	// The cast: one user per client, clientsPerChat clients per group chat.
	clients := *soakClients
	sys := viewer.SystemContext(ctx)
	users := make([]*store.User, clients)
	for i := range users {
		users[i], err = s.CreateUser(sys, store.NewUser{Email: fmt.Sprintf("client%d@soak.example.com", i), DisplayName: fmt.Sprintf("client %d", i)})
		require.NoError(t, err)
	}
	chatOf := make([]uuid.UUID, clients)
	var chats []uuid.UUID
	for i := 0; i < clients; i += clientsPerChat {
		var members []uuid.UUID
		for j := i + 1; j < min(i+clientsPerChat, clients); j++ {
			members = append(members, users[j].ID)
		}
		c, err := s.CreateGroupChat(viewer.NewContext(ctx, users[i].ID), fmt.Sprintf("chat %d", i/clientsPerChat), members)
		require.NoError(t, err)
		chats = append(chats, c.ID)
		for j := i; j < min(i+clientsPerChat, clients); j++ {
			chatOf[j] = c.ID
		}
	}

	var c counters
	runCtx, stopRun := context.WithTimeout(ctx, d)
	defer stopRun()
	drainCtx, stopDrain := context.WithTimeout(ctx, d+drainGrace)
	defer stopDrain()
	acks := make([][]ack, clients)
	unacked := make([][]string, clients) // contents whose ID was sent but never acknowledged
	var wg sync.WaitGroup

	// Writers: each appends its next message with an ID chosen before the first
	// attempt, and retries the same ID until acknowledged.
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			as := viewer.NewContext(drainCtx, users[i].ID)
			for seq := 0; runCtx.Err() == nil; seq++ {
				m := store.NewMessage{ID: schema.NewID(), ChatID: chatOf[i], Content: fmt.Sprintf("client %d message %d", i, seq)}
				var failedAt time.Time // when the last failed attempt returned
				for attempt := 0; ; attempt++ {
					if drainCtx.Err() != nil {
						c.gaveUp.Add(1)
						unacked[i] = append(unacked[i], m.Content)
						return
					}
					c.attempts.Add(1)
					if attempt > 0 {
						c.retries.Add(1)
					}
					var got *store.Message
					err := call(as, rng, &c, func(ctx context.Context) error {
						var err error
						got, err = s.AppendMessage(ctx, m)
						return err
					})
					if err == nil {
						if got.ID != m.ID || got.Content != m.Content {
							c.hardError("append returned another message", fmt.Errorf("%v %q", got.ID, got.Content))
						}
						acks[i] = append(acks[i], ack{id: got.ID, chat: got.ChatID, content: got.Content, at: got.CreatedAt})
						c.acked.Add(1)
						if attempt > 0 && got.CreatedAt.Before(failedAt) {
							// A failed attempt had stored it; the retry found it.
							c.dedup.Add(1)
						}
						break
					}
					failedAt = time.Now()
					c.kind(err)
					if !retryable(err) {
						c.hardError("append", err)
						unacked[i] = append(unacked[i], m.Content)
						break
					}
					time.Sleep(time.Duration(5+rng.IntN(50)) * time.Millisecond)
				}
			}
		}()
	}

	// Readers: page through a chat's history in both orders; every page must be
	// in order, and a walk must never see a message twice.
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			for runCtx.Err() == nil {
				i := rng.IntN(clients)
				as := viewer.NewContext(runCtx, users[i].ID)
				q := store.HistoryQuery{Limit: 1 + rng.IntN(100), Order: store.Order(rng.IntN(2))}
				seen := map[uuid.UUID]bool{}
				for pages := 0; pages < 20 && runCtx.Err() == nil; pages++ {
					var page *store.HistoryPage
					err := call(as, rng, &c, func(ctx context.Context) error {
						var err error
						page, err = s.History(ctx, chatOf[i], q)
						return err
					})
					c.reads.Add(1)
					if err != nil {
						c.kind(err)
						if !retryable(err) {
							c.hardError("history", err)
						}
						time.Sleep(10 * time.Millisecond)
						continue
					}
					c.pages.Add(1)
					for k, m := range page.Messages {
						if seen[m.ID] {
							c.hardError("history", fmt.Errorf("message %s seen twice in one walk", m.ID))
						}
						seen[m.ID] = true
						if k > 0 {
							prev := page.Messages[k-1]
							inOrder := prev.CreatedAt.Before(m.CreatedAt)
							if q.Order == store.NewestFirst {
								inOrder = prev.CreatedAt.After(m.CreatedAt)
							}
							if !inOrder {
								c.hardError("history", fmt.Errorf("page out of order at %s", m.ID))
							}
						}
					}
					if page.Next == "" {
						break
					}
					if q.Order == store.NewestFirst {
						q.Before = page.Next
					} else {
						q.After = page.Next
					}
				}
			}
		}()
	}

	// Faults 1 and 2, from an administrator's pool that rides out the restarts.
	admin, err := database.Open(ctx, database.Config{URL: cl.URL(), Driver: target.Driver(), MaxOpenConns: 2})
	require.NoError(t, err)
	defer admin.Close()
	var faults sync.WaitGroup
	faults.Add(2)
	go func() {
		defer faults.Done()
		tick := time.NewTicker(killEvery)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var n int64
			err := admin.SQL().QueryRowContext(kctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n)
			cancel()
			if err == nil {
				c.kills.Add(1)
				c.killed.Add(n)
			}
		}
	}()
	go func() {
		defer faults.Done()
		tick := time.NewTicker(restartEvery)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			if err := cl.Restart(); err != nil {
				c.hardError("restart", err)
				// Bring it back, or every writer fails until the end.
				for cl.Start() != nil && runCtx.Err() == nil {
					time.Sleep(time.Second)
				}
				continue
			}
			c.restarts.Add(1)
		}
	}()
	// The pool never holds more connections than its limit.
	go func() {
		for drainCtx.Err() == nil {
			if n := int64(db.Stats().OpenConnections); n > c.maxOpen.Load() {
				c.maxOpen.Store(n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	progress := time.NewTicker(30 * time.Second)
	go func() {
		for {
			select {
			case <-drainCtx.Done():
				return
			case <-progress.C:
				t.Logf("%s: %d acknowledged, %d retries, %d restarts, %d backends killed", target, c.acked.Load(), c.retries.Load(), c.restarts.Load(), c.killed.Load())
			}
		}
	}()
	faults.Wait()
	wg.Wait()
	progress.Stop()
	stopDrain()

	// Check what the database holds, from a fresh pool.
	vctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	check, err := database.Open(vctx, database.Config{URL: cl.URL(), Driver: target.Driver()})
	require.NoError(t, err)
	defer check.Close()
	type row struct {
		chat    uuid.UUID
		content string
		at      time.Time
	}
	stored := map[uuid.UUID]row{}
	byContent := map[string]int{}
	byChat := map[uuid.UUID][]row{}
	rows, err := check.SQL().QueryContext(vctx, "SELECT id, chat_id, content, created_at FROM messages ORDER BY chat_id, created_at, id")
	require.NoError(t, err)
	for rows.Next() {
		var id uuid.UUID
		var r row
		require.NoError(t, rows.Scan(&id, &r.chat, &r.content, &r.at))
		stored[id] = r
		byContent[r.content]++
		byChat[r.chat] = append(byChat[r.chat], r)
	}
	require.NoError(t, rows.Err())
	rows.Close()

	var acknowledged, lost, duplicated, wrong, disorder, unackedStored, sameTime, nUnacked int
	for i := range clients {
		nUnacked += len(unacked[i])
		for k, a := range acks[i] {
			acknowledged++
			r, ok := stored[a.id]
			switch {
			case !ok:
				lost++
				continue
			case r.content != a.content || r.chat != a.chat || !r.at.Equal(a.at):
				wrong++
			}
			// A client's next message is appended after the previous one was
			// acknowledged: its time is later.
			if k > 0 && !acks[i][k-1].at.Before(a.at) {
				disorder++
			}
		}
		for _, content := range unacked[i] {
			if byContent[content] > 0 {
				unackedStored++
			}
		}
	}
	for _, n := range byContent {
		if n > 1 {
			duplicated += n - 1
		}
	}
	for _, rs := range byChat {
		for k := 1; k < len(rs); k++ {
			if !rs[k-1].at.Before(rs[k].at) {
				sameTime++
			}
		}
	}
	// Every stored message is one a client sent.
	sent := map[string]bool{}
	for i := range clients {
		for _, a := range acks[i] {
			sent[a.content] = true
		}
		for _, content := range unacked[i] {
			sent[content] = true
		}
	}
	unknown := 0
	for content := range byContent {
		if !sent[content] {
			unknown++
		}
	}
	// Each chat's last_message_at is its newest message's time.
	staleChats := 0
	for _, id := range chats {
		var last time.Time
		require.NoError(t, check.SQL().QueryRowContext(vctx, "SELECT last_message_at FROM chats WHERE id = $1", id).Scan(&last))
		if rs := byChat[id]; len(rs) > 0 && !rs[len(rs)-1].at.Equal(last) {
			staleChats++
		}
	}

	var kinds []string
	c.byKind.Range(func(k, v any) bool {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	sort.Strings(kinds)
	report := fmt.Sprintf(`soak %s, %s, %d clients on %d chats, %d readers, MaxOpenConns %d:
  acknowledged %d, stored %d, duplicated %d, lost %d
  acknowledged but stored differently %d, out of order per client %d, equal or decreasing times per chat %d, stale last_message_at %d
  never acknowledged (gave up or refused) %d, of which stored %d; stored but never sent %d
  append attempts %d, retries %d, acknowledged by a retry after a failed attempt had stored the message %d; history pages read %d of %d calls
  faults: %d restarts, %d kill rounds (%d backends terminated), %d contexts cancelled at random
  retried errors: %s
  hard (unclassified or unexpected) errors %d; peak open connections %d; slowest call %s`,
		target, d, clients, len(chats), readers, maxOpenConns,
		acknowledged, len(stored), duplicated, lost,
		wrong, disorder, sameTime, staleChats,
		nUnacked, unackedStored, unknown,
		c.attempts.Load(), c.retries.Load(), c.dedup.Load(), c.pages.Load(), c.reads.Load(),
		c.restarts.Load(), c.kills.Load(), c.killed.Load(), c.cancelled.Load(),
		strings.Join(kinds, " "),
		c.hard.Load(), c.maxOpen.Load(), time.Duration(c.slowest.Load()).Round(time.Millisecond))
	t.Log(report)
	fmt.Println(report)
	for _, e := range c.hardErrs {
		t.Log("hard error:", e)
	}
	require.Zero(t, lost, "lost")
	require.Zero(t, duplicated, "duplicated")
	require.Zero(t, wrong, "stored differently")
	require.Zero(t, disorder, "out of order")
	require.Zero(t, sameTime, "per-chat order")
	require.Zero(t, unknown, "stored but never sent")
	require.Zero(t, staleChats, "last_message_at")
	require.Zero(t, c.hard.Load(), "hard errors")
	require.LessOrEqual(t, c.maxOpen.Load(), int64(maxOpenConns))
	require.Greater(t, acknowledged, 0)
	require.Greater(t, c.restarts.Load(), int64(0), "the server was restarted at least once")
}
