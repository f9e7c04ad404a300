package database_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/viewer"
)

// replicaWait bounds the waits of the replica tests for a state a background check
// must reach; they never assert how long it took.
const replicaWait = 30 * time.Second

// TestReplicaConfig: replica settings are checked before anything is opened,
// with errors that never hold a URL.
func TestReplicaConfig(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "chat.db")
	_, err := database.Open(ctx, database.Config{URL: path, ReplicaURLs: []string{"postgres://app:s3cret@db2/chat?sslmode=disable"}})
	var ce *database.ConfigError
	require.ErrorAs(t, err, &ce)
	require.Contains(t, err.Error(), "need PostgreSQL")
	require.NotContains(t, err.Error(), "s3cret")
	_, statErr := os.Stat(path)
	require.True(t, errors.Is(statErr, os.ErrNotExist), "the SQLite file is not created")

	for _, bad := range []string{"sqlite://replica.db", "postgres://app:s3cret@db2:99999/chat", "postgres//app:s3cret@db2"} {
		_, err = database.Open(ctx, database.Config{URL: "postgres://app:s3cret@127.0.0.1:1/chat?sslmode=disable", ReplicaURLs: []string{bad}})
		require.ErrorAs(t, err, &ce, bad)
		require.Contains(t, err.Error(), "ReplicaURLs[0]")
		require.NotContains(t, err.Error(), "s3cret")
	}
	_, err = database.Open(ctx, database.Config{URL: "postgres://127.0.0.1:1/chat?sslmode=disable", ReplicaURLs: []string{"postgres://127.0.0.1:2/chat"}, ReplicaCheckInterval: -time.Second})
	require.ErrorAs(t, err, &ce)

	t.Setenv("CHATDB_REPLICA_URLS", " postgres://app:pw@h1:5432,h2:5432/chat?sslmode=disable , postgresql://h3/chat,host=h4 dbname=chat,")
	t.Setenv("CHATDB_MAX_REPLICA_LAG", "250ms")
	t.Setenv("CHATDB_REPLICA_CHECK_INTERVAL", "2s")
	cfg, err := database.ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, []string{"postgres://app:pw@h1:5432,h2:5432/chat?sslmode=disable", "postgresql://h3/chat", "host=h4 dbname=chat"}, cfg.ReplicaURLs)
	require.Equal(t, 250*time.Millisecond, cfg.MaxReplicaLag)
	require.Equal(t, 2*time.Second, cfg.ReplicaCheckInterval)
	t.Setenv("CHATDB_MAX_REPLICA_LAG", "postgres://app:pw@h1")
	_, err = database.ConfigFromEnv()
	require.ErrorContains(t, err, "CHATDB_MAX_REPLICA_LAG")
	require.NotContains(t, err.Error(), "pw@")

	def := database.Config{}.WithDefaults()
	require.Equal(t, database.DefaultMaxReplicaLag, def.MaxReplicaLag)
	require.Equal(t, database.DefaultReplicaCheckInterval, def.ReplicaCheckInterval)
}

// TestToken: a token is checked when it is taken in, and a bad one is
// ErrInvalid without its text in the message.
func TestToken(t *testing.T) {
	ctx := t.Context()
	for _, bad := range []string{"x", "c1.", "c1.0000000001a2b3c", "c1.0000000001A2B3C8", "c1.0000000001a2b3c8a", "c2.0000000001a2b3c8", "c1.+000000001a2b3c8", "c1.zzzzzzzzzzzzzzzz", strings.Repeat("c1.", 1000)} {
		got, err := database.WithToken(ctx, bad)
		require.ErrorIs(t, err, database.ErrInvalid, bad)
		if len(bad) > 3 {
			require.NotContains(t, err.Error(), bad)
		}
		require.Equal(t, ctx, got)
	}
	for _, ok := range []string{"", "c1.0000000001a2b3c8", "c1.0000000000000000"} {
		_, err := database.WithToken(ctx, ok)
		require.NoError(t, err, ok)
	}

	// SQLite has no replicas and no WAL position: the token is empty.
	db := dbtest.Open(t, dbtest.SQLite)
	sctx, err := database.WithToken(ctx, "")
	require.NoError(t, err)
	tok, err := db.Token(sctx)
	require.NoError(t, err)
	require.Empty(t, tok)
	require.Equal(t, db.Client(), db.ReadClient(sctx), "without replicas reads use the client")
}

