package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/store"
)

// replicaReads sums the reads routed to db's replicas.
func replicaReads(db *database.DB) (n uint64) {
	for _, st := range db.Replicas() {
		n += st.Reads
	}
	return n
}

// TestReplicaStore runs the store on a primary with two streaming standbys,
// on both drivers and both backends: its reads (History, Inbox, GetUser,
// GetChat, Members) go to the standbys, its writes to the primary; with
// replay paused, a reader without a token sees the standbys' stale copy,
// while the writer's session, and any request carrying its token, sees the
// write.
func TestReplicaStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary and two standbys")
	}
	rs := dbtest.StartReplicas(t, 2)
	for _, target := range []dbtest.Target{dbtest.PGX, dbtest.PQ} {
		for _, b := range backends {
			t.Run(string(target)+"/"+b.name, func(t *testing.T) {
				cfg := rs.Config(target)
				cfg.ReplicaCheckInterval = 50 * time.Millisecond
				// No lag bound: paused standbys keep serving, so that the test
				// sees what a replica serves.
				cfg.MaxReplicaLag = -1
				frugal(&cfg)
				db, err := database.Open(t.Context(), cfg)
				require.NoError(t, err)
				t.Cleanup(func() { db.Close() })
				e := &env{t: t, target: target, db: db, s: store.New(db, b.opts...)}

				// Writes work: none is sent to a standby, which would refuse it.
				ada, bob := e.user("ada"), e.user("bob")
				c := e.group(ada, bob)
				first := e.say(ada, c, "first")
				require.NoError(t, rs.WaitReplayed(t.Context()))
				waitStates(t, db, database.ReplicaHealthy, database.ReplicaHealthy)

				// Reads go to the standbys.
				primaryBefore, replicasBefore := db.PrimaryReads(), replicaReads(db)
				page, err := e.s.History(e.as(bob), c.ID, store.HistoryQuery{})
				require.NoError(t, err)
				require.Len(t, page.Messages, 1)
				inbox, err := e.s.Inbox(e.as(bob), store.InboxQuery{})
				require.NoError(t, err)
				require.Len(t, inbox, 1)
				require.Equal(t, 1, inbox[0].Unread)
				_, err = e.s.GetUser(e.as(bob), ada.ID)
				require.NoError(t, err)
				_, err = e.s.GetChat(e.as(bob), c.ID)
				require.NoError(t, err)
				members, err := e.s.Members(e.as(bob), c.ID)
				require.NoError(t, err)
				require.Len(t, members, 2)
				require.Equal(t, primaryBefore, db.PrimaryReads(), "no read went to the primary")
				require.GreaterOrEqual(t, replicaReads(db)-replicasBefore, uint64(5))
				for _, st := range db.Replicas() {
					require.Positive(t, st.Reads, "reads spread over both standbys")
				}

				// Replay paused: the standbys keep what they have.
				for _, s := range rs.Standbys {
					require.NoError(t, s.PauseReplay(t.Context()))
				}
				t.Cleanup(func() {
					for _, s := range rs.Standbys {
						s.ResumeReplay(context.Background())
					}
				})
				session, err := database.WithToken(e.as(ada), "")
				require.NoError(t, err)
				second, err := e.s.AppendMessage(session, store.NewMessage{ChatID: c.ID, Content: "second"})
				require.NoError(t, err)
				requireLast := func(ctx context.Context, want *store.Message, why string) {
					t.Helper()
					page, err := e.s.History(ctx, c.ID, store.HistoryQuery{})
					require.NoError(t, err)
					require.NotEmpty(t, page.Messages)
					require.Equal(t, want.ID, page.Messages[0].ID, why)
				}
				requireLast(session, second, "the writer's session reads its write")

				// Bob without a token: a standby's stale copy.
				requireLast(e.as(bob), first, "an untokened read is served by a paused standby")
				inbox, err = e.s.Inbox(e.as(bob), store.InboxQuery{})
				require.NoError(t, err)
				require.Equal(t, 1, inbox[0].Unread, "stale")

				// With the writer's token, from any request: never stale.
				tok, err := db.Token(session)
				require.NoError(t, err)
				for _, ctx := range []context.Context{e.as(ada), e.as(bob)} {
					tokened, err := database.WithToken(ctx, tok)
					require.NoError(t, err)
					for range 5 {
						requireLast(tokened, second, "a read carrying the token sees the write")
					}
				}
				tokened, err := database.WithToken(e.as(bob), tok)
				require.NoError(t, err)
				inbox, err = e.s.Inbox(tokened, store.InboxQuery{})
				require.NoError(t, err)
				require.Equal(t, 2, inbox[0].Unread)
				require.Equal(t, second.ID, inbox[0].LastMessage.ID)

				// A write with the token's session: MarkRead goes to the
				// primary, and the session's next read too.
				require.NoError(t, e.s.MarkRead(tokened, c.ID, second.ID))
				inbox, err = e.s.Inbox(tokened, store.InboxQuery{})
				require.NoError(t, err)
				require.Zero(t, inbox[0].Unread)

				// Replay resumed: once a standby has replayed the token, it
				// serves the tokened reads.
				for _, s := range rs.Standbys {
					require.NoError(t, s.ResumeReplay(t.Context()))
				}
				require.NoError(t, rs.WaitReplayed(t.Context()))
				tokened, err = database.WithToken(e.as(bob), tok)
				require.NoError(t, err)
				start := time.Now()
				for {
					before := replicaReads(db)
					requireLast(tokened, second, "a read carrying the token sees the write")
					if replicaReads(db) > before {
						break
					}
					require.Less(t, time.Since(start), 30*time.Second, "no standby served the token after replay resumed")
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
	}
}

// waitStates waits until db's replicas are in the states want, in order.
func waitStates(t *testing.T, db *database.DB, want ...database.ReplicaState) {
	t.Helper()
	require.Eventually(t, func() bool {
		for i, st := range db.Replicas() {
			if st.State != want[i] {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "replicas never reached %v: %+v", want, db.Replicas())
}
