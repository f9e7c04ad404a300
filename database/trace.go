package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	entdialect "entgo.io/ent/dialect"
	"github.com/XSAM/otelsql"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
	"modernc.org/sqlite"
)

// Tracing.
//
// The statements are traced by github.com/XSAM/otelsql, which wraps a
// driver.Connector. It fits under chatdb's own driver wrappers
// (internal/pgdriver's connectors, sqlitegate.go's) without undoing them:
// its connections pass IsValid and ResetSession through (the pgx wrapper's
// IsValid is what keeps dead connections out of the pool), its connector
// passes Close through (which closes the sockets of connections still in use,
// for Close's deadline), and its Raw gives the connection under it (CopyFrom
// unwraps it: pgdriver.PgxConn). So chatdb does not keep a span-per-statement
// wrapper of its own, which would have to follow every driver method; it
// configures otelsql for the current database semantic conventions and adds
// what otelsql cannot know: the statement's operation, the wait for a pool
// connection (poolWaitDriver, above database/sql, where the wait starts), and
// error attributes that never carry an error's text (safeTracerProvider).
//
// otelsql also records metrics through a MeterProvider; chatdb gives it a
// no-op one, because the pool's metrics are exported through Prometheus
// (metrics.go) and a second histogram per statement would cost every call.

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

// tracerProvider returns the provider cfg asks for: cfg.TracerProvider, or
// the global one, which delegates to whatever the application sets later.
func tracerProvider(cfg Config) trace.TracerProvider {
	if cfg.TracerProvider != nil {
		return cfg.TracerProvider
	}
	return otel.GetTracerProvider()
}

// tracingOff reports whether tp asks for no instrumentation at all: a provider
// of package noop. Then nothing is wrapped and no span is ever started.
func tracingOff(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return true
	}
	return false
}

// Traced reports whether the database's instrumentation is on: false when
// Config.TracerProvider is a provider of package noop.
func (db *DB) Traced() bool { return !tracingOff(db.tracer) }

// TracerProvider returns the provider the database's spans go to (see
// Config.TracerProvider), for the spans of code built on it, such as the
// store's operations. Its spans record an error as its class and SQLSTATE,
// never as its text, which can quote the arguments of a statement.
func (db *DB) TracerProvider() trace.TracerProvider { return db.tracer }

// openTraced returns a pool over c: traced by otelsql unless tracing is off.
// attrs are the attributes of every span of the pool (db.system.name,
// server.address, ...).
func openTraced(c driver.Connector, tp trace.TracerProvider, attrs []attribute.KeyValue) *sql.DB {
	if tracingOff(tp) {
		return sql.OpenDB(c)
	}
	return otelsql.OpenDB(c,
		otelsql.WithTracerProvider(tp),
		otelsql.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelsql.WithAttributes(attrs...),
		otelsql.WithSpanNameFormatter(spanName),
		otelsql.WithAttributesGetter(statementAttributes),
		otelsql.WithSpanErrorAttributesGetter(errorAttributes),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			// driver.ErrSkip is database/sql's "use another method", not a failure.
			DisableErrSkip: true,
			// A reset per statement taken from the pool is noise; its cost shows in
			// the pool-wait event.
			OmitConnResetSession: true,
			// The rows are read within the caller's span; a span per result set
			// would double the spans of every read.
			OmitRows: true,
		}),
	)
}

// postgresAttributes are the attributes of a PostgreSQL pool's spans: the
// system, the database, and the server when the URL names a single one (a
// multi-host URL connects to whichever answers, which otelsql cannot see).
func postgresAttributes(t target) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL, attrDBSystem.String("postgresql")}
	if name := strings.TrimPrefix(t.pgURL.Path, "/"); name != "" {
		attrs = append(attrs, semconv.DBNamespace(name))
	}
	host := t.pgURL.Host
	if host == "" {
		host = t.pgURL.Query().Get("host")
	}
	if host != "" && !strings.Contains(host, ",") {
		h, p := host, ""
		if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
			h, p = host[:i], host[i+1:]
		}
		attrs = append(attrs, semconv.ServerAddress(strings.Trim(h, "[]")))
		if p == "" {
			p = t.pgURL.Query().Get("port")
		}
		if port, err := parsePort(p); err == nil {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	return attrs
}

