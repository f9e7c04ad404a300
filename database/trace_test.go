package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/viewer"
)

// tracedDB opens a database of the test's own with an SDK tracer provider
// that exports every span, as it ends, to the returned in-memory exporter.
func tracedDB(t *testing.T, target dbtest.Target, opts ...dbtest.Option) (*database.DB, *tracetest.InMemoryExporter, trace.Tracer) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	db := dbtest.Open(t, target, append(opts, dbtest.WithTracing(t, exp))...)
	return db, exp, db.TracerProvider().Tracer("test")
}

// childrenOf returns the spans whose parent is parent, in the order they ended.
func childrenOf(spans tracetest.SpanStubs, parent trace.SpanContext) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Parent.SpanID() == parent.SpanID() && s.Parent.TraceID() == parent.TraceID() {
			out = append(out, s)
		}
	}
	return out
}

// spanNamed returns the span called name; it fails the test without one.
func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q among %v", name, spanNames(spans))
	return tracetest.SpanStub{}
}

func spanNames(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}

// events returns the attributes of span's events called name, in order.
func events(span tracetest.SpanStub, name string) []map[string]string {
	var out []map[string]string
	for _, e := range span.Events {
		if e.Name == name {
			out = append(out, attrs(e.Attributes))
		}
	}
	return out
}

// attrs returns the attributes as a map of their values' strings.
func attrs(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// TestTraceStatements: each statement is a client span under the caller's,
// with the database conventions' attributes and the statement's text without
// its arguments, and the caller's span gets the pool wait.
func TestTraceStatements(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db, exp, tracer := tracedDB(t, target)
		require.True(t, db.Tracing())
		ctx, root := tracer.Start(viewer.SystemContext(t.Context()), "test")
		email := "secret-" + uuid.NewString() + "@example.com"
		_, err := db.Client().User.Create().SetEmail(email).SetDisplayName("Hidden Name").Save(ctx)
		require.NoError(t, err)
		// ent's own transactions, as a stranger to chatdb's WithTx opens them.
		tx, err := db.Client().Tx(ctx)
		require.NoError(t, err)
		_, err = tx.User.Query().Count(ctx)
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
		root.End()

		spans := exp.GetSpans()
		children := childrenOf(spans, root.SpanContext())
		insert := spanNamed(t, children, "INSERT")
		spanNamed(t, children, "BEGIN")
		spanNamed(t, children, "COMMIT")
		assert.Equal(t, trace.SpanKindClient, insert.SpanKind)
		a := attrs(insert.Attributes)
		assert.Equal(t, "INSERT", a["db.operation.name"])
		assert.Regexp(t, "^INSERT INTO .users. ", a["db.query.text"])
		if target.Postgres() {
			assert.Equal(t, "postgresql", a["db.system.name"])
			assert.Equal(t, "postgresql", a["db.system"])
			assert.Equal(t, "127.0.0.1", a["server.address"])
			assert.Equal(t, "5432", a["server.port"])
			assert.True(t, strings.HasPrefix(a["db.namespace"], "chatdb_test_"), a["db.namespace"])
		} else {
			assert.Equal(t, "sqlite", a["db.system.name"])
			assert.NotContains(t, a, "server.address")
		}
		waits := events(spanNamed(t, spans, "test"), database.EventPoolWait)
		require.NotEmpty(t, waits, "the caller's span has a pool-wait event")
		for _, w := range waits {
			assert.Contains(t, w, "chatdb.pool.wait")
		}
		dbtest.RequireSpansClean(t, spans, email, "Hidden Name")
	})
}

// TestTraceFailedStatement: a statement the server refuses is a span with
// status Error, the SQLSTATE (or SQLite code) as db.response.status_code and
// error.type, and an exception event without the error's text, which quotes
// the argument on PostgreSQL.
func TestTraceFailedStatement(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db, exp, tracer := tracedDB(t, target)
		ctx, root := tracer.Start(viewer.SystemContext(t.Context()), "test")
		secret := "secret-" + uuid.NewString()
		var n int
		var err error
		if target.Postgres() {
			// invalid input syntax for type integer: "secret-..."
			err = db.SQL().QueryRowContext(ctx, `SELECT $1::int`, secret).Scan(&n)
		} else {
			err = db.SQL().QueryRowContext(ctx, `SELECT no_such_column FROM users WHERE email = $1`, secret).Scan(&n)
		}
		require.Error(t, err)
		if target.Postgres() {
			require.Contains(t, err.Error(), secret, "the server quotes the argument in its message, which is why spans must not carry it")
		}
		// A unique violation, through ent.
		email := "dup-" + uuid.NewString() + "@example.com"
		_, err = db.Client().User.Create().SetEmail(email).SetDisplayName("A").Save(ctx)
		require.NoError(t, err)
		_, err = db.Client().User.Create().SetEmail(email).SetDisplayName("B").Save(ctx)
		require.ErrorIs(t, database.MapError(err), database.ErrConflict)
		root.End()

		spans := exp.GetSpans()
		var failed tracetest.SpanStubs
		for _, s := range childrenOf(spans, root.SpanContext()) {
			if s.Status.Code == codes.Error {
				failed = append(failed, s)
			}
		}
		require.Len(t, failed, 2, "spans: %v", spanNames(spans))
		wantCodes := []string{"22P02", "23505"}
		if !target.Postgres() {
			wantCodes = []string{"1", "2067"} // SQLITE_ERROR, SQLITE_CONSTRAINT_UNIQUE
		}
		for i, s := range failed {
			a := attrs(s.Attributes)
			assert.Equal(t, wantCodes[i], a["db.response.status_code"], s.Name)
			assert.Equal(t, wantCodes[i], a["error.type"], s.Name)
			excs := events(s, "exception")
			require.Len(t, excs, 1, "exception event on %s", s.Name)
			exc := excs[0]
			assert.Contains(t, exc["exception.message"], wantCodes[i])
			assert.NotEmpty(t, exc["exception.type"])
		}
		dbtest.RequireSpansClean(t, spans, secret, email)
	})
}

