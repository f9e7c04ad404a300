package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// tracedConnector is a pool's connector with its statements traced (see
// trace.go): a span per statement, BEGIN, COMMIT, ROLLBACK and new
// connection, while its tracing is on. Everything else passes through.
type tracedConnector struct {
	driver.Connector
	t *tracing
	// attrs are the attributes of every span of the pool: db.system.name,
	// db.namespace, server.address, ...
	attrs []attribute.KeyValue
}

var _ io.Closer = (*tracedConnector)(nil)

func (c *tracedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if !c.t.on() {
		conn, err := c.Connector.Connect(ctx)
		if err != nil {
			return nil, err
		}
		return &tracedConn{Conn: conn, c: c}, nil
	}
	sctx, span := c.start(ctx, "connect", "")
	conn, err := c.Connector.Connect(sctx)
	endSpan(span, err)
	if err != nil {
		return nil, err
	}
	// database/sql dials in the caller's goroutine, with its context: the
	// wait the caller's statement sees includes the dial.
	notePoolWaitOnce(ctx, true)
	return &tracedConn{Conn: conn, c: c}, nil
}

// Close closes the connector under it, which database/sql asks of a
// connector that is an io.Closer when the pool closes (pgdriver's close the
// sockets of the connections still in use).
func (c *tracedConnector) Close() error {
	if cl, ok := c.Connector.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// clientKind is made once: an option made per span would be an allocation.
var clientKind = trace.WithSpanKind(trace.SpanKindClient)

// start starts a client span of the pool's (see tracing.start).
func (c *tracedConnector) start(ctx context.Context, op, query string) (context.Context, trace.Span) {
	return c.t.start(ctx, c.attrs, op, query)
}

// start starts a client span called op (a statement's operation, BEGIN,
// COMMIT, ...) under ctx's span, with attrs (the pool's), op as
// db.operation.name and query, the statement's text without its arguments,
// as db.query.text.
func (t *tracing) start(ctx context.Context, attrs []attribute.KeyValue, op, query string) (context.Context, trace.Span) {
	name := op
	if name == "" {
		name = "SQL"
	}
	ctx, span := t.tracer.Start(ctx, name, clientKind)
	if span.IsRecording() {
		all := make([]attribute.KeyValue, 0, len(attrs)+2)
		all = append(all, attrs...)
		if op != "" && op != "connect" {
			all = append(all, semconv.DBOperationName(op))
		}
		if query != "" {
			all = append(all, semconv.DBQueryText(query))
		}
		span.SetAttributes(all...)
	}
	return ctx, span
}

// endSpan ends span; a failure sets its status to Error, its code as
// db.response.status_code and error.type, and an exception event with the
// error's type and a message made of its class and code: never its text,
// which can quote the statement's arguments ("invalid input syntax for type
// integer: ...").
func endSpan(span trace.Span, err error) {
	if err != nil && !errors.Is(err, driver.ErrSkip) && span.IsRecording() {
		span.SetAttributes(errorAttributes(err)...)
		msg := ErrorClass(err)
		if code := errorCode(err); code != "" {
			msg += " (" + code + ")"
		}
		span.AddEvent(semconv.ExceptionEventName, trace.WithAttributes(
			semconv.ExceptionType(errorType(err)),
			semconv.ExceptionMessage(msg),
		))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// tracedConn is a connection of a tracedConnector. It implements every
// optional interface database/sql asks of a connection, answering as the
// connection under it would, or as database/sql does when that connection
// does not implement it.
type tracedConn struct {
	driver.Conn
	c *tracedConnector
}

var (
	_ driver.ExecerContext      = (*tracedConn)(nil)
	_ driver.QueryerContext     = (*tracedConn)(nil)
	_ driver.ConnPrepareContext = (*tracedConn)(nil)
	_ driver.ConnBeginTx        = (*tracedConn)(nil)
	_ driver.Pinger             = (*tracedConn)(nil)
	_ driver.SessionResetter    = (*tracedConn)(nil)
	_ driver.Validator          = (*tracedConn)(nil)
	_ driver.NamedValueChecker  = (*tracedConn)(nil)
)

// Raw returns the connection under it, for work database/sql cannot express
// (pgdriver.PgxConn unwraps it for COPY).
func (c *tracedConn) Raw() driver.Conn { return c.Conn }

func (c *tracedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ex, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip // database/sql prepares it instead
	}
	if !c.c.t.on() {
		return ex.ExecContext(ctx, query, args)
	}
	notePoolWaitOnce(ctx, false)
	sctx, span := c.c.start(ctx, Operation(query), query)
	res, err := ex.ExecContext(sctx, query, args)
	endSpan(span, err)
	return res, err
}

// QueryContext's span ends when the first answer is in, before the rows are
// read: reading them is the caller's time.
func (c *tracedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	if !c.c.t.on() {
		return q.QueryContext(ctx, query, args)
	}
	notePoolWaitOnce(ctx, false)
	sctx, span := c.c.start(ctx, Operation(query), query)
	rows, err := q.QueryContext(sctx, query, args)
	endSpan(span, err)
	return rows, err
}

// PrepareContext is not traced (see trace.go).
func (c *tracedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Conn.Prepare(query)
}

func (c *tracedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	b, ok := c.Conn.(driver.ConnBeginTx)
	if !ok {
		// What database/sql does for a driver without BeginTx.
		if opts.Isolation != driver.IsolationLevel(0) || opts.ReadOnly {
			return nil, errors.New("database: the driver supports neither isolation levels nor read-only transactions")
		}
		return c.Conn.Begin() //nolint:staticcheck // the fallback database/sql uses
	}
	if !c.c.t.on() {
		return b.BeginTx(ctx, opts)
	}
	notePoolWaitOnce(ctx, false)
	sctx, span := c.c.start(ctx, "BEGIN", "")
	tx, err := b.BeginTx(sctx, opts)
	endSpan(span, err)
	if err != nil {
		return nil, err
	}
	return &tracedTx{Tx: tx, ctx: ctx, c: c.c}, nil
}

func (c *tracedConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *tracedConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *tracedConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// CheckNamedValue answers driver.ErrSkip, database/sql's "use the default
// conversion", for a connection that does not check values itself.
func (c *tracedConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// tracedTx is a transaction begun while tracing was on: its COMMIT or
// ROLLBACK is a span under the span BeginTx was called with.
type tracedTx struct {
	driver.Tx
	ctx context.Context
	c   *tracedConnector
}

func (t *tracedTx) Commit() error {
	_, span := t.c.start(t.ctx, "COMMIT", "")
	err := t.Tx.Commit()
	endSpan(span, err)
	return err
}

func (t *tracedTx) Rollback() error {
	_, span := t.c.start(t.ctx, "ROLLBACK", "")
	err := t.Tx.Rollback()
	endSpan(span, err)
	return err
}
