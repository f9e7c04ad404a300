package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

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
// BEGIN to its COMMIT or ROLLBACK, and a statement that writes run with Exec
// outside a transaction (a BEGIN run that way keeps its turn until its COMMIT
// or ROLLBACK). A wait in the queue is bounded by Config.SQLiteBusyTimeout and
// by the context, as SQLite's own wait is, and ends in ErrTimeout (or the
// context's error). Reads and PRAGMAs are not queued: in WAL mode reads do not
// wait for writers. Nor is a write run with Query outside a transaction (an
// INSERT ... RETURNING): it holds the lock until its rows are closed, which
// this layer does not see, so it waits in SQLite's busy handler as before.
// Writers in other processes still meet at SQLite's lock, under the busy
// timeout.

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

// noQueueWait marks a context whose writer does not wait in the queue: it
// gets its turn at once or ErrTimeout, as SQLite answers with a busy timeout
// of 0. The migration lock polls that way (migrationLock.begin).
type noQueueWait struct{}

// tryWriteOnce returns ctx marked with noQueueWait.
func tryWriteOnce(ctx context.Context) context.Context {
	return context.WithValue(ctx, noQueueWait{}, true)
}

// enter waits for the queue's turn, at most wait.
func (q writeQueue) enter(ctx context.Context, wait time.Duration) error {
	select {
	case q <- struct{}{}:
		return nil
	default:
	}
	if ctx.Value(noQueueWait{}) != nil {
		return &Error{Kind: ErrTimeout, Code: "5", Err: errWriteQueue}
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
	// manualTx is set when the transaction began with an Exec of BEGIN, not
	// with BeginTx: an Exec of COMMIT or ROLLBACK ends it.
	manualTx bool
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
// statement that writes waits its turn, and a BEGIN keeps its turn until the
// COMMIT or ROLLBACK run the same way. PRAGMAs and reads do not queue.
func (sc *sqliteConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	kw := firstKeyword(query)
	if sc.inTx {
		res, err := sc.sqliteDriverConn.ExecContext(ctx, query, args)
		if sc.manualTx && err == nil && (kw == "COMMIT" || kw == "END" || kw == "ROLLBACK" && !strings.Contains(strings.ToUpper(query), " TO ")) {
			sc.manualTx, sc.inTx = false, false
			sc.c.queue.leave()
		}
		return res, err
	}
	switch kw {
	case "PRAGMA", "SELECT", "EXPLAIN", "VALUES":
		return sc.sqliteDriverConn.ExecContext(ctx, query, args)
	}
	if err := sc.c.queue.enter(ctx, sc.c.wait); err != nil {
		return nil, err
	}
	res, err := sc.sqliteDriverConn.ExecContext(ctx, query, args)
	if kw == "BEGIN" && err == nil {
		sc.inTx, sc.manualTx = true, true
		return res, nil
	}
	sc.c.queue.leave()
	return res, err
}

// firstKeyword returns the first word of query, upper-cased, past blanks and
// SQL comments.
func firstKeyword(query string) string {
	for {
		query = strings.TrimLeft(query, " \t\r\n(")
		switch {
		case strings.HasPrefix(query, "--"):
			if i := strings.IndexByte(query, '\n'); i >= 0 {
				query = query[i+1:]
				continue
			}
			return ""
		case strings.HasPrefix(query, "/*"):
			if i := strings.Index(query, "*/"); i >= 0 {
				query = query[i+2:]
				continue
			}
			return ""
		}
		end := strings.IndexFunc(query, func(r rune) bool { return !unicode.IsLetter(r) })
		if end < 0 {
			end = len(query)
		}
		return strings.ToUpper(query[:end])
	}
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
		sc.inTx, sc.manualTx = false, false
		sc.c.queue.leave()
	}
	return sc.sqliteDriverConn.Close()
}
