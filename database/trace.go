package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	entdialect "entgo.io/ent/dialect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"modernc.org/sqlite"
)

// Tracing.
//
// The statements are traced by tracedConnector, a connector wrapper of
// chatdb's own, outermost over chatdb's driver wrappers (internal/pgdriver's
// connectors, sqlitegate.go's): each statement, BEGIN, COMMIT, ROLLBACK and
// new connection is a client span with the OpenTelemetry database
// conventions' attributes. It passes through what database/sql and chatdb
// need of the connections under it: IsValid (which keeps dead pgx connections
// out of the pool), ResetSession, CheckNamedValue, the connector's Close
// (which closes the sockets of connections still in use, for Close's
// deadline), and Raw, for CopyFrom.
//
// Why not github.com/XSAM/otelsql, the maintained instrumentation for
// database/sql, which chatdb used at first: it fits the wrappers (it passes
// the same interfaces through), but it records a duration metric on every
// call, building and sorting an attribute set each time, with no way to turn
// that off, and starts a span on every call even when no provider is set.
// With the default, a no-op global provider, that cost 17 more allocations
// per Mixed operation (one statement each; all but one or two otelsql's)
// and 4.3% of the Mixed benchmark's throughput (0.957× chatdb without it,
// median of 6 rounds; the target is 2%), and it moved GetUser,
// MarkRead and Mixed past their targets against pgx. Here, while no provider
// is set the wrapper costs an atomic load and a comparison per call, and the
// attributes are built only for spans that record. Its metrics are not
// missed: the pool's are exported through Prometheus (metrics.go).
//
// Not traced: statements run on a statement prepared with database/sql's
// Prepare (chatdb prepares none; they run untraced), and work done through
// a driver connection taken with sql.Conn.Raw, except CopyFrom's COPY, whose
// span CopyFrom starts.

// instrumentationName is the tracer name of package database's spans.
const instrumentationName = "github.com/chatdb/chatdb/database"

// Attribute keys of chatdb's own events. Durations are in seconds, as in the
// OpenTelemetry conventions.
const (
	// attrPoolWait is the time a statement or transaction waited for a pool
	// connection, dialling a new one included.
	attrPoolWait = attribute.Key("chatdb.pool.wait")
	// attrPoolNewConn says the connection was dialled for this wait.
	attrPoolNewConn = attribute.Key("chatdb.pool.new_connection")
	// attrTxAttempt is the attempt a transaction retry starts (2 for the first retry).
	attrTxAttempt = attribute.Key("chatdb.tx.attempt")
	// attrTxBackoff is the wait before that attempt.
	attrTxBackoff = attribute.Key("chatdb.tx.backoff")
	// attrDBSystem is db.system, the name of db.system.name before the
	// conventions renamed it (v1.30); both are set, for backends that read the
	// old one.
	attrDBSystem = attribute.Key("db.system")
)

// Event names.
const (
	// EventPoolWait is the event, on the span of the caller (a store operation),
	// that a statement or transaction got its pool connection, with how long
	// it waited (chatdb.pool.wait, seconds) and whether the connection was new.
	EventPoolWait = "chatdb.pool.wait"
	// EventTxRetry is the event, on the span of WithTx's caller, that a
	// transaction failed with ErrSerialization and runs again, with the
	// attempt, the backoff and the error's class (error.type).
	EventTxRetry = "chatdb.tx.retry"
)

// tracing is a DB's instrumentation: nil when it is off (a provider of
// package noop).
type tracing struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
	// global says tp is the global provider's delegate, as it is while the
	// application has set none: then spans are made only once it has.
	global bool
}

// newTracing returns the instrumentation cfg asks for, or nil.
func newTracing(cfg Config) *tracing {
	tp := cfg.TracerProvider
	if v := reflect.ValueOf(tp); tp != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		// A typed nil, (*sdktrace.TracerProvider)(nil) from a provider not
		// built: taken as none, instead of a panic at the first span.
		tp = nil
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return nil
	}
	return &tracing{tp: tp, tracer: tp.Tracer(instrumentationName), global: isGlobalDelegate(tp)}
}

// isGlobalDelegate reports whether tp is the provider otel.GetTracerProvider
// returns before the application sets one: a delegate that forwards to the
// provider set later, a no-op until then. If a release of otel renames it,
// this says false and the spans are always started (through the no-op), which
// is correct, only slower.
func isGlobalDelegate(tp trace.TracerProvider) bool {
	t := reflect.TypeOf(tp)
	return t.Kind() == reflect.Pointer && t.Elem().Name() == "tracerProvider" &&
		t.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global"
}

