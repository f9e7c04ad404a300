package database_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"
	"modernc.org/sqlite"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/viewer"
)

// --- helpers shared by the package's tests ---

// newUser creates a user with a unique email through the ent client.
// eachDB runs fn, in parallel, on a fresh migrated database for every dbtest
// target, with a context acting as the system viewer; the test itself runs in
// parallel with the package's others.
func eachDB(t *testing.T, fn func(t *testing.T, target dbtest.Target, ctx context.Context, db *database.DB)) {
	t.Helper()
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		fn(t, target, viewer.SystemContext(t.Context()), dbtest.Open(t, target))
	})
}

func newUser(t *testing.T, client *ent.Client) *ent.User {
	t.Helper()
	u, err := client.User.Create().
		SetEmail("u-" + uuid.NewString() + "@example.com").
		SetDisplayName("Test User").
		Save(viewer.SystemContext(t.Context()))
	require.NoError(t, err)
	return u
}

// newChat creates a group chat created by u.
func newChat(t *testing.T, client *ent.Client, u *ent.User) *ent.Chat {
	t.Helper()
	c, err := client.Chat.Create().
		SetKind(chat.KindGroup).
		SetTitle("test chat").
		SetCreatedBy(u.ID).
		Save(viewer.SystemContext(t.Context()))
	require.NoError(t, err)
	return c
}

// countRows counts the rows of table, bypassing ent.
func countRows(t *testing.T, db *database.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// requireDriverError checks that the driver's own error type is reachable from
// err with errors.As, and returns its SQLSTATE (PostgreSQL) or result code (SQLite).
func requireDriverError(t *testing.T, target dbtest.Target, err error) string {
	t.Helper()
	switch target {
	case dbtest.PGX:
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		return pgErr.Code
	case dbtest.PQ:
		var pqErr *pq.Error
		require.ErrorAs(t, err, &pqErr)
		return string(pqErr.Code)
	case dbtest.SQLite:
		var sqErr *sqlite.Error
		require.ErrorAs(t, err, &sqErr)
		return strconv.Itoa(sqErr.Code())
	}
	t.Fatalf("unknown target %q", target)
	return ""
}

// --- lifecycle ---

func TestOpenClose(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db, err := database.Open(ctx, dbtest.Config(t, target))
		require.NoError(t, err)

		require.Equal(t, target.Dialect(), db.Dialect())
		wantDriver := map[dbtest.Target]string{
			dbtest.SQLite: "sqlite",
			dbtest.PGX:    database.DriverPgx,
			dbtest.PQ:     database.DriverPQ,
		}[target]
		require.Equal(t, wantDriver, db.Driver())

		// The ent client and the pool are the same database.
		u := newUser(t, db.Client())
		var email string
		require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT email FROM users WHERE id = $1", u.ID).Scan(&email))
		require.Equal(t, u.Email, email)
		require.NoError(t, db.SQL().PingContext(ctx))

		first := db.Close()
		require.NoError(t, first)
		require.NotPanics(t, func() {
			require.Equal(t, first, db.Close(), "a second Close returns the first result")
		})

		// Both handles are closed with the DB.
		_, err = db.Client().User.Query().Count(ctx)
		require.Error(t, err)
		require.Error(t, db.SQL().PingContext(ctx))
	})
}

func TestURLIsRedacted(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		if target.Postgres() {
			require.True(t, strings.HasPrefix(db.URL(), "postgres://"), db.URL())
		} else {
			require.True(t, strings.HasPrefix(db.URL(), "sqlite://"), db.URL())
		}
	})
}

func TestPoolDefaults(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target)
		require.Equal(t, database.DefaultMaxOpenConns, db.Stats().MaxOpenConnections)
		require.Equal(t, 30, db.Stats().MaxOpenConnections)

		// MaxIdleConns defaults to 20: of 21 connections released at once, one
		// is closed.
		holdAndRelease(t, db, database.DefaultMaxIdleConns+1)
		st := db.Stats()
		require.Equal(t, database.DefaultMaxIdleConns, st.Idle)
		require.EqualValues(t, 1, st.MaxIdleClosed)
	})
}

func TestPoolConfigured(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target, dbtest.WithConfig(func(c *database.Config) {
			c.MaxOpenConns = 7
			c.MaxIdleConns = 2
		}))
		require.Equal(t, 7, db.Stats().MaxOpenConnections)

		holdAndRelease(t, db, 5)
		st := db.Stats()
		require.Equal(t, 2, st.Idle, "only MaxIdleConns connections stay open")
		require.EqualValues(t, 3, st.MaxIdleClosed)
		require.Equal(t, 2, st.OpenConnections)
	})
}

