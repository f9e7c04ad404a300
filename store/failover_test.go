package store_test

import (
	"context"
	"errors"
	"fmt"
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

// Shape of the failover test's load.
const (
	failoverClients        = 8                // appending goroutines; even ones use the statement backend, odd ones the WithTx one
	failoverClientsPerChat = 4                // they contend for their chat's row lock
	failoverMaxOpen        = 12               // the one pool of the whole run
	failoverAttempt        = 10 * time.Second // bounds every append; none may hang
	failoverWarmUp         = 2 * time.Second  // load before the kill
	failoverAfter          = 2 * time.Second  // load after every client appended again
	failoverBound          = 2 * time.Minute  // for the cluster to fail over and the clients to recover
)

// TestFailover kills the primary of a three-node Patroni cluster (its Patroni
// and every PostgreSQL process, with SIGKILL) under a load of appends through
// one database.DB, opened once on a multi-host connection string with
// target_session_attrs=read-write, and never reopened. It measures how long
// appends fail, checks that every error an append returned meanwhile is one
// WithTx and MapError classify for a failover (ErrBadConn, ErrCommitUnknown,
// ErrReadOnly), and reads back through the same pool from the new primary:
// with synchronous replication every acknowledged message is stored exactly
// once, in its chat's gapless order; with asynchronous replication the
// acknowledged messages lost are counted and reported (the order of what is
// stored must still hold).
//
// A planned switchover (Patroni's POST /switchover, synchronous replication)
// is run the same way: the old primary is demoted, not lost.
//
// It starts six clusters (kill with sync and async replication, and
// switchover, for each driver), 25 s each here, so it runs only when asked
// (RELIABILITY.md, "Failover"):
//
//	CHATDB_TEST_FAILOVER=1 go test ./store -run TestFailover -v -timeout 15m
func TestFailover(t *testing.T) {
	if os.Getenv("CHATDB_TEST_FAILOVER") != "1" {
		t.Skip("failover: not requested; run with CHATDB_TEST_FAILOVER=1 (slow: starts Patroni clusters)")
	}
	if err := dbtest.PatroniAvailable(); err != nil {
		t.Fatalf("failover: %v", err)
	}
	for _, target := range []dbtest.Target{dbtest.PGX, dbtest.PQ} {
		for _, tc := range []struct {
			name             string
			sync, switchover bool
		}{{"kill-sync", true, false}, {"kill-async", false, false}, {"switchover-sync", true, true}} {
			t.Run(tc.name+"/"+string(target), func(t *testing.T) { failover(t, target, tc.sync, tc.switchover) })
		}
	}
}

// failoverAck is an acknowledged append.
type failoverAck struct {
	id, chat uuid.UUID
	seq      int64
	content  string
	at       time.Time // when the client saw the acknowledgement
}

// failoverErrors counts the errors appends returned, by class.
type failoverErrors struct {
	mu           sync.Mutex
	byClass      map[string]int
	unclassified []string
}

// failoverClasses are the errors a failover may give an append: the
// connection broke or could not be made (ErrBadConn), it broke while a COMMIT
// was in flight (ErrCommitUnknown), or the server is a standby or a demoted
// primary (ErrReadOnly). Anything else is a bug in the classification.
var failoverClasses = []struct {
	name string
	err  error
}{
	{"ErrCommitUnknown", database.ErrCommitUnknown},
	{"ErrBadConn", database.ErrBadConn},
	{"ErrReadOnly", database.ErrReadOnly},
}

func (e *failoverErrors) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range failoverClasses {
		if errors.Is(err, c.err) {
			e.byClass[c.name]++
			return
		}
	}
	e.byClass["unclassified"]++
	if len(e.unclassified) < 20 {
		e.unclassified = append(e.unclassified, err.Error())
	}
}