// on reports whether spans are to be made now: always for a provider given
// in Config or set globally before Open, and for the global delegate once the
// application has set a provider (otel.GetTracerProvider then returns it).
func (t *tracing) on() bool {
	return t != nil && (!t.global || otel.GetTracerProvider() != t.tp)
}

// Tracing reports whether the database makes spans now (see
// Config.TracerProvider): false when its provider is one of package noop, or
// when it is the global one and the application has not set it yet.
func (db *DB) Tracing() bool { return db.tracing.on() }

// TracerProvider returns the provider the database's spans go to (see
// Config.TracerProvider), for the spans of code built on it, such as the
// store's operations; a no-op one when the instrumentation is off.
func (db *DB) TracerProvider() trace.TracerProvider {
	if db.tracing == nil {
		return noop.NewTracerProvider()
	}
	return db.tracing.tp
}

// traced returns c, traced with attrs on each span, unless tracing is off.
func (t *tracing) traced(c driver.Connector, attrs []attribute.KeyValue) driver.Connector {
	if t == nil {
		return c
	}
	return &tracedConnector{Connector: c, t: t, attrs: attrs}
}

// postgresAttributes are the attributes of a PostgreSQL pool's spans: the
// system, the database, and the server when the URL names a single one (a
// multi-host URL connects to whichever answers, which is not known here).
func postgresAttributes(t target) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL, attrDBSystem.String("postgresql")}
	name := strings.TrimPrefix(t.pgURL.Path, "/")
	if name == "" {
		name = t.pgURL.Query().Get("dbname") // a key/value string's
	}
	if name != "" {
		attrs = append(attrs, semconv.DBNamespace(name))
	}
	host := t.pgURL.Host
	if host == "" {
		host = t.pgURL.Query().Get("host") // a key/value string's
	}
	if host == "" || strings.Contains(host, ",") {
		return attrs
	}
	// parseURL checked the port; a host without one has none to split.
	port := t.pgURL.Query().Get("port")
	if h, p, err := net.SplitHostPort(host); err == nil {
		host, port = h, p
	}
	attrs = append(attrs, semconv.ServerAddress(strings.Trim(host, "[]")))
	if n, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, semconv.ServerPort(n))
	}
	return attrs
}

// sqliteAttributes are the attributes of a SQLite pool's spans. SQLite has no
// server: no server.address.
func sqliteAttributes() []attribute.KeyValue {
	return []attribute.KeyValue{semconv.DBSystemNameSQLite, attrDBSystem.String("sqlite")}
}

// errorAttributes are a failed driver call's error attributes: its SQLSTATE
// (or SQLite result code) as db.response.status_code and error.type, as the
// conventions ask, or its class (ErrorClass) when the database gave no code.
func errorAttributes(err error) []attribute.KeyValue {
	code := errorCode(err)
	if code == "" {
		return []attribute.KeyValue{semconv.ErrorTypeKey.String(ErrorClass(err))}
	}
	return []attribute.KeyValue{semconv.DBResponseStatusCode(code), semconv.ErrorTypeKey.String(code)}
}