func TestPoolUnlimited(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db := dbtest.Open(t, target, dbtest.WithConfig(func(c *database.Config) {
			c.MaxOpenConns = -1
			c.MaxIdleConns = -1
		}))
		require.Equal(t, 0, db.Stats().MaxOpenConnections, "negative means no limit")
		holdAndRelease(t, db, 2)
		require.Equal(t, 0, db.Stats().Idle, "negative MaxIdleConns keeps none")
	})
}

func TestSQLiteMemory(t *testing.T) {
	t.Parallel()
	ctx := viewer.SystemContext(t.Context())
	db, err := database.Open(ctx, database.Config{URL: "sqlite://:memory:"})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.Equal(t, database.SQLite, db.Dialect())
	// One connection, kept forever: every connection to :memory: is a database
	// of its own.
	require.Equal(t, 1, db.Stats().MaxOpenConnections)
	_, err = db.SQL().ExecContext(ctx, "CREATE TABLE t (x INTEGER)")
	require.NoError(t, err)
	_, err = db.SQL().ExecContext(ctx, "INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 1, n)
}

// holdAndRelease takes n connections from the pool at once, so that n are open,
// and gives them all back.
func holdAndRelease(t *testing.T, db *database.DB, n int) {
	t.Helper()
	ctx := viewer.SystemContext(t.Context())
	var conns []interface{ Close() error }
	for range n {
		c, err := db.SQL().Conn(ctx)
		require.NoError(t, err)
		require.NoError(t, c.PingContext(ctx))
		conns = append(conns, c)
	}
	require.Equal(t, n, db.Stats().InUse)
	for _, c := range conns {
		require.NoError(t, c.Close())
	}
}

// --- connecting ---

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	const password = "s3cretpw"
	urls := map[string]string{
		"userinfo": "postgres://user:" + password + "@127.0.0.1:1/x?sslmode=disable",
		"query":    "postgres://user@127.0.0.1:1/x?sslmode=disable&password=" + password,
	}
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		for name, raw := range urls {
			t.Run(drv+"/"+name, func(t *testing.T) {
				t.Parallel()
				const window = 300 * time.Millisecond
				start := time.Now()
				db, err := database.Open(t.Context(), database.Config{
					URL:             raw,
					Driver:          drv,
					OpenRetryWindow: window,
					ConnectTimeout:  time.Second,
				})
				elapsed := time.Since(start)
				require.Nil(t, db)
				var ce *database.ConnectError
				require.ErrorAs(t, err, &ce)
				require.Less(t, elapsed, window+2*time.Second, "Open keeps to its retry window")
				require.GreaterOrEqual(t, ce.Attempts, 2, "an unreachable server is retried")
				require.Equal(t, database.Redact(raw), ce.URL)
				require.Contains(t, err.Error(), database.Redact(raw))
				require.Contains(t, err.Error(), "127.0.0.1:1")
				require.NotContains(t, err.Error(), password)
				require.NotContains(t, ce.URL, password)
			})
		}
	}
}

func TestOpenSingleAttempt(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := database.Open(t.Context(), database.Config{
		URL:             "postgres://user:s3cretpw@127.0.0.1:1/x?sslmode=disable",
		OpenRetryWindow: -1,
	})
	var ce *database.ConnectError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 1, ce.Attempts)
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestOpenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(viewer.SystemContext(t.Context()), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := database.Open(ctx, database.Config{
		URL:             "postgres://user:s3cretpw@127.0.0.1:1/x?sslmode=disable",
		OpenRetryWindow: time.Minute,
	})
	var ce *database.ConnectError
	require.ErrorAs(t, err, &ce)
	require.Less(t, time.Since(start), 5*time.Second, "Open gives up when its context is done")
	require.NotContains(t, err.Error(), "s3cretpw")
}

// A server that answers with an error is not retried: waiting will not make an
// unknown database appear.
func TestOpenServerRefuses(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.Config(t, target)
		u := strings.Replace(cfg.URL, "/chatdb_test_", "/chatdb_missing_", 1)
		require.NotEqual(t, cfg.URL, u)
		start := time.Now()
		_, err := database.Open(t.Context(), database.Config{URL: u, Driver: cfg.Driver, OpenRetryWindow: time.Minute})
		var ce *database.ConnectError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, 1, ce.Attempts)
		require.Less(t, time.Since(start), 10*time.Second)
		require.Equal(t, "3D000", requireDriverError(t, target, err)) // invalid_catalog_name
	})
}