// TestTraceTxRetry: a transaction that fails with a serialization failure and
// runs again shows both attempts' BEGIN, the rollback, the commit, and a retry
// event on the caller's span.
func TestTraceTxRetry(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db, exp, tracer := tracedDB(t, target)
		ctx, root := tracer.Start(viewer.SystemContext(t.Context()), "test")
		var attempts atomic.Int32
		err := db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET display_name = display_name WHERE id IS NULL`); err != nil {
				return err
			}
			if attempts.Add(1) > 1 {
				return nil
			}
			if target.Postgres() {
				_, err := tx.ExecContext(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$`)
				return err
			}
			// SQLite serializes writers and never fails this way: the
			// function reports it, as it would a conflict found in Go.
			return fmt.Errorf("found a conflict: %w", database.ErrSerialization)
		}, database.WithRetry(3))
		require.NoError(t, err)
		root.End()

		spans := exp.GetSpans()
		children := childrenOf(spans, root.SpanContext())
		var begins, commits, rollbacks int
		for _, s := range children {
			switch s.Name {
			case "BEGIN":
				begins++
			case "COMMIT":
				commits++
			case "ROLLBACK":
				rollbacks++
			}
		}
		assert.Equal(t, 2, begins, "spans: %v", spanNames(children))
		assert.Equal(t, 1, commits)
		assert.Equal(t, 1, rollbacks)
		if target.Postgres() {
			do := spanNamed(t, children, "DO")
			assert.Equal(t, codes.Error, do.Status.Code)
			assert.Equal(t, "40001", attrs(do.Attributes)["db.response.status_code"])
		}
		retries := events(spanNamed(t, spans, "test"), database.EventTxRetry)
		require.Len(t, retries, 1, "a retry event")
		retry := retries[0]
		assert.Equal(t, "2", retry["chatdb.tx.attempt"])
		assert.Equal(t, "serialization", retry["error.type"])
	})
}

// TestTracePoolWait: a statement that waits for the pool's one connection
// says how long on the caller's span.
func TestTracePoolWait(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db, exp, tracer := tracedDB(t, target, dbtest.WithConfig(func(cfg *database.Config) {
			cfg.MaxOpenConns, cfg.MaxIdleConns = 1, 1
		}))
		conn, err := db.SQL().Conn(t.Context())
		require.NoError(t, err)
		// The connection is given back only once the statement below waits
		// for it (the pool counts a wait when it starts), and hold after
		// that: the statement waits at least hold, however slow the machine.
		const hold = 100 * time.Millisecond
		waits := db.Stats().WaitCount
		go func() {
			defer conn.Close()
			for deadline := time.Now().Add(10 * time.Second); db.Stats().WaitCount == waits && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(hold)
		}()
		ctx, root := tracer.Start(t.Context(), "test")
		rows, err := db.Client().QueryContext(ctx, `SELECT 1`)
		require.NoError(t, err)
		require.NoError(t, rows.Close())
		root.End()
		got := events(spanNamed(t, exp.GetSpans(), "test"), database.EventPoolWait)
		require.Len(t, got, 1)
		waited, err := strconv.ParseFloat(got[0]["chatdb.pool.wait"], 64)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Duration(waited*float64(time.Second)), hold)
	})
}

