package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"sync"
	"time"

	"modernc.org/sqlite"
)

// SQLite lets one writer in at a time, and a writer that finds the lock taken
// waits in SQLite's busy handler: it sleeps and tries again, with sleeps that
// grow to 100ms, so a writer that has waited long keeps losing to writers
// that just arrived. With sixteen goroutines appending, some waited out the
// whole busy timeout and failed with ErrTimeout while the database was busy
// but healthy.
//
// So writers of one database file in this process queue in Go first, in
// arrival order, and reach SQLite one at a time: a write transaction (every
// transaction but a read-only one: Open makes them BEGIN IMMEDIATE) from its
// BEGIN to its COMMIT or ROLLBACK, and a statement run with Exec outside a
// transaction. A wait in the queue is bounded by Config.SQLiteBusyTimeout and
// by the context, as SQLite's own wait is, and ends in ErrTimeout (or the
// context's error). Reads are not queued: in WAL mode they do not wait for
// writers. Writers in other processes still meet at SQLite's lock, under the
// busy timeout.

// writeQueue is the queue of one database file's writers.
type writeQueue chan struct{}

// writeQueues holds each file's queue, by absolute path, for every pool of
// this process that opens the file.
var writeQueues sync.Map

// queueFor returns path's queue; ":memory:" gets a queue of its own (each pool
// has its own in-memory database).
func queueFor(path string) writeQueue {
	if path == ":memory:" {
		return make(writeQueue, 1)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	q, _ := writeQueues.LoadOrStore(path, make(writeQueue, 1))
	return q.(writeQueue)
}

// errWriteQueue is the cause of an ErrTimeout for a writer that waited in the
// queue for the whole busy timeout.
var errWriteQueue = errors.New("database: waited for the SQLite write lock for the whole busy timeout")

// enter waits for the queue's turn, at most wait.
func (q writeQueue) enter(ctx context.Context, wait time.Duration) error {
	select {
	case q <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case q <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return &Error{Kind: ErrTimeout, Code: "5", Err: errWriteQueue}
	}
}

func (q writeQueue) leave() { <-q }

// sqliteConnector opens connections to one SQLite file whose writers queue.
type sqliteConnector struct {
	dsn   string
	drv   *sqlite.Driver
	queue writeQueue
	wait  time.Duration
}

func newSQLiteConnector(dsn, path string, wait time.Duration) *sqliteConnector {
	return &sqliteConnector{dsn: dsn, drv: &sqlite.Driver{}, queue: queueFor(path), wait: wait}
}

// Connect implements driver.Connector.
func (c *sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	dc, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &sqliteConn{sqliteDriverConn: dc.(sqliteDriverConn), c: c}, nil
}

// Driver implements driver.Connector.
func (c *sqliteConnector) Driver() driver.Driver { return c.drv }

// sqliteDriverConn is what modernc.org/sqlite's connection implements and
// database/sql uses.
type sqliteDriverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// sqliteConn is a connection whose writes go through the file's queue.
type sqliteConn struct {
	sqliteDriverConn
	c *sqliteConnector
	// inTx is set while a transaction of this connection is open: its
	// statements are inside the queue already. database/sql uses a connection
	// from one goroutine at a time.
	inTx bool
}

// Begin implements driver.Conn; database/sql calls BeginTx.
func (sc *sqliteConn) Begin() (driver.Tx, error) {
	return sc.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx implements driver.ConnBeginTx: a write transaction waits its turn.
func (sc *sqliteConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		return sc.sqliteDriverConn.BeginTx(ctx, opts)
	}
	if err := sc.c.queue.enter(ctx, sc.c.wait); err != nil {
		return nil, err
	}
	tx, err := sc.sqliteDriverConn.BeginTx(ctx, opts)
	if err != nil {
		sc.c.queue.leave()
		return nil, err
	}
	sc.inTx = true
	return &sqliteTx{Tx: tx, sc: sc}, nil
}

// ExecContext implements driver.ExecerContext: outside a transaction, a
// statement waits its turn.
func (sc *sqliteConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if sc.inTx {
		return sc.sqliteDriverConn.ExecContext(ctx, query, args)
	}
	if err := sc.c.queue.enter(ctx, sc.c.wait); err != nil {
		return nil, err
	}
	defer sc.c.queue.leave()
	return sc.sqliteDriverConn.ExecContext(ctx, query, args)
}

// sqliteTx leaves the queue when the transaction ends, whichever way.
type sqliteTx struct {
	driver.Tx
	sc   *sqliteConn
	done bool
}

func (t *sqliteTx) end() {
	if !t.done && t.sc.inTx {
		t.sc.inTx = false
		t.sc.c.queue.leave()
	}
	t.done = true
}

// Commit implements driver.Tx.
func (t *sqliteTx) Commit() error {
	defer t.end()
	return t.Tx.Commit()
}

// Rollback implements driver.Tx.
func (t *sqliteTx) Rollback() error {
	defer t.end()
	return t.Tx.Rollback()
}

// Close implements driver.Conn. A connection closed with its transaction open
// (the pool drops it) leaves the queue too; SQLite rolls the transaction back.
func (sc *sqliteConn) Close() error {
	if sc.inTx {
		sc.inTx = false
		sc.c.queue.leave()
	}
	return sc.sqliteDriverConn.Close()
}
