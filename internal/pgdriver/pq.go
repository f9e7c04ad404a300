package pgdriver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// PQ wraps lib/pq's connector c for database/sql (see the package
// documentation). A connection that sat idle in the pool longer than
// healthCheckAfter is pinged before it is handed out again, and replaced if
// dead; negative means every time.
//
// PQ sets c's dialer, replacing any: the wrapper must see each connection's
// socket to break it when a context ends. Use c only through the connector
// PQ returns.
func PQ(c *pq.Connector, healthCheckAfter time.Duration) driver.Connector {
	c.Dialer(slotDialer{})
	return &pingConnector{Connector: c, threshold: healthCheckAfter}
}

// pingConnector gives lib/pq what pgx's database/sql driver does by itself, and
// what neither does safely:
//
//   - a connection that sat idle longer than threshold is pinged when taken from
//     the pool, and a dead one is replaced (driver.ErrBadConn) without the caller
//     seeing an error. Without it, the first statement on a connection the server
//     closed while idle (a restart, a pg_terminate_backend, a firewall timeout)
//     fails.
//   - a statement that may have reached the server is never run again by
//     database/sql: lib/pq reports a connection lost mid-statement as
//     driver.ErrBadConn, which database/sql answers by running the statement
//     again on another connection (https://github.com/lib/pq/issues/939). The
//     wrapper returns ErrConnLost instead.
//   - a call whose context ends returns even when the server or the network no
//     longer answers: lib/pq then sends a cancel request and waits for the
//     server's answer, for ever if it never comes; the wrapper breaks the
//     socket's read cancelGrace after the context ended. Connecting, lib/pq
//     waits for the server's start-up answer up to connect_timeout whatever the
//     context says; the wrapper breaks that wait when the context ends.
//
// Closing it (database/sql does, in DB.Close) closes the sockets of the
// connections still in use, so that their statements stop.
type pingConnector struct {
	driver.Connector
	threshold time.Duration
	live      liveSockets
}

var _ io.Closer = (*pingConnector)(nil)

// Close closes the sockets of the connections still open.
func (c *pingConnector) Close() error { return c.live.Close() }

// cancelGrace is how long a lib/pq call whose context ended may wait for the
// server to answer lib/pq's cancel request before its socket is broken. The
// connection is discarded either way (lib/pq marks it bad when the context
// ends); the grace lets the cancel request reach the server first, so that the
// server stops the statement.
const cancelGrace = 500 * time.Millisecond

// connSlot receives the socket that lib/pq dials for one connection; the
// dialer finds it in the context of Connect. lib/pq dials its cancel requests
// with a context of their own, which carries no slot.
type connSlot struct {
	mu sync.Mutex
	nc net.Conn
	// broken: Connect's context ended; the socket is to fail at once.
	broken bool
}

// set records nc, the socket lib/pq dialled.
func (s *connSlot) set(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nc = nc
	if s.broken {
		nc.SetDeadline(time.Unix(1, 0))
	}
}

// breakConn makes the socket fail at once, now or when it is dialled: lib/pq
// honours the context while it dials but not during the start-up exchange,
// which would wait up to connect_timeout on a server that does not answer.
func (s *connSlot) breakConn() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken = true
	if s.nc != nil {
		s.nc.SetDeadline(time.Unix(1, 0))
	}
}

type connSlotKey struct{}

// slotDialer is lib/pq's default dialer, plus the slot.
type slotDialer struct{ d net.Dialer }

func (d slotDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d slotDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d slotDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nc, err := d.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if s, ok := ctx.Value(connSlotKey{}).(*connSlot); ok {
		s.set(nc)
	}
	return nc, nil
}

func (c *pingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	slot := &connSlot{}
	stop := context.AfterFunc(ctx, slot.breakConn)
	conn, err := c.Connector.Connect(context.WithValue(ctx, connSlotKey{}, slot))
	if !stop() {
		// ctx ended while connecting: the socket may be broken even if the
		// start-up exchange finished.
		if err == nil {
			conn.Close()
			err = errors.New("connection abandoned")
		}
		return nil, withCtx(ctx, err)
	}
	if err != nil {
		var path *fs.PathError
		if errors.As(err, &path) {
			// A TLS file lib/pq could not read: the configuration's fault,
			// which database reports as such.
			return nil, err
		}
		return nil, &ConnectError{Err: err}
	}
	slot.mu.Lock()
	nc := slot.nc
	slot.mu.Unlock()
	if !c.live.add(nc) {
		conn.Close()
		return nil, errConnectorClosed
	}
	pc := &pingConn{pqConn: conn.(pqConn), threshold: c.threshold, nc: nc, live: &c.live}
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
	// nc is the connection's socket, nil if the dialer did not see it.
	nc net.Conn
	// live is the connector's record of open sockets.
	live *liveSockets

	mu sync.Mutex
	// rows watches the context of the last QueryContext, whose rows are read
	// after it returns; the next call on the connection disarms it.
	rows *watcher
}

