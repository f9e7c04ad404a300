package database

import (
	"context"
	"database/sql/driver"
	"sync/atomic"
	"time"
)

// pingConnector gives lib/pq what pgx's database/sql driver does by itself: a
// connection that sat idle longer than threshold is pinged when taken from the
// pool, and a dead one is replaced (driver.ErrBadConn) without the caller seeing an
// error. Without it, the first statement on a connection the server closed while
// idle (a restart, a pg_terminate_backend, a firewall timeout) fails.
type pingConnector struct {
	driver.Connector
	threshold time.Duration
}

func (c *pingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	pc := &pingConn{pqConn: conn.(pqConn), threshold: c.threshold}
	pc.touch()
	return pc, nil
}

// pqConn is the set of interfaces lib/pq's connection implements. The wrapper
// must implement all of them: database/sql falls back to slower paths (prepare,
// execute, close: more round trips) when an optional interface is missing.
type pqConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

type pingConn struct {
	pqConn
	threshold time.Duration
	// lastUsed is the UnixNano time the connection last finished a call.
	lastUsed atomic.Int64
}

var _ pqConn = (*pingConn)(nil)

func (c *pingConn) touch() { c.lastUsed.Store(time.Now().UnixNano()) }

// ResetSession is called by database/sql before it hands out a connection that was
// used before.
func (c *pingConn) ResetSession(ctx context.Context) error {
	if err := c.pqConn.ResetSession(ctx); err != nil {
		return err
	}
	idle := time.Since(time.Unix(0, c.lastUsed.Load()))
	if c.threshold >= 0 && idle <= c.threshold {
		return nil
	}
	if err := c.pqConn.Ping(ctx); err != nil {
		return driver.ErrBadConn
	}
	c.touch()
	return nil
}

func (c *pingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	defer c.touch()
	return c.pqConn.BeginTx(ctx, opts)
}

func (c *pingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	defer c.touch()
	return c.pqConn.PrepareContext(ctx, query)
}

func (c *pingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	defer c.touch()
	return c.pqConn.ExecContext(ctx, query, args)
}

func (c *pingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	defer c.touch()
	return c.pqConn.QueryContext(ctx, query, args)
}

func (c *pingConn) Ping(ctx context.Context) error {
	defer c.touch()
	return c.pqConn.Ping(ctx)
}