func failover(t *testing.T, target dbtest.Target, synchronous, switchover bool) {
	started := time.Now()
	cl := dbtest.StartPatroni(t, dbtest.PatroniOptions{Sync: synchronous})
	bootstrap := time.Since(started)
	ctx := context.Background()

	// The one pool of the run: the application is never restarted.
	db, err := database.Open(ctx, database.Config{URL: cl.URL(), Driver: target.Driver(),
		MaxOpenConns: failoverMaxOpen, MaxIdleConns: failoverMaxOpen})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, database.Migrate(ctx, db))
	// Even clients append with the hand-written statement (autocommit), odd
	// ones through the ent backend, whose append is a WithTx transaction.
	stores := []*store.Store{store.New(db), store.New(db, store.WithPolicyBackend())}

	sys := viewer.SystemContext(ctx)
	users := make([]*store.User, failoverClients)
	for i := range users {
		users[i], err = stores[0].CreateUser(sys, store.NewUser{Email: fmt.Sprintf("client%d@failover.example.com", i), DisplayName: fmt.Sprintf("client %d", i)})
		require.NoError(t, err)
	}
	chatOf := make([]uuid.UUID, failoverClients)
	var chats []uuid.UUID
	for i := 0; i < failoverClients; i += failoverClientsPerChat {
		var members []uuid.UUID
		for j := i + 1; j < i+failoverClientsPerChat; j++ {
			members = append(members, users[j].ID)
		}
		c, err := stores[0].CreateGroupChat(viewer.NewContext(ctx, users[i].ID), fmt.Sprintf("chat %d", i), members)
		require.NoError(t, err)
		chats = append(chats, c.ID)
		for j := i; j < i+failoverClientsPerChat; j++ {
			chatOf[j] = c.ID
		}
	}

	var (
		stop      atomic.Bool  // no new messages after this
		killedAt  atomic.Int64 // UnixNano of the moment the node was dead; 0 before
		firstBack atomic.Int64 // UnixNano of the first acknowledgement of an attempt started after it
		attempts  atomic.Int64
		errs      = failoverErrors{byClass: map[string]int{}}
		acks      = make([][]failoverAck, failoverClients)
		unacked   = make([][]string, failoverClients) // sent, never acknowledged
		backAt    = make([]atomic.Int64, failoverClients)
		wg        sync.WaitGroup
	)
	drain, stopDrain := context.WithTimeout(ctx, failoverBound+time.Minute)
	defer stopDrain()
	for i := range failoverClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[i%2]
			as := viewer.NewContext(drain, users[i].ID)
			for n := 0; !stop.Load(); n++ {
				// The ID is chosen before the first attempt; every retry sends
				// the same one, so a retry of an append that was stored after
				// all returns it rather than storing it twice.
				m := store.NewMessage{ID: schema.NewID(), ChatID: chatOf[i], Content: fmt.Sprintf("client %d message %d", i, n)}
				for {
					if drain.Err() != nil {
						unacked[i] = append(unacked[i], m.Content)
						return
					}
					attempts.Add(1)
					// An append that started before the kill may finish on
					// the old primary: only later ones measure the outage.
					startedAfter := killedAt.Load() != 0
					actx, cancel := context.WithTimeout(as, failoverAttempt)
					got, err := s.AppendMessage(actx, m)
					cancel()
					now := time.Now()
					if err == nil {
						acks[i] = append(acks[i], failoverAck{id: got.ID, chat: got.ChatID, seq: got.Seq, content: got.Content, at: now})
						if startedAfter {
							firstBack.CompareAndSwap(0, now.UnixNano())
							backAt[i].CompareAndSwap(0, now.UnixNano())
						}
						break
					}
					errs.add(err)
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}

	time.Sleep(failoverWarmUp)
	leaderCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	old, err := cl.Leader(leaderCtx)
	cancel()
	require.NoError(t, err)
	require.NotEmpty(t, old, "a leader before the kill")
	before := attempts.Load()
	killed := time.Now()
	fault := "killed %s (patroni and postgres, SIGKILL; all dead %s later)"
	if switchover {
		// Appends go on until Patroni stops the old primary: none is
		// measured from the start of the switchover, only the gaps.
		fault = "switched over from %s (POST /switchover, answered %s later)"
		killedAt.Store(killed.UnixNano())
		sctx, cancel := context.WithTimeout(ctx, failoverBound)
		err := cl.Switchover(sctx, old)
		cancel()
		require.NoError(t, err, "%s", cl.Logs())
	} else {
		require.NoError(t, cl.Kill(old))
		// Only appends started once the node is dead measure the outage:
		// one started before may still finish on the old primary.
		killedAt.Store(time.Now().UnixNano())
	}
	dead := time.Now()

	waitCtx, cancel := context.WithTimeout(ctx, failoverBound)
	defer cancel()
	newLeader, err := cl.WaitLeader(waitCtx, old)
	if err != nil {
		stop.Store(true)
		stopDrain()
		wg.Wait()
		t.Fatalf("no new leader: %v\n%s", err, cl.Logs())
	}
	promoted := time.Since(killed)
	// Every client appends again.
	for i := range failoverClients {
		for backAt[i].Load() == 0 && waitCtx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	recoveredAll := time.Since(killed)
	if waitCtx.Err() != nil {
		stop.Store(true)
		stopDrain()
		wg.Wait()
		t.Fatalf("clients did not all append again within %s\n%s", failoverBound, cl.Logs())
	}
	time.Sleep(failoverAfter)
	stop.Store(true)
	wg.Wait()
	stopDrain()

	// Read back through the same pool: it now reaches the new primary.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var host string
	require.NoError(t, db.SQL().QueryRowContext(rctx, "SELECT current_setting('port')").Scan(&host))
	type row struct {
		chat    uuid.UUID
		seq     int64
		content string
	}
	stored := map[uuid.UUID]row{}
	byContent := map[string]int{}
	byChat := map[uuid.UUID][]row{}
	rows, err := db.SQL().QueryContext(rctx, "SELECT id, chat_id, seq, content FROM messages ORDER BY chat_id, seq")
	require.NoError(t, err)
	for rows.Next() {
		var id uuid.UUID
		var r row
		require.NoError(t, rows.Scan(&id, &r.chat, &r.seq, &r.content))
		stored[id] = r
		byContent[r.content]++
		byChat[r.chat] = append(byChat[r.chat], r)
	}
	require.NoError(t, rows.Err())
	rows.Close()

	var acknowledged, lost, duplicated, differently, disorder, gaps, staleChats, unknown, nUnacked int
	sent := map[string]bool{}
	for i := range failoverClients {
		var prev int64 // seq of the client's last acknowledged message that is stored
		for _, a := range acks[i] {
			acknowledged++
			sent[a.content] = true
			r, ok := stored[a.id]
			switch {
			case !ok:
				lost++
				continue
			case r.chat != a.chat || r.content != a.content || r.seq != a.seq:
				differently++
			}
			// A client appends its next message after the previous one was
			// acknowledged: it comes later in the chat. (A lost message's
			// seq is given again on the new primary: compare stored ones.)
			if a.seq <= prev {
				disorder++
			}
			prev = a.seq
		}
		nUnacked += len(unacked[i])
		for _, c := range unacked[i] {
			sent[c] = true
		}
	}
	for c, n := range byContent {
		if n > 1 {
			duplicated += n - 1
		}
		if !sent[c] {
			unknown++
		}
	}
	for _, id := range chats {
		rs := byChat[id]
		for k, r := range rs {
			if r.seq != int64(k+1) {
				gaps++
			}
		}
		var last int64
		require.NoError(t, db.SQL().QueryRowContext(rctx, "SELECT last_seq FROM chats WHERE id = $1", id).Scan(&last))
		if last != int64(len(rs)) {
			staleChats++
		}
	}
	// A write sent to a standby (the node neither killed nor promoted), as
	// to a demoted primary, is ErrReadOnly on both backends.
	var standby string
	for _, n := range cl.Nodes() {
		if n.Name != old && n.Name != newLeader {
			standby = n.Name
		}
	}
	sdb, err := database.Open(rctx, database.Config{URL: cl.NodeURL(standby), Driver: target.Driver(), MaxOpenConns: 2})
	require.NoError(t, err)
	defer sdb.Close()
	for k, s := range []*store.Store{store.New(sdb), store.New(sdb, store.WithPolicyBackend())} {
		_, err := s.AppendMessage(viewer.NewContext(rctx, users[k].ID), store.NewMessage{ChatID: chatOf[k], Content: "to a standby"})
		require.ErrorIs(t, err, database.ErrReadOnly, "a write on standby %s", standby)
	}

	// The longest a client waited between two acknowledgements around the
	// fault: how long appends stalled, whatever the fault.
	var stalled time.Duration
	for i := range failoverClients {
		for k := 1; k < len(acks[i]); k++ {
			if acks[i][k].at.After(killed) {
				stalled = max(stalled, acks[i][k].at.Sub(acks[i][k-1].at))
			}
		}
	}

	back := fmt.Sprintf("appends (started after the node was dead) first succeeded %s after the kill, every client's %s after it",
		time.Duration(firstBack.Load()-killed.UnixNano()).Round(10*time.Millisecond), recoveredAll.Round(10*time.Millisecond))
	if switchover {
		back = "appends went on until the old primary stopped"
	}

	var classes []string
	for k, n := range errs.byClass {
		classes = append(classes, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(classes)
	mode := "asynchronous"
	if synchronous {
		mode = "synchronous (synchronous_mode, synchronous_commit=on)"
	}
	report := fmt.Sprintf(`failover %s, %s replication, Patroni ttl=%d loop_wait=%d retry_timeout=%d, %d clients on %d chats, one pool of %d:
  cluster started in %s; `+fault+`; %s leads %s after the start of the fault; pool now on port %s
  %s; longest a client waited between two acknowledgements %s
  acknowledged %d, stored %d, lost %d, duplicated %d, stored differently %d, out of order per client %d, seq gaps %d, stale last_seq %d, stored but never sent %d, never acknowledged %d
  attempts %d (%d before the fault); failed appends by class: %s`,
		target, mode, dbtest.PatroniTTL, dbtest.PatroniLoopWait, dbtest.PatroniRetryTimeout, failoverClients, len(chats), failoverMaxOpen,
		bootstrap.Round(time.Second), old, dead.Sub(killed).Round(time.Millisecond), newLeader, promoted.Round(10*time.Millisecond), host,
		back, stalled.Round(10*time.Millisecond),
		acknowledged, len(stored), lost, duplicated, differently, disorder, gaps, staleChats, unknown, nUnacked,
		attempts.Load(), before, strings.Join(classes, " "))
	t.Log(report)
	fmt.Println(report)
	for _, e := range errs.unclassified {
		t.Log("unclassified error:", e)
	}

	require.Greater(t, acknowledged, 0)
	require.Zero(t, errs.byClass["unclassified"], "every failed append's error is ErrBadConn, ErrCommitUnknown or ErrReadOnly")
	require.Zero(t, nUnacked, "every message sent was acknowledged in the end")
	require.Zero(t, duplicated, "duplicated")
	require.Zero(t, differently, "stored differently")
	require.Zero(t, disorder, "out of order")
	require.Zero(t, gaps, "per-chat seq gapless from 1")
	require.Zero(t, staleChats, "chats.last_seq is the newest seq")
	require.Zero(t, unknown, "stored but never sent")
	if synchronous {
		require.Zero(t, lost, "with synchronous replication no acknowledged message is lost")
	}
}
