package pgdriver

import (
	"context"
	"database/sql/driver"
	"errors"
)

// ErrConnLost is returned in place of driver.ErrBadConn when a driver returns
// that for a statement it may already have sent: database/sql answers
// driver.ErrBadConn by running the statement again on another connection,
// which would run an INSERT or an UPDATE twice. lib/pq returns it for any
// connection lost mid-statement (https://github.com/lib/pq/issues/939), and
// pgx for a connection lost while reading the answer to a statement without
// arguments. It does not wrap driver.ErrBadConn, on purpose;
// database.MapError classifies it as database.ErrBadConn.
//
// Its text has no package prefix: it reaches users inside database's errors
// ("database: connection lost: connection lost after the statement was sent;
// it may have run"), and says what happened without naming this package.
var ErrConnLost = errors.New("connection lost after the statement was sent; it may have run")

// errConnectorClosed is returned by a connector's Connect that finished after
// the connector was closed: database/sql does not ask a closed pool for
// connections, so only a connection being made while the pool closed sees it.
var errConnectorClosed = errors.New("connection closed with its pool")

// callErr is what a statement that failed returns: ErrConnLost when the
// driver said driver.ErrBadConn, since the statement may have been sent (the
// calls return driver.ErrBadConn themselves when the connection was known bad
// before anything was sent, and database/sql then retries on another one); and
// the context's error wrapping the driver's when ctx ended, as pgx reports it.
func callErr(ctx context.Context, err error) error {
	if errors.Is(err, driver.ErrBadConn) {
		err = ErrConnLost
	}
	return withCtx(ctx, err)
}

// withCtx wraps a failed call's error with the context's, if ctx ended.
func withCtx(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return &ctxLostError{ctx: ctx.Err(), err: err}
	}
	return err
}

// ctxLostError is a call that failed once its context ended (lib/pq reports
// the cancel request it sent as "canceling statement due to user request", or
// the watcher broke the socket): errors.Is matches the context's error
// (context.DeadlineExceeded, which database.MapError maps to ErrTimeout), and
// errors.As the driver's. It is not exported: callers match the context's
// error and the driver's, never this type.
type ctxLostError struct{ ctx, err error }

func (e *ctxLostError) Error() string   { return e.ctx.Error() + ": " + e.err.Error() }
func (e *ctxLostError) Unwrap() []error { return []error{e.ctx, e.err} }

// ConnectError is what the lib/pq wrapper's Connect returns when lib/pq could
// not make a connection: nothing was sent, and database.MapError classifies
// it as database.ErrBadConn, as it does pgx's *pgconn.ConnectError. lib/pq
// reports some of these as plain errors that nothing else tells apart, such
// as a multi-host connection string with target_session_attrs=read-write
// none of whose hosts takes writes ("session is read-only", as during a
// failover before the new primary is up). Errors lib/pq already reports by
// type (a server's *pq.Error with its SQLSTATE, a network error, a
// certificate that did not verify) stay reachable with errors.As, and are
// classified by them first. Its text is the driver's.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }
