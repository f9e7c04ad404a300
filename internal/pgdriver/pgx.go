package pgdriver

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Pgx returns a connector of pgx's database/sql driver for cfg, wrapped (see
// the package documentation). A connection that sat idle in the pool longer
// than healthCheckAfter is pinged before it is handed out again, and replaced
// if dead; negative means every time.
func Pgx(cfg pgx.ConnConfig, healthCheckAfter time.Duration) driver.Connector {
	c := stdlib.GetConnector(cfg, stdlib.OptionShouldPing(func(_ context.Context, p stdlib.ShouldPingParams) bool {
		return healthCheckAfter < 0 || p.IdleDuration > healthCheckAfter
	}))
	return &pgxConnector{Connector: c}
}

// PgxConn returns the pgx connection under dc, a driver connection (as
// sql.Conn.Raw passes it) of a connector Pgx returned or of pgx's own driver,
// for what database/sql cannot express, such as COPY. It returns false for any
// other connection.
func PgxConn(dc any) (*pgx.Conn, bool) {
	// A traced pool's connections (database/tracedriver.go) give the
	// connection under them with Raw.
	if r, ok := dc.(interface{ Raw() driver.Conn }); ok {
		dc = r.Raw()
	}
	// The wrapper's embedded field named Conn hides stdlib.Conn's Conn method:
	// unwrap it by type.
	switch c := dc.(type) {
	case *pgxConn:
		return c.Conn.Conn(), true
	case *stdlib.Conn:
		return c.Conn(), true
	}
	return nil, false
}

// pgxConnector wraps pgx's connections so that database/sql never runs a
// statement twice. pgx's database/sql driver returns driver.ErrBadConn for
// errors it deems safe to retry, and a connection lost while reading the answer
// to a statement without arguments (sent with the simple protocol) is reported
// as "conn closed", which it deems so although the statement reached the
// server; database/sql then runs it again on another connection.
//
// Closing it (database/sql does, in DB.Close) closes the sockets of the
// connections still in use, so that their statements stop.
type pgxConnector struct {
	driver.Connector
	live liveSockets
}

var _ io.Closer = (*pgxConnector)(nil)

func (c *pgxConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	// Pgx made the connector from stdlib: its connections are pgx's.
	pc := &pgxConn{Conn: conn.(*stdlib.Conn), live: &c.live}
	pc.sock = pc.Conn.Conn().PgConn().Conn()
	if !c.live.add(pc.sock) {
		pc.Conn.Close()
		return nil, errConnectorClosed
	}
	return pc, nil
}

// Close closes the sockets of the connections still open.
func (c *pgxConnector) Close() error { return c.live.Close() }

// pgxConn is pgx's connection with ExecContext and QueryContext returning
// driver.ErrBadConn only when nothing was sent, and with IsValid. The rest, Conn
// (which PgxConn unwraps, for COPY) included, is pgx's own.
type pgxConn struct {
	*stdlib.Conn
	live *liveSockets
	sock net.Conn
}

func (c *pgxConn) Close() error {
	c.live.remove(c.sock)
	return c.Conn.Close()
}

var _ driver.Validator = (*pgxConn)(nil)

// IsValid tells database/sql, when a connection is given back to the pool,
// whether pgx closed it (a context that ended mid-statement, a broken socket).
// pgx's driver does not implement driver.Validator, so database/sql would keep
// closed connections in the pool; each then fails its next caller's first
// attempt with driver.ErrBadConn, and with a few of them in a busy pool
// database/sql's retries run out and the error reaches a caller whose context
// is fine.
func (c *pgxConn) IsValid() bool { return !c.Conn.Conn().IsClosed() }

func (c *pgxConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.Conn.Conn().IsClosed() {
		return nil, driver.ErrBadConn
	}
	res, err := c.Conn.ExecContext(ctx, query, args)
	if errors.Is(err, driver.ErrBadConn) {
		return nil, ErrConnLost
	}
	return res, err
}

// Ping keeps the context's error: pgx's driver answers any failed ping with a
// bare driver.ErrBadConn, so a ping cut short by its deadline would not say so.
func (c *pgxConn) Ping(ctx context.Context) error {
	return withCtx(ctx, c.Conn.Ping(ctx))
}

func (c *pgxConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.Conn.Conn().IsClosed() {
		return nil, driver.ErrBadConn
	}
	rows, err := c.Conn.QueryContext(ctx, query, args)
	if errors.Is(err, driver.ErrBadConn) {
		return nil, ErrConnLost
	}
	return rows, err
}