func TestOpenConfigErrors(t *testing.T) {
	t.Parallel()
	const password = "s3cret"
	cases := []struct {
		name string
		cfg  database.Config
	}{
		{"bad port", database.Config{URL: "postgres://u:" + password + "@host:badport/db"}},
		{"bad escape", database.Config{URL: "postgres://u:" + password + "%zz@host/db"}},
		{"no host", database.Config{URL: "postgres://u:" + password + "@/db"}},
		{"unknown scheme", database.Config{URL: "mysql://u:" + password + "@host/db"}},
		{"unknown driver", database.Config{URL: "postgres://u:" + password + "@127.0.0.1:1/db", Driver: "odbc"}},
		{"sqlite options", database.Config{URL: "sqlite://x.db?_pragma=" + password}},
		{"sqlite empty", database.Config{URL: "sqlite://"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.OpenRetryWindow = -1
			db, err := database.Open(t.Context(), tc.cfg)
			require.Nil(t, db)
			var ce *database.ConfigError
			require.ErrorAs(t, err, &ce, "%v", err)
			require.NotContains(t, err.Error(), password)
		})
	}
}

// --- dead connections ---

// A connection the server closed while it sat idle is replaced when next taken
// from the pool, without the caller seeing an error.
func TestIdleConnectionKilled(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target, dbtest.WithConfig(func(c *database.Config) {
			c.MaxOpenConns = 2
			c.HealthCheckAfter = 10 * time.Millisecond
		}))
		admin, err := database.Open(ctx, database.Config{URL: dbtest.AdminURL(t), MaxOpenConns: 1})
		require.NoError(t, err)
		t.Cleanup(func() { admin.Close() })

		// Open both connections of the pool.
		holdAndRelease(t, db, 2)
		var name string
		require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT current_database()").Scan(&name))
		require.Equal(t, 2, db.Stats().Idle)

		killed := map[int]bool{}
		rows, err := admin.SQL().QueryContext(ctx,
			"SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
		require.NoError(t, err)
		for rows.Next() {
			var pid int
			var ok bool
			require.NoError(t, rows.Scan(&pid, &ok))
			require.True(t, ok)
			killed[pid] = true
		}
		require.NoError(t, rows.Err())
		require.Len(t, killed, 2)
		require.Eventually(t, func() bool {
			var n int
			err := admin.SQL().QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name).Scan(&n)
			return err == nil && n == 0
		}, 10*time.Second, 10*time.Millisecond, "backends did not go away")
		time.Sleep(50 * time.Millisecond) // longer than HealthCheckAfter

		// Both pooled connections are dead; each call gets a live one.
		for range 4 {
			var pid int
			require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
			require.False(t, killed[pid], "a killed backend was reused")
			_, err := db.Client().User.Query().Count(ctx)
			require.NoError(t, err)
			time.Sleep(20 * time.Millisecond)
		}
		newUser(t, db.Client())

		// Concurrent callers on a pool full of dead connections see no error either.
		holdAndRelease(t, db, 2)
		rows, err = admin.SQL().QueryContext(ctx,
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
		require.NoError(t, err)
		require.NoError(t, rows.Close())
		require.Eventually(t, func() bool {
			var n int
			err := admin.SQL().QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name).Scan(&n)
			return err == nil && n == 0
		}, 10*time.Second, 10*time.Millisecond)
		time.Sleep(50 * time.Millisecond)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				if err := db.WithTx(ctx, func(tx *ent.Tx) error {
					_, err := tx.User.Query().Count(ctx)
					return err
				}); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})
}

// Message metadata is JSON in a jsonb column on PostgreSQL: it must be written
// and read back unchanged through every driver.
func TestMetadataRoundTrip(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		client := dbtest.Open(t, target).Client()
		u := newUser(t, client)
		c := newChat(t, client, u)
		md := schematype.MessageMetadata{
			Model:            "gpt-test",
			PromptTokens:     12,
			CompletionTokens: 34,
			Attachments:      []schematype.Attachment{{URL: "https://files.example.com/a.png", Name: "a.png", ContentType: "image/png", Size: 1024}},
			Extra:            map[string]any{"lang": "日本語", "score": 0.5, "tags": []any{"a", "b"}},
		}
		m, err := appendMessage(ctx, client, func(mc *ent.MessageCreate) {
			mc.SetChatID(c.ID).SetRole(message.RoleAssistant).SetContent("hello").SetMetadata(md)
		})
		require.NoError(t, err)
		got, err := client.Message.Get(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, md, got.Metadata)
	})
}