// parsePort parses a TCP port, or fails.
func parsePort(s string) (int, error) {
	n := 0
	if s == "" || len(s) > 5 {
		return 0, errors.New("no port")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("not a port")
		}
		n = n*10 + int(c-'0')
	}
	if n == 0 || n > 65535 {
		return 0, errors.New("not a port")
	}
	return n, nil
}

// sqliteAttributes are the attributes of a SQLite pool's spans. SQLite has no
// server: no server.address.
func sqliteAttributes() []attribute.KeyValue {
	return []attribute.KeyValue{semconv.DBSystemNameSQLite, attrDBSystem.String("sqlite")}
}

// spanName names a statement's span by its operation (SELECT, INSERT, ...),
// as the conventions ask when there is no query summary, and the other
// driver calls by what they do (BEGIN, COMMIT, ROLLBACK, connect, ...).
func spanName(_ context.Context, method otelsql.Method, query string) string {
	if op := methodOperation(method, query); op != "" {
		return op
	}
	return string(method)
}

// methodOperation is the db.operation.name of a driver call.
func methodOperation(method otelsql.Method, query string) string {
	switch method {
	case otelsql.MethodConnBeginTx:
		return "BEGIN"
	case otelsql.MethodTxCommit:
		return "COMMIT"
	case otelsql.MethodTxRollback:
		return "ROLLBACK"
	case otelsql.MethodConnExec, otelsql.MethodConnQuery, otelsql.MethodConnPrepare, otelsql.MethodStmtExec, otelsql.MethodStmtQuery:
		return Operation(query)
	}
	return ""
}

// statementAttributes adds db.operation.name to a statement's span, and
// records the pool wait of the statement, once it has its connection (see
// poolWaitDriver). otelsql calls it only for spans that record.
func statementAttributes(ctx context.Context, method otelsql.Method, query string, _ []driver.NamedValue) []attribute.KeyValue {
	if w, ok := ctx.Value(poolWaitKey{}).(*poolWait); ok && !w.seen {
		w.seen = true
		trace.SpanFromContext(ctx).AddEvent(EventPoolWait, trace.WithAttributes(
			attrPoolWait.Float64(time.Since(w.start).Seconds()),
			attrPoolNewConn.Bool(method == otelsql.MethodConnectorConnect),
		))
	}
	if op := methodOperation(method, query); op != "" {
		return []attribute.KeyValue{semconv.DBOperationName(op)}
	}
	return nil
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
	if e != nil {
		if class, ok := errorClasses[e.Kind]; ok {
			return class
		}
	}
	for kind, class := range errorClasses {
		if errors.Is(err, kind) {
			return class
		}
	}
	return "error"
}

// errorClasses are the classes of the kinds of Error.
var errorClasses = map[error]string{
	ErrNotFound:         "not_found",
	ErrConflict:         "conflict",
	ErrInvalidReference: "invalid_reference",
	ErrCheck:            "check",
	ErrInvalid:          "invalid",
	ErrTimeout:          "timeout",
	ErrSerialization:    "serialization",
	ErrNestedTx:         "nested_tx",
	ErrBadConn:          "bad_conn",
	ErrCommitUnknown:    "commit_unknown",
	ErrPermission:       "permission",
	ErrClosed:           "closed",
	ErrReadOnly:         "read_only",
	ErrSchema:           "schema",
	ErrTxAborted:        "tx_aborted",
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
// ExecContext, and the driver below it, where otelsql's span starts, sees only
// a connection already taken. So the wait is measured from above:
// poolWaitDriver, the ent driver over a pool, notes when a statement (or
// BeginTx) asks for a connection in its context, and the first span the driver
// starts for it (the statement's, or a new connection's) adds EventPoolWait to
// the caller's span (statementAttributes). Statements in a transaction hold
// their connection and are not marked. Only a caller's span that records pays
// for it: one context value per statement.

type poolWaitKey struct{}

// poolWait is the start of a statement's wait; seen once its event is added.
// One goroutine uses it: database/sql calls the driver in the caller's.
type poolWait struct {
	start time.Time
	seen  bool
}

// markPoolWait returns ctx marked with the start of a wait for a connection,
// when ctx's span records.
func markPoolWait(ctx context.Context) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	return context.WithValue(ctx, poolWaitKey{}, &poolWait{start: time.Now()})
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
}

