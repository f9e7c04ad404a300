package database_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
)

// clusterDB creates database name on the throwaway cluster c and returns its
// URL.
func clusterDB(t *testing.T, c *dbtest.Cluster, admin *database.DB, name string) string {
	t.Helper()
	_, err := admin.SQL().ExecContext(t.Context(), `CREATE DATABASE "`+name+`"`)
	require.NoError(t, err)
	return strings.Replace(c.URL(), "/postgres?", "/"+name+"?", 1)
}

// --- 2. server restarted under load ---

// A throwaway cluster is restarted twice, fast (sessions are ended, open
// transactions rolled back), while goroutines run short queries and
// transactions through a pool of each driver. Every call returns within its
// context's bound; each that fails says ErrBadConn, ErrTimeout or
// ErrCommitUnknown; calls made once the server is back succeed; open
// connections never exceed the pool's limit; and what is stored is exactly
// what was acknowledged (plus, for ErrCommitUnknown, what may be there).
func TestFaultRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a PostgreSQL cluster")
	}
	t.Parallel()
	c := dbtest.StartCluster(t)
	admin := openAdmin(t, c.URL())

	const maxOpen, workers = 6, 6
	type pool struct {
		driver string
		db     *database.DB
		// results, under mu
		mu        sync.Mutex
		outcomes  map[int64]string // "stored", "absent", "unknown"
		failures  []string
		byKind    map[string]int
		lastError time.Time
		maxOpen   atomic.Int64
	}
	var pools []*pool
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		url := clusterDB(t, c, admin, "fault_restart_"+drv)
		db, err := database.Open(t.Context(), database.Config{URL: url, Driver: drv, MaxOpenConns: maxOpen, OpenRetryWindow: -1})
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		createFaultLog(t, db)
		pools = append(pools, &pool{driver: drv, db: db, outcomes: map[int64]string{}, byKind: map[string]int{}})
	}

	var (
		stop     atomic.Bool
		restarts []time.Time // when each restart finished
		restMu   sync.Mutex
		nextID   atomic.Int64
		wg       sync.WaitGroup
	)
	const bound = 5 * time.Second
	for _, p := range pools {
		wg.Go(func() { // the sampler
			for !stop.Load() {
				if n := int64(p.db.Stats().OpenConnections); n > p.maxOpen.Load() {
					p.maxOpen.Store(n)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
		for w := range workers {
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					ctx, cancel := context.WithTimeout(t.Context(), bound)
					start := time.Now()
					var err error
					id := int64(-1)
					if (i+w)%2 == 0 {
						id = nextID.Add(1)
						err = p.db.WithTx(ctx, func(tx *ent.Tx) error { return insertLog(ctx, tx, id) })
					} else {
						var one int
						err = database.MapError(p.db.SQL().QueryRowContext(ctx, "SELECT 1").Scan(&one))
					}
					elapsed := time.Since(start)
					cancel()
					p.mu.Lock()
					if elapsed > bound+2*time.Second {
						p.failures = append(p.failures, fmt.Sprintf("a call took %v", elapsed))
					}
					kind := ""
					switch {
					case err == nil:
					case errors.Is(err, database.ErrCommitUnknown):
						kind = "commit unknown"
					case errors.Is(err, database.ErrBadConn):
						kind = "connection lost"
					case errors.Is(err, database.ErrTimeout):
						kind = "timeout"
					default:
						p.failures = append(p.failures, fmt.Sprintf("unclassified error: %v", err))
						kind = "unclassified"
					}
					if kind != "" {
						p.byKind[kind]++
						p.lastError = start
					}
					if id >= 0 {
						switch {
						case err == nil:
							p.outcomes[id] = "stored"
						case kind == "commit unknown":
							p.outcomes[id] = "unknown"
						default:
							p.outcomes[id] = "absent"
						}
					}
					p.mu.Unlock()
					if err != nil {
						time.Sleep(5 * time.Millisecond) // the server is down: do not spin
					}
					time.Sleep(time.Millisecond) // leave the machine's other work some room
				}
			})
		}
	}

	time.Sleep(time.Second)
	for range 2 {
		require.NoError(t, c.Restart())
		restMu.Lock()
		restarts = append(restarts, time.Now())
		restMu.Unlock()
		time.Sleep(3 * time.Second)
	}
	stop.Store(true)
	wg.Wait()

	back := restarts[len(restarts)-1]
	for _, p := range pools {
		t.Logf("%s: %d writes, errors by kind %v, at most %d connections open", p.driver, len(p.outcomes), p.byKind, p.maxOpen.Load())
		require.Empty(t, p.failures, p.driver)
		require.NotEmpty(t, p.byKind, "%s: the restarts went unnoticed", p.driver)
		require.LessOrEqual(t, p.maxOpen.Load(), int64(maxOpen), "%s: open connections exceeded the limit", p.driver)
		require.True(t, p.lastError.Before(back.Add(2*time.Second)),
			"%s: a call made %v after the server was back failed", p.driver, p.lastError.Sub(back))

		ids := logIDs(t, p.db)
		for id, o := range p.outcomes {
			switch o {
			case "stored":
				require.True(t, ids[id], "%s: acknowledged write %d is missing", p.driver, id)
			case "absent":
				require.False(t, ids[id], "%s: failed write %d is stored", p.driver, id)
			}
		}
		for id := range ids {
			if _, ok := p.outcomes[id]; !ok {
				t.Fatalf("%s: stored %d was never written", p.driver, id)
			}
		}
		requirePoolHealthy(t, p.db, admin)
		require.LessOrEqual(t, p.db.Stats().OpenConnections, maxOpen)
	}
}