// serverOf answers which server a client's read ran on: its port, and
// whether it is a standby.
func serverOf(t *testing.T, ctx context.Context, c *ent.Client) (port int, standby bool) {
	t.Helper()
	rows, err := c.QueryContext(ctx, "SELECT inet_server_port(), pg_is_in_recovery()")
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next(), "%v", rows.Err())
	require.NoError(t, rows.Scan(&port, &standby))
	return port, standby
}

// countUser counts the users with id as the read of c sees them.
func countUser(ctx context.Context, c *ent.Client, id any) (n int, port int, err error) {
	rows, err := c.QueryContext(ctx, "SELECT count(*), inet_server_port() FROM users WHERE id = $1", id)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	if !rows.Next() {
		return 0, 0, errors.Join(rows.Err(), errors.New("no row"))
	}
	if err := rows.Scan(&n, &port); err != nil {
		return 0, 0, err
	}
	return n, port, rows.Close()
}

func waitStates(t *testing.T, db *database.DB, want ...database.ReplicaState) {
	t.Helper()
	require.Eventually(t, func() bool {
		for i, st := range db.Replicas() {
			if st.State != want[i] {
				return false
			}
		}
		return true
	}, replicaWait, 10*time.Millisecond, "replicas never reached %v: %+v", want, db.Replicas())
}