// TestTraceCopy: CopyFrom, which runs on the driver's connection under the
// instrumentation, has a COPY span of its own on PostgreSQL, under the
// caller's span, and WithConnTx notes its pool wait.
func TestTraceCopy(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		db, exp, tracer := tracedDB(t, target)
		ctx, root := tracer.Start(viewer.SystemContext(t.Context()), "test")
		err := db.WithConnTx(ctx, func(ctx context.Context, conn *sql.Conn, _ *ent.Client) error {
			if _, err := conn.ExecContext(ctx, `CREATE TEMP TABLE copied (v text) ON COMMIT DROP`); err != nil {
				return err
			}
			_, err := db.CopyFrom(ctx, conn, "copied", []string{"v"}, [][]any{{"secret-copy-value"}, {"b"}})
			return err
		})
		require.NoError(t, err)
		root.End()
		spans := exp.GetSpans()
		cp := spanNamed(t, childrenOf(spans, root.SpanContext()), "COPY")
		a := attrs(cp.Attributes)
		assert.Equal(t, "COPY", a["db.operation.name"])
		assert.Equal(t, "copied", a["db.collection.name"])
		assert.Equal(t, "postgresql", a["db.system.name"])
		assert.NotEmpty(t, events(spanNamed(t, spans, "test"), database.EventPoolWait))
		dbtest.RequireSpansClean(t, spans, "secret-copy-value")
	})
}

// TestTracingOff: a noop provider turns the instrumentation off; no provider
// means the global one, which makes no spans until the application sets it,
// even after Open.
func TestTracingOff(t *testing.T) {
	// Not parallel: it sets the global provider, and puts it back.
	target := dbtest.SQLite
	off := dbtest.Open(t, target, dbtest.WithConfig(func(cfg *database.Config) { cfg.TracerProvider = noop.NewTracerProvider() }))
	assert.False(t, off.Tracing())

	global := dbtest.Open(t, target)
	require.False(t, global.Tracing(), "no provider set yet")
	typedNil := dbtest.Open(t, target, dbtest.WithConfig(func(cfg *database.Config) {
		cfg.TracerProvider = (*sdktrace.TracerProvider)(nil)
	}))
	require.False(t, typedNil.Tracing(), "a typed nil provider is none: the global one")
	_, err := typedNil.SQL().ExecContext(t.Context(), `SELECT 3`)
	require.NoError(t, err)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(prev)
	require.True(t, global.Tracing(), "the global provider, set after Open")
	assert.False(t, off.Tracing())

	ctx, root := tp.Tracer("test").Start(t.Context(), "test")
	require.NoError(t, off.SQL().PingContext(ctx))
	_, err = off.SQL().ExecContext(ctx, `SELECT 1`)
	require.NoError(t, err)
	_, err = global.SQL().ExecContext(ctx, `SELECT 2`)
	require.NoError(t, err)
	root.End()
	var selects int
	for _, s := range exp.GetSpans() {
		if s.Name == "SELECT" {
			selects++
			assert.Equal(t, "SELECT 2", attrs(s.Attributes)["db.query.text"])
		}
	}
	assert.Equal(t, 1, selects, "only the pool without a provider of its own traces, through the global one")

	// A pool opened after the global provider is set uses it.
	later := dbtest.Open(t, target)
	assert.True(t, later.Tracing())
}

func TestOperation(t *testing.T) {
	for query, want := range map[string]string{
		"SELECT 1":              "SELECT",
		"  select * from users": "SELECT",
		"-- a comment\nINSERT INTO t VALUES ($1)": "INSERT",
		"/* c */ update t set a = 1":              "UPDATE",
		"WITH c AS (SELECT id FROM chats WHERE title = ')(' ) INSERT INTO messages SELECT * FROM c":    "INSERT",
		`WITH "x" AS (DELETE FROM t RETURNING *), y AS (SELECT 1) SELECT * FROM "x"`:                   "DELETE",
		"WITH c AS (SELECT id FROM chats FOR UPDATE), ins AS (INSERT INTO m SELECT 1) SELECT * FROM c": "INSERT",
		"WITH c AS (SELECT id FROM chats FOR NO KEY UPDATE) SELECT 'UPDATE' FROM c":                    "SELECT",
		"WITH i AS (INSERT INTO t VALUES (1) ON CONFLICT DO UPDATE SET a = 1) SELECT 1":                "INSERT",
		"WITH c AS (SELECT 1 FOR UPDATE) SELECT * FROM c":                                              "SELECT",
		"with recursive r(n) as (values (1) union all select n+1 from r) select n from r":              "SELECT",
		"BEGIN":                           "BEGIN",
		"pragma foreign_keys":             "PRAGMA",
		"vacuum":                          "VACUUM",
		"frobnicate now":                  "FROBNICATE",
		"":                                "",
		"   -- only a comment":            "",
		"WITH unterminated AS (SELECT ')": "WITH",
	} {
		assert.Equal(t, want, database.Operation(query), query)
	}
}

func TestErrorClass(t *testing.T) {
	assert.Equal(t, "ok", database.ErrorClass(nil))
	assert.Equal(t, "not_found", database.ErrorClass(fmt.Errorf("x: %w", database.ErrNotFound)))
	assert.Equal(t, "canceled", database.ErrorClass(context.Canceled))
	assert.Equal(t, "deadline_exceeded", database.ErrorClass(fmt.Errorf("x: %w", context.DeadlineExceeded)))
	assert.Equal(t, "serialization", database.ErrorClass(&database.Error{Kind: database.ErrSerialization, Code: "40001"}))
	assert.Equal(t, "error", database.ErrorClass(errors.New("something secret")))
}