// errorCode is err's SQLSTATE, or its SQLite extended result code, or "".
func errorCode(err error) string {
	if code, ok := sqlState(err); ok {
		return code
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return strconv.Itoa(se.Code())
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrorClass names err's class for telemetry: "ok" for nil, the kind of a
// classified database error ("not_found", "conflict", "timeout", ...), the
// context's "canceled" or "deadline_exceeded", or "error". It never includes
// the error's text.
func ErrorClass(err error) string {
	if err == nil {
		return "ok"
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	var e *Error
	if !errors.As(err, &e) {
		errors.As(mapError(err), &e)
	}
	for _, c := range errorClasses {
		if e != nil && e.Kind == c.kind || errors.Is(err, c.kind) {
			return c.class
		}
	}
	return "error"
}

// errorClasses are the classes of the kinds of Error, in the order
// ErrorClass tries them.
var errorClasses = []struct {
	kind  error
	class string
}{
	{ErrNotFound, "not_found"},
	{ErrConflict, "conflict"},
	{ErrInvalidReference, "invalid_reference"},
	{ErrCheck, "check"},
	{ErrInvalid, "invalid"},
	{ErrTimeout, "timeout"},
	{ErrSerialization, "serialization"},
	{ErrNestedTx, "nested_tx"},
	{ErrBadConn, "bad_conn"},
	{ErrCommitUnknown, "commit_unknown"},
	{ErrPermission, "permission"},
	{ErrClosed, "closed"},
	{ErrReadOnly, "read_only"},
	{ErrSchema, "schema"},
	{ErrTxAborted, "tx_aborted"},
}

// Operation returns the SQL operation of query, in capitals, as the
// conventions' db.operation.name: its first keyword, after white space and
// comments; for a statement that starts WITH, its first data-modifying part
// or else its main statement (see mainOperation). "" when there is none.
func Operation(query string) string {
	word, rest := firstWord(query)
	if word == "" {
		return ""
	}
	op := canonicalOperation(word)
	if op != "WITH" {
		return op
	}
	if v, ok := withOperations.Load(query); ok {
		return v.(string)
	}
	op = mainOperation(rest)
	if withOperationsLen.Add(1) <= maxWithOperations {
		withOperations.Store(query, op)
	}
	return op
}

// withOperations caches Operation of the WITH statements seen, which takes a
// scan of the whole statement; at most maxWithOperations of them, so that
// statements built per call cannot grow it without bound.
var (
	withOperations    sync.Map
	withOperationsLen atomic.Int64
)

const maxWithOperations = 1024

// operations are the keywords Operation returns without allocating.
var operations = []string{
	"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK",
	"SAVEPOINT", "RELEASE", "SET", "SHOW", "CREATE", "ALTER", "DROP", "COPY", "LOCK",
	"TRUNCATE", "PRAGMA", "EXPLAIN", "VALUES", "MERGE", "GRANT", "REVOKE", "COMMENT",
	"ANALYZE", "VACUUM", "DO", "CALL", "REINDEX", "RESET", "DISCARD", "LISTEN", "NOTIFY",
}

func canonicalOperation(word string) string {
	for _, op := range operations {
		if strings.EqualFold(word, op) {
			return op
		}
	}
	return strings.ToUpper(word)
}

// firstWord returns the first word of s after white space and comments, and
// the rest of s after it.
func firstWord(s string) (word, rest string) {
	s = skipSpaceAndComments(s)
	i := 0
	for i < len(s) && isWordByte(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= '0' && c <= '9'
}

func skipSpaceAndComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n\f")
		switch {
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
			} else {
				return ""
			}
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s[2:], "*/"); i >= 0 {
				s = s[2+i+2:]
			} else {
				return ""
			}
		default:
			return s
		}
	}
}

// mainOperation names a WITH statement from what follows WITH: by its first
// data-modifying part, a common table expression's or the main statement's
// (INSERT, UPDATE, DELETE, MERGE), since that is what the statement is for
// (an append's WITH ... INSERT ... SELECT is an INSERT); else by its main
// statement, the first SELECT or VALUES outside parentheses. String literals,
// quoted names and comments are skipped, and so are the UPDATE of a locking
// clause (FOR UPDATE, FOR NO KEY UPDATE) and of ON CONFLICT DO UPDATE.
func mainOperation(s string) string {
	depth := 0
	main, prev := "", ""
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			i++
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				i = len(s)
				continue
			}
			i += j + 2
		case c == '-' && strings.HasPrefix(s[i:], "--"), c == '/' && strings.HasPrefix(s[i:], "/*"):
			rest := skipSpaceAndComments(s[i:])
			i = len(s) - len(rest)
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			word := canonicalOperation(s[i:j])
			switch word {
			case "INSERT", "DELETE", "MERGE":
				return word
			case "UPDATE":
				if prev != "FOR" && prev != "KEY" && prev != "DO" {
					return word
				}
			case "SELECT", "VALUES":
				if depth == 0 && main == "" {
					main = word
				}
			}
			prev = word
			i = j
		default:
			i++
		}
	}
	if main == "" {
		return "WITH"
	}
	return main
}

// Pool waits.
//
// database/sql takes a connection for a statement inside QueryContext and
// ExecContext, and the connection's wrapper below it sees only a connection
// already taken. So the wait is measured from above: poolWaitDriver, the ent
// driver over a pool, notes in the context when a statement (or BeginTx)
// asks for a connection, and the first call the wrapper gets with that
// context (a new connection's dial, or the statement itself) adds
// EventPoolWait to the caller's span (notePoolWaitOnce). Statements in a
// transaction hold their connection and are not marked. Only a caller's span
// that records pays for it: one context value per statement.

