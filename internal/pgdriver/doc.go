// Package pgdriver wraps the connectors of the two PostgreSQL drivers chatdb
// supports, pgx's database/sql driver and github.com/lib/pq, so that a
// *sql.DB over either is safe in the same ways:
//
//   - database/sql never runs a statement again after it may have reached the
//     server. Both drivers report some connections lost mid-statement as
//     driver.ErrBadConn, which database/sql answers by running the statement
//     again on another connection; the wrappers return ErrConnLost instead.
//   - a connection that sat idle is pinged before it is handed out again, and
//     a dead one replaced without the caller seeing an error (pgx does this
//     itself; the lib/pq wrapper adds it), and a connection the driver closed
//     is not put back in the pool (the pgx wrapper adds driver.Validator).
//   - a call whose context ended returns, and says so: its error matches the
//     context's with errors.Is and the driver's with errors.As. With lib/pq,
//     whose cancel request may wait for ever on a network that no longer
//     answers, the wrapper breaks the socket a grace period after the context
//     ended.
//
// Package database is its only user; it classifies what the wrappers return
// (ErrConnLost is database.ErrBadConn).
//
//	pc, err := pgx.ParseConfig(url)
//	if err != nil {
//		return err
//	}
//	db := sql.OpenDB(pgdriver.Pgx(*pc, time.Second))
//
//	c, err := pq.NewConnector(url)
//	if err != nil {
//		return err
//	}
//	db := sql.OpenDB(pgdriver.PQ(c, time.Second))
package pgdriver