// --- 5. database down at start-up ---

// The server is down when Open starts and comes up a moment later: Open keeps
// retrying within OpenRetryWindow, logging each retry (with the password
// redacted), and succeeds. With the server never coming up, Open gives up with
// a ConnectError (classified ErrBadConn) once the window has passed.
func TestFaultOpenWhileServerStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and starts a PostgreSQL cluster")
	}
	t.Parallel()
	c := dbtest.StartCluster(t)
	const password = "pw-fault-5-secret"
	url := strings.Replace(c.URL(), "postgres@", "postgres:"+password+"@", 1) // trust auth ignores it

	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		t.Run(drv+"/comes up", func(t *testing.T) {
			require.NoError(t, c.Stop("fast"))
			const downFor = 1500 * time.Millisecond
			started := make(chan error, 1)
			time.AfterFunc(downFor, func() { started <- c.Start() })
			var logs bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
			start := time.Now()
			db, err := database.Open(t.Context(), database.Config{URL: url, Driver: drv, OpenRetryWindow: time.Minute, Logger: logger})
			elapsed := time.Since(start)
			require.NoError(t, <-started)
			require.NoError(t, err)
			defer db.Close()
			require.GreaterOrEqual(t, elapsed, downFor-100*time.Millisecond, "Open waited for the server")
			require.Less(t, elapsed, 30*time.Second)
			var one int
			require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT 1").Scan(&one))
			mu.Lock()
			out := logs.String()
			mu.Unlock()
			require.Contains(t, out, "not reachable yet, retrying")
			require.Contains(t, out, "xxxxx", "the URL is logged redacted")
			require.NotContains(t, out, password)
		})
	}

	require.NoError(t, c.Stop("fast"))
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		t.Run(drv+"/never comes up", func(t *testing.T) {
			const window = 2 * time.Second
			start := time.Now()
			db, err := database.Open(t.Context(), database.Config{URL: url, Driver: drv, OpenRetryWindow: window, ConnectTimeout: time.Second})
			elapsed := time.Since(start)
			require.Nil(t, db)
			var ce *database.ConnectError
			require.ErrorAs(t, err, &ce)
			require.ErrorIs(t, err, database.ErrBadConn)
			require.GreaterOrEqual(t, ce.Attempts, 2)
			require.GreaterOrEqual(t, elapsed, window/2, "Open gave up early")
			require.Less(t, elapsed, window+5*time.Second, "Open overran its window")
			require.NotContains(t, err.Error(), password)
		})
	}
}

// lockedWriter serialises writes to w, for a log buffer read by the test.
type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