func openReplicated(t *testing.T, rs *dbtest.Replicas, target dbtest.Target, maxLag time.Duration) *database.DB {
	t.Helper()
	cfg := rs.Config(target)
	cfg.ReplicaCheckInterval = 50 * time.Millisecond
	cfg.MaxReplicaLag = maxLag
	db, err := database.Open(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestReplicaRouting runs on a primary with two streaming standbys: reads
// spread over the standbys; writes, transactions and forced reads go to the
// primary; with replay paused, a read carrying the writer's token never sees
// stale data, and untokened reads move to the primary once the standbys lag
// past MaxReplicaLag, and back when replay resumes.
func TestReplicaRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary and two standbys")
	}
	rs := dbtest.StartReplicas(t, 2)
	primaryPort := rs.Primary.Port()
	standbyPorts := map[int]bool{rs.Standbys[0].Port(): true, rs.Standbys[1].Port(): true}
	for _, target := range []dbtest.Target{dbtest.PGX, dbtest.PQ} {
		t.Run(string(target), func(t *testing.T) {
			ctx := viewer.SystemContext(t.Context())
			db := openReplicated(t, rs, target, 300*time.Millisecond)
			waitStates(t, db, database.ReplicaHealthy, database.ReplicaHealthy)

			// Reads spread over both standbys, in turn.
			per := map[int]int{}
			for range 40 {
				port, standby := serverOf(t, ctx, db.ReadClient(ctx))
				require.True(t, standby)
				per[port]++
			}
			require.Len(t, per, 2, "reads went to both standbys: %v", per)
			for port := range per {
				require.True(t, standbyPorts[port], port)
			}
			st := db.Replicas()
			require.Positive(t, st[0].Reads)
			require.Positive(t, st[1].Reads)

			// Writes, transactions and forced reads: the primary.
			port, standby := serverOf(t, ctx, db.Client())
			require.Equal(t, primaryPort, port)
			require.False(t, standby)
			port, _ = serverOf(t, ctx, db.ReadClient(database.Primary(ctx)))
			require.Equal(t, primaryPort, port)
			require.NoError(t, db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
				port, _ := serverOf(t, ctx, tx.Client())
				require.Equal(t, primaryPort, port)
				port, _ = serverOf(t, ctx, db.ReadClient(ctx))
				require.Equal(t, primaryPort, port, "a read with a transaction's context goes to the primary")
				return nil
			}))
			_, err := db.ReadClient(ctx).ExecContext(ctx, "CREATE TABLE replica_write_probe (id int)")
			require.ErrorIs(t, database.MapError(err), database.ErrReadOnly, "a standby refuses writes")

			// Replay paused on both standbys: they fall behind the write below.
			for _, s := range rs.Standbys {
				require.NoError(t, s.PauseReplay(ctx))
			}
			session, err := database.WithToken(ctx, "")
			require.NoError(t, err)
			var u *ent.User
			require.NoError(t, db.WithTxContext(session, func(ctx context.Context, tx *ent.Tx) error {
				u, err = tx.User.Create().SetEmail(string(target) + "@example.com").SetDisplayName("Ada").Save(ctx)
				return err
			}))
			id := any(u.ID)
			n, port, err := countUser(session, db.ReadClient(session), id)
			require.NoError(t, err)
			require.Equal(t, 1, n, "the session that wrote reads its write")
			require.Equal(t, primaryPort, port)
			tok, err := db.Token(session)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(tok, "c1."), tok)
			again, err := db.Token(session)
			require.NoError(t, err)
			require.Equal(t, tok, again, "no write since: the same token")

			// Another request, maybe on another server, carrying the token.
			tokened, err := database.WithToken(ctx, tok)
			require.NoError(t, err)
			for range 20 {
				n, port, err := countUser(tokened, db.ReadClient(tokened), id)
				require.NoError(t, err)
				require.Equal(t, 1, n, "a read carrying the token never misses the write")
				require.Equal(t, primaryPort, port, "no standby has replayed the token")
			}
			passed, err := db.Token(tokened)
			require.NoError(t, err)
			require.Equal(t, tok, passed, "a session that did not write hands its token on")

			// Untokened reads leave the standbys once they lag past MaxReplicaLag.
			waitStates(t, db, database.ReplicaLagging, database.ReplicaLagging)
			for _, st := range db.Replicas() {
				require.True(t, st.ReplayPaused)
				require.Greater(t, st.Lag, 300*time.Millisecond)
				require.Positive(t, st.LagBytes)
				t.Logf("%s paused: lag %v, %d bytes, replay at %s", st.Name, st.Lag, st.LagBytes, st.ReplayLSN)
			}
			before := db.PrimaryReads()
			n, port, err = countUser(ctx, db.ReadClient(ctx), id)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.Equal(t, primaryPort, port)
			require.Equal(t, before+1, db.PrimaryReads())

			// Metrics: one collector per pool, and the replicas' health and lag.
			reg := prometheus.NewRegistry()
			require.NoError(t, reg.Register(db.Collector()))
			families, err := reg.Gather()
			require.NoError(t, err)
			seen := map[string]bool{}
			for _, f := range families {
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						seen[f.GetName()+"/"+l.GetName()+"="+l.GetValue()] = true
					}
					if f.GetName() == "chatdb_replica_healthy" {
						require.Zero(t, m.GetGauge().GetValue())
					}
				}
			}
			for _, want := range []string{
				"go_sql_open_connections/db_name=chatdb", "go_sql_open_connections/db_name=chatdb_replica1", "go_sql_open_connections/db_name=chatdb_replica2",
				"chatdb_replica_healthy/replica=replica1", "chatdb_replica_healthy/state=lagging", "chatdb_replica_lag_seconds/replica=replica2",
				"chatdb_replica_lag_bytes/replica=replica1", "chatdb_reads_total/pool=primary", "chatdb_reads_total/pool=replica2",
			} {
				require.True(t, seen[want], want)
			}

			// Replay resumed: the standbys come back, and serve the token once
			// they have replayed it.
			for _, s := range rs.Standbys {
				require.NoError(t, s.ResumeReplay(ctx))
			}
			waitStates(t, db, database.ReplicaHealthy, database.ReplicaHealthy)
			start := time.Now()
			for {
				n, port, err := countUser(tokened, db.ReadClient(tokened), id)
				require.NoError(t, err)
				require.Equal(t, 1, n, "a read carrying the token never misses the write")
				if standbyPorts[port] {
					t.Logf("a standby served the token %v after both were healthy again (check interval 50ms)", time.Since(start).Round(time.Millisecond))
					break
				}
				require.Less(t, time.Since(start), replicaWait, "no standby served the token after replay resumed")
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestReplicaFailures: a standby killed under a read load costs at most the
// reads in flight on it, each ErrBadConn, and is skipped until it is back; a
// standby promoted to a primary of its own is dropped from the reads.
func TestReplicaFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary and two standbys")
	}
	rs := dbtest.StartReplicas(t, 2)
	for _, target := range []dbtest.Target{dbtest.PGX, dbtest.PQ} {
		t.Run("killed/"+string(target), func(t *testing.T) {
			ctx := viewer.SystemContext(t.Context())
			db := openReplicated(t, rs, target, 5*time.Second)
			waitStates(t, db, database.ReplicaHealthy, database.ReplicaHealthy)

			const readers = 4
			var (
				stop   atomic.Bool
				reads  atomic.Int64
				mu     sync.Mutex
				failed []error
				wg     sync.WaitGroup
			)
			for range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						rows, err := db.ReadClient(ctx).QueryContext(ctx, "SELECT count(*) FROM users")
						if err == nil {
							for rows.Next() {
							}
							err = errors.Join(rows.Err(), rows.Close())
						}
						if err != nil {
							mu.Lock()
							failed = append(failed, err)
							mu.Unlock()
						}
						reads.Add(1)
					}
				}()
			}
			require.Eventually(t, func() bool { return db.Replicas()[0].Reads >= 50 }, replicaWait, time.Millisecond)
			require.NoError(t, rs.Standbys[0].Stop("immediate"))
			waitStates(t, db, database.ReplicaDown, database.ReplicaHealthy)
			// A reader that picked the standby just before it was marked
			// down counts that read after; let every reader move on first.
			after := reads.Load()
			require.Eventually(t, func() bool { return reads.Load() >= after+20 }, replicaWait, time.Millisecond)
			skipped := db.Replicas()[0].Reads
			after = reads.Load()
			require.Eventually(t, func() bool { return reads.Load() >= after+200 }, replicaWait, time.Millisecond)
			stop.Store(true)
			wg.Wait()

			st := db.Replicas()
			require.Equal(t, skipped, st[0].Reads, "no read went to the killed standby once it was down")
			require.Error(t, st[0].Err)
			require.LessOrEqual(t, len(failed), readers, "only the reads in flight fail: %v", failed)
			for _, err := range failed {
				require.ErrorIs(t, database.MapError(err), database.ErrBadConn)
			}
			t.Logf("%s: %d reads, %d failed in flight, %d run again on the primary", target, reads.Load(), len(failed), st[0].Fallbacks)

			// Back up: a check finds it, and reads reach it again.
			require.NoError(t, rs.Standbys[0].Start())
			waitStates(t, db, database.ReplicaHealthy, database.ReplicaHealthy)
			start := time.Now()
			for db.Replicas()[0].Reads <= skipped {
				_, standby := serverOf(t, ctx, db.ReadClient(ctx))
				require.True(t, standby)
				require.Less(t, time.Since(start), replicaWait, "no read reached the standby after it came back")
			}
		})
	}

	t.Run("foreign", func(t *testing.T) {
		other := dbtest.StartReplicas(t, 1)
		ctx := viewer.SystemContext(t.Context())
		for _, target := range []dbtest.Target{dbtest.PGX, dbtest.PQ} {
			cfg := rs.Config(target)
			cfg.ReplicaURLs = []string{rs.Standbys[0].URL(), other.Standbys[0].URL()}
			cfg.ReplicaCheckInterval = 50 * time.Millisecond
			db, err := database.Open(ctx, cfg)
			require.NoError(t, err)
			defer db.Close()
			waitStates(t, db, database.ReplicaHealthy, database.ReplicaForeign)
			for range 10 {
				port, _ := serverOf(t, ctx, db.ReadClient(ctx))
				require.Equal(t, rs.Standbys[0].Port(), port, "no read goes to another cluster's standby")
			}
		}
	})

	t.Run("promoted", func(t *testing.T) {
		ctx := viewer.SystemContext(t.Context())
		dbs := []*database.DB{openReplicated(t, rs, dbtest.PGX, 5*time.Second), openReplicated(t, rs, dbtest.PQ, 5*time.Second)}
		for _, db := range dbs {
			waitStates(t, db, database.ReplicaHealthy, database.ReplicaHealthy)
		}
		require.NoError(t, rs.Standbys[1].Promote(ctx))
		for _, db := range dbs {
			waitStates(t, db, database.ReplicaHealthy, database.ReplicaPromoted)
			for range 10 {
				port, standby := serverOf(t, ctx, db.ReadClient(ctx))
				require.True(t, standby, "no read goes to the promoted standby")
				require.Equal(t, rs.Standbys[0].Port(), port)
			}
		}
	})
}