type poolWaitKey struct{}

// poolWait is the start of a statement's wait; seen once its event is added.
// One goroutine uses it: database/sql calls the driver in the caller's.
type poolWait struct {
	start time.Time
	seen  bool
}

// markPoolWait returns ctx marked with the start of a wait for a connection,
// when tracing is on and ctx's span records.
func (t *tracing) markPoolWait(ctx context.Context) context.Context {
	if !t.on() || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	return context.WithValue(ctx, poolWaitKey{}, &poolWait{start: time.Now()})
}

// notePoolWaitOnce adds EventPoolWait to ctx's span, once per mark: the
// connection is taken (newConn: dialled for it).
func notePoolWaitOnce(ctx context.Context, newConn bool) {
	w, ok := ctx.Value(poolWaitKey{}).(*poolWait)
	if !ok || w.seen {
		return
	}
	w.seen = true
	trace.SpanFromContext(ctx).AddEvent(EventPoolWait, trace.WithAttributes(
		attrPoolWait.Float64(time.Since(w.start).Seconds()),
		attrPoolNewConn.Bool(newConn),
	))
}

// notePoolWait adds EventPoolWait to ctx's span for a wait that started at
// start, taken outside a statement (WithConnTx's sql.Conn).
func notePoolWait(ctx context.Context, start time.Time) {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.AddEvent(EventPoolWait, trace.WithAttributes(attrPoolWait.Float64(time.Since(start).Seconds())))
	}
}

// poolWaitDriver is the ent driver of a pool (the primary's, a replica's),
// marking each statement and transaction's wait for a connection.
type poolWaitDriver struct {
	entdialect.Driver
	t *tracing
}

// tracedPool returns drv, the ent driver of a pool, marking pool waits unless
// tracing is off.
func (db *DB) tracedPool(drv entdialect.Driver) entdialect.Driver {
	if db.tracing == nil {
		return drv
	}
	return poolWaitDriver{Driver: drv, t: db.tracing}
}

func (d poolWaitDriver) Exec(ctx context.Context, query string, args, v any) error {
	return d.Driver.Exec(d.t.markPoolWait(ctx), query, args, v)
}

func (d poolWaitDriver) Query(ctx context.Context, query string, args, v any) error {
	return d.Driver.Query(d.t.markPoolWait(ctx), query, args, v)
}

// ExecContext and QueryContext are ent's client.ExecContext and QueryContext,
// which the store's hand-written statements use.
func (d poolWaitDriver) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ex, ok := d.Driver.(interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	})
	if !ok {
		return nil, errors.New("database: the driver does not support ExecContext")
	}
	return ex.ExecContext(d.t.markPoolWait(ctx), query, args...)
}

func (d poolWaitDriver) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q, ok := d.Driver.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	})
	if !ok {
		return nil, errors.New("database: the driver does not support QueryContext")
	}
	return q.QueryContext(d.t.markPoolWait(ctx), query, args...)
}

// BeginTx is ent's client.BeginTx, which WithTx uses.
func (d poolWaitDriver) BeginTx(ctx context.Context, opts *sql.TxOptions) (entdialect.Tx, error) {
	b, ok := d.Driver.(interface {
		BeginTx(context.Context, *sql.TxOptions) (entdialect.Tx, error)
	})
	if !ok {
		return nil, errors.New("database: the driver does not support BeginTx")
	}
	return b.BeginTx(d.t.markPoolWait(ctx), opts)
}

func (d poolWaitDriver) Tx(ctx context.Context) (entdialect.Tx, error) {
	return d.Driver.Tx(d.t.markPoolWait(ctx))
}

// noteTxRetry adds EventTxRetry to ctx's span.
func noteTxRetry(ctx context.Context, attempt int, backoff time.Duration, err error) {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.AddEvent(EventTxRetry, trace.WithAttributes(
			attrTxAttempt.Int(attempt),
			attrTxBackoff.Float64(backoff.Seconds()),
			semconv.ErrorTypeKey.String(ErrorClass(err)),
		))
	}
}

// errorType is the package path and name of err's type, as the SDK's
// RecordError reports it.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer && t.Name() == "" {
		t = t.Elem()
	}
	if t.PkgPath() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}