// tracedPool returns drv, the ent driver of a pool, marking pool waits unless
// tracing is off.
func (db *DB) tracedPool(drv entdialect.Driver) entdialect.Driver {
	if tracingOff(db.tracer) {
		return drv
	}
	return poolWaitDriver{Driver: drv}
}

func (d poolWaitDriver) Exec(ctx context.Context, query string, args, v any) error {
	return d.Driver.Exec(markPoolWait(ctx), query, args, v)
}

func (d poolWaitDriver) Query(ctx context.Context, query string, args, v any) error {
	return d.Driver.Query(markPoolWait(ctx), query, args, v)
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
	return ex.ExecContext(markPoolWait(ctx), query, args...)
}

func (d poolWaitDriver) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q, ok := d.Driver.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	})
	if !ok {
		return nil, errors.New("database: the driver does not support QueryContext")
	}
	return q.QueryContext(markPoolWait(ctx), query, args...)
}

// BeginTx is ent's client.BeginTx, which WithTx uses.
func (d poolWaitDriver) BeginTx(ctx context.Context, opts *sql.TxOptions) (entdialect.Tx, error) {
	b, ok := d.Driver.(interface {
		BeginTx(context.Context, *sql.TxOptions) (entdialect.Tx, error)
	})
	if !ok {
		return nil, errors.New("database: the driver does not support BeginTx")
	}
	return b.BeginTx(markPoolWait(ctx), opts)
}

func (d poolWaitDriver) Tx(ctx context.Context) (entdialect.Tx, error) {
	return d.Driver.Tx(markPoolWait(ctx))
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

// Errors in spans.
//
// otelsql records a failed call's error with span.RecordError, whose event
// carries err.Error(); a server's message can quote the statement's arguments
// ("invalid input syntax for type uuid: ..."), and the rule here is that no
// argument or message body reaches telemetry. So the provider given to otelsql
// wraps its spans: RecordError records the error's type and a message made of
// its class and code only.

// safeTracerProvider is a TracerProvider whose recording spans record errors
// without their text.
type safeTracerProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

// safeProvider returns tp with safe error recording, or tp when tracing is off.
func safeProvider(tp trace.TracerProvider) trace.TracerProvider {
	if tracingOff(tp) {
		return tp
	}
	return safeTracerProvider{tp: tp}
}

func (p safeTracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return safeTracer{t: p.tp.Tracer(name, opts...)}
}

type safeTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (t safeTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := t.t.Start(ctx, name, opts...)
	if !span.IsRecording() {
		return ctx, span
	}
	s := safeSpan{Span: span}
	return trace.ContextWithSpan(ctx, s), s
}

type safeSpan struct{ trace.Span }

// RecordError adds the conventions' exception event with the error's type and
// a message that says its class and code, never its text.
func (s safeSpan) RecordError(err error, opts ...trace.EventOption) {
	if err == nil || !s.IsRecording() {
		return
	}
	msg := ErrorClass(err)
	if code := errorCode(err); code != "" {
		msg += " (" + code + ")"
	}
	opts = append(opts, trace.WithAttributes(
		semconv.ExceptionType(errorType(err)),
		semconv.ExceptionMessage(msg),
	))
	s.AddEvent(semconv.ExceptionEventName, opts...)
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
