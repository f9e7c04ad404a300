package store_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/store"
)

// tracedEnv is newEnv with an SDK tracer provider exporting each span, as it
// ends, to the returned in-memory exporter.
func tracedEnv(t *testing.T, target dbtest.Target, opts ...store.Option) (*env, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	db := dbtest.Open(t, target, frugal, dbtest.WithTracing(t, exp))
	return &env{t: t, target: target, db: db, s: store.New(db, opts...)}, exp
}

func spanAttrs(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// opSpan returns the one span called name; it fails without exactly one.
func opSpan(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans called %s", name)
	return found[0]
}

func childSpans(spans tracetest.SpanStubs, parent trace.SpanContext) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Parent.SpanID() == parent.SpanID() {
			out = append(out, s)
		}
	}
	return out
}

// TestTraceAppend: an append is a chatdb.store.AppendMessage span with the
// chat and the result, whose children are its statements, each with the
// database conventions' attributes; no span carries the message, the users'
// names or e-mail addresses.
func TestTraceAppend(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		for _, b := range backends {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				e, exp := tracedEnv(t, target, b.opts...)
				alice, bob := e.user("TraceAlice"), e.user("TraceBob")
				c := e.direct(alice, bob)
				exp.Reset()

				body := "secret body " + uuid.NewString()
				m, err := e.s.AppendMessage(e.as(alice), store.NewMessage{ChatID: c.ID, Content: body})
				require.NoError(t, err)

				spans := exp.GetSpans()
				op := opSpan(t, spans, "chatdb.store.AppendMessage")
				assert.False(t, op.Parent.IsValid(), "the operation is the root here")
				a := spanAttrs(op.Attributes)
				assert.Equal(t, c.ID.String(), a["chatdb.chat.id"])
				assert.Equal(t, "ok", a["chatdb.result"])
				assert.Equal(t, codes.Unset, op.Status.Code)

				stmts := childSpans(spans, op.SpanContext)
				require.NotEmpty(t, stmts)
				var inserts int
				for _, s := range stmts {
					sa := spanAttrs(s.Attributes)
					assert.Equal(t, trace.SpanKindClient, s.SpanKind, s.Name)
					assert.NotEmpty(t, sa["db.system.name"], s.Name)
					assert.NotEmpty(t, sa["db.operation.name"], s.Name)
					if sa["db.operation.name"] == "INSERT" {
						inserts++
						assert.Contains(t, sa["db.query.text"], "messages")
					}
				}
				assert.Equal(t, 1, inserts, "one INSERT among %d statements", len(stmts))
				if target.Postgres() && b.name == "statements" {
					assert.Len(t, stmts, 1, "the append is one statement on PostgreSQL")
				}
				var waits int
				for _, ev := range op.Events {
					if ev.Name == database.EventPoolWait {
						waits++
					}
				}
				assert.Positive(t, waits)

				// The rest of a conversation, and the refusals, through the same lens.
				exp.Reset()
				_, err = e.s.History(e.as(bob), c.ID, store.HistoryQuery{})
				require.NoError(t, err)
				require.NoError(t, e.s.MarkRead(e.as(bob), c.ID, m.ID))
				_, err = e.s.Inbox(e.as(bob), store.InboxQuery{})
				require.NoError(t, err)
				_, err = e.s.EditMessage(e.as(alice), m.ID, body+" edited")
				require.NoError(t, err)
				_, err = e.s.GetUser(e.as(bob), alice.ID)
				require.NoError(t, err)
				eve := e.user("TraceEve")
				_, errEve := e.s.AppendMessage(e.as(eve), store.NewMessage{ChatID: c.ID, Content: body})
				require.ErrorIs(t, errEve, database.ErrNotFound, "not a member")
				_, _, errSys := e.s.CreateDirectChat(e.sys(), alice.ID)
				require.ErrorIs(t, errSys, store.ErrForbidden)
				_, err = e.s.AppendMessage(e.as(alice), store.NewMessage{ChatID: c.ID, Content: ""})
				require.ErrorIs(t, err, database.ErrInvalid)

				spans = exp.GetSpans()
				var results []string
				for _, s := range spans {
					if s.Name == "chatdb.store.AppendMessage" {
						results = append(results, spanAttrs(s.Attributes)["chatdb.result"])
						assert.Equal(t, codes.Unset, s.Status.Code, "a refusal is a result, not a fault")
					}
				}
				assert.Equal(t, []string{"not_found", "invalid"}, results)
				assert.Equal(t, "forbidden", spanAttrs(opSpan(t, spans, "chatdb.store.CreateDirectChat").Attributes)["chatdb.result"])
				for _, name := range []string{"History", "MarkRead", "Inbox", "EditMessage", "GetUser", "CreateUser"} {
					s := opSpan(t, spans, "chatdb.store."+name)
					assert.Equal(t, "ok", spanAttrs(s.Attributes)["chatdb.result"], name)
				}
				dbtest.RequireSpansClean(t, spans, body, "TraceAlice", "TraceBob", "TraceEve", "@example.com")
			})
		}
	})
}

// TestTraceImport: an import's COPY (PostgreSQL) or INSERTs (SQLite) are
// children of its chatdb.store.ImportMessages span.
func TestTraceImport(t *testing.T) {
	t.Parallel()
	dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		e, exp := tracedEnv(t, target)
		alice, bob := e.user("ImpAlice"), e.user("ImpBob")
		c := e.direct(alice, bob)
		exp.Reset()
		body := "imported secret " + uuid.NewString()
		n, err := e.s.ImportMessages(e.sys(), c.ID, []store.NewMessage{
			{ID: uuid.Must(uuid.NewV7()), SenderID: alice.ID, Content: body},
			{ID: uuid.Must(uuid.NewV7()), SenderID: bob.ID, Content: body},
		})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		spans := exp.GetSpans()
		op := opSpan(t, spans, "chatdb.store.ImportMessages")
		want := "INSERT"
		if target.Postgres() {
			want = "COPY"
		}
		var found bool
		for _, s := range childSpans(spans, op.SpanContext) {
			if spanAttrs(s.Attributes)["db.operation.name"] == want && s.Name == want {
				found = true
			}
		}
		assert.True(t, found, "a %s span under the import", want)
		dbtest.RequireSpansClean(t, spans, body, "ImpAlice", "ImpBob")
	})
}