var _ pqConn = (*pingConn)(nil)

func (c *pingConn) touch() { c.lastUsed.Store(time.Now().UnixNano()) }

// watcher breaks a connection's socket cancelGrace after a context ended,
// unless it was disarmed first.
type watcher struct {
	stop     func() bool
	timer    *time.Timer
	disarmed bool // under pingConn.mu
	fired    bool // under pingConn.mu: the socket's deadline was set
}

// watch arms a watcher for ctx. Every call that may wait on the server arms
// one, and disarms it when the call is over. It returns nil, which disarm
// accepts, when there is nothing to watch (no socket, or a context that never
// ends): no allocation on that path.
func (c *pingConn) watch(ctx context.Context) *watcher {
	if c.nc == nil || ctx.Done() == nil {
		return nil
	}
	w := &watcher{}
	w.stop = context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if w.disarmed {
			return
		}
		w.timer = time.AfterFunc(cancelGrace, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if w.disarmed {
				return
			}
			w.fired = true
			// A deadline in the past fails the read lib/pq is blocked in,
			// and any later one.
			c.nc.SetDeadline(time.Unix(1, 0))
		})
	})
	return w
}

// disarm ends w. A socket broken while
// the connection sat in the pool (the context of an earlier query ended later)
// is mended: lib/pq had finished with that context, and the connection is good.
func (c *pingConn) disarm(w *watcher, mend bool) {
	if w == nil {
		return
	}
	if w.stop != nil {
		w.stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w.disarmed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.fired && mend {
		c.nc.SetDeadline(time.Time{})
	}
}

// begin starts a call: it disarms the watcher of the previous query's rows.
func (c *pingConn) begin() {
	c.mu.Lock()
	w := c.rows
	c.rows = nil
	c.mu.Unlock()
	c.disarm(w, true)
}

// ResetSession is called by database/sql before it hands out a connection that was
// used before.
func (c *pingConn) ResetSession(ctx context.Context) error {
	c.begin()
	if err := c.pqConn.ResetSession(ctx); err != nil {
		return err
	}
	idle := time.Since(time.Unix(0, c.lastUsed.Load()))
	if c.threshold >= 0 && idle <= c.threshold {
		return nil
	}
	w := c.watch(ctx)
	err := c.pqConn.Ping(ctx)
	c.disarm(w, false)
	if err != nil {
		return driver.ErrBadConn
	}
	c.touch()
	return nil
}

func (c *pingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.begin()
	defer c.touch()
	// The watcher stays armed for the whole transaction: database/sql's Commit
	// and Rollback take no context, and lib/pq watches the one given here.
	w := c.watch(ctx)
	tx, err := c.pqConn.BeginTx(ctx, opts)
	if err != nil {
		c.disarm(w, false)
		// BEGIN has no effect of its own: driver.ErrBadConn stays, and
		// database/sql may begin again on another connection.
		return nil, withCtx(ctx, err)
	}
	return &pqTx{Tx: tx, c: c, w: w, ctx: ctx}, nil
}

func (c *pingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.begin()
	defer c.touch()
	w := c.watch(ctx)
	st, err := c.pqConn.PrepareContext(ctx, query)
	c.disarm(w, false)
	if err != nil {
		// A Parse has no effect of its own: database/sql may retry it.
		return nil, withCtx(ctx, err)
	}
	return &pqStmt{Stmt: st, c: c}, nil
}

func (c *pingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.begin()
	defer c.touch()
	if err := checkParams(args); err != nil {
		return nil, err
	}
	if !c.pqConn.IsValid() {
		return nil, driver.ErrBadConn // nothing sent: database/sql may retry
	}
	w := c.watch(ctx)
	res, err := c.pqConn.ExecContext(ctx, query, args)
	c.disarm(w, false)
	if err != nil {
		return nil, callErr(ctx, err)
	}
	return res, nil
}

func (c *pingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.begin()
	defer c.touch()
	if err := checkParams(args); err != nil {
		return nil, err
	}
	if !c.pqConn.IsValid() {
		return nil, driver.ErrBadConn
	}
	w := c.watch(ctx)
	rows, err := c.pqConn.QueryContext(ctx, query, args)
	if err != nil {
		c.disarm(w, false)
		return nil, callErr(ctx, err)
	}
	c.mu.Lock()
	c.rows = w
	c.mu.Unlock()
	return rows, nil
}

func (c *pingConn) Ping(ctx context.Context) error {
	c.begin()
	defer c.touch()
	w := c.watch(ctx)
	err := c.pqConn.Ping(ctx)
	c.disarm(w, false)
	return withCtx(ctx, err)
}

func (c *pingConn) Close() error {
	c.begin()
	if c.nc != nil {
		c.live.remove(c.nc)
	}
	return c.pqConn.Close()
}

// maxParams is the most parameters the protocol's 16-bit count can carry.
const maxParams = 65535

// checkParams refuses more parameters than the protocol carries before lib/pq
// sees them: lib/pq refuses them too, but leaves the connection believing a
// query is in progress, and every later call on it fails ("there is already a
// query being processed on this connection").
func checkParams(args []driver.NamedValue) error {
	if len(args) > maxParams {
		return fmt.Errorf("got %d parameters but PostgreSQL supports at most %d", len(args), maxParams)
	}
	return nil
}

// pqTx disarms the transaction's watcher when it ends, and reports the
// transaction's context ending during COMMIT or ROLLBACK as pgx does.
type pqTx struct {
	driver.Tx
	c   *pingConn
	w   *watcher
	ctx context.Context
}

func (t *pqTx) Commit() error {
	defer t.c.touch()
	err := t.Tx.Commit()
	t.c.disarm(t.w, false)
	return withCtx(t.ctx, err)
}

func (t *pqTx) Rollback() error {
	defer t.c.touch()
	err := t.Tx.Rollback()
	t.c.disarm(t.w, false)
	return withCtx(t.ctx, err)
}

// pqStmt keeps database/sql from running a prepared statement twice, as
// pingConn does for the others.
type pqStmt struct {
	driver.Stmt
	c *pingConn
}

func (s *pqStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.c.begin()
	defer s.c.touch()
	if !s.c.pqConn.IsValid() {
		return nil, driver.ErrBadConn
	}
	w := s.c.watch(ctx)
	var (
		res driver.Result
		err error
	)
	if se, ok := s.Stmt.(driver.StmtExecContext); ok {
		res, err = se.ExecContext(ctx, args)
	} else {
		//nolint:staticcheck // the statement (lib/pq's COPY) implements only Exec.
		res, err = s.Stmt.Exec(values(args))
	}
	s.c.disarm(w, false)
	if err != nil {
		return nil, callErr(ctx, err)
	}
	return res, nil
}

func (s *pqStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.c.begin()
	defer s.c.touch()
	if !s.c.pqConn.IsValid() {
		return nil, driver.ErrBadConn
	}
	w := s.c.watch(ctx)
	var (
		rows driver.Rows
		err  error
	)
	if sq, ok := s.Stmt.(driver.StmtQueryContext); ok {
		rows, err = sq.QueryContext(ctx, args)
	} else {
		//nolint:staticcheck // as for Exec.
		rows, err = s.Stmt.Query(values(args))
	}
	if err != nil {
		s.c.disarm(w, false)
		return nil, callErr(ctx, err)
	}
	s.c.mu.Lock()
	s.c.rows = w
	s.c.mu.Unlock()
	return rows, nil
}

// Exec is the context-free call that database/sql no longer makes but
// database's CopyFrom does, on lib/pq's COPY statement.
func (s *pqStmt) Exec(args []driver.Value) (driver.Result, error) {
	//nolint:staticcheck // see above.
	res, err := s.Stmt.Exec(args)
	if errors.Is(err, driver.ErrBadConn) {
		return nil, ErrConnLost
	}
	return res, err
}

func values(named []driver.NamedValue) []driver.Value {
	v := make([]driver.Value, len(named))
	for i, n := range named {
		v[i] = n.Value
	}
	return v
}
