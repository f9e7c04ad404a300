package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/chatdb/chatdb/ent"
)

// TxOption configures WithTx.
type TxOption func(*txOptions)

type txOptions struct {
	isolation   sql.IsolationLevel
	readOnly    bool
	attempts    int
	baseBackoff time.Duration
	maxBackoff  time.Duration
}

// WithIsolation runs the transaction at the given isolation level. The default is
// the server's (READ COMMITTED on PostgreSQL; SQLite transactions are always
// serializable and accept only the default and sql.LevelSerializable).
func WithIsolation(level sql.IsolationLevel) TxOption {
	return func(o *txOptions) { o.isolation = level }
}

// ReadOnly runs the transaction read-only: PostgreSQL refuses writes in it.
func ReadOnly() TxOption {
	return func(o *txOptions) { o.readOnly = true }
}

// WithRetry runs the whole function again, up to attempts times in all, when the
// transaction fails with ErrSerialization (SQLSTATE 40001 or 40P01), waiting a
// jittered backoff that doubles from 10ms up to 1s between attempts. The function
// must be safe to run more than once: it must not have effects outside the
// transaction. attempts below 1 mean 1 (no retry), which is the default. Other
// errors, ErrBadConn and ErrCommitUnknown among them, are returned at once.
func WithRetry(attempts int) TxOption {
	return func(o *txOptions) { o.attempts = max(attempts, 1) }
}

type txKey struct{}

// TxContext returns a context that marks a transaction in progress, so that WithTx
// called with it, or with a context derived from it, returns ErrNestedTx. WithTx
// marks the context it passes to fn in WithTxContext this way.
func TxContext(ctx context.Context, tx *ent.Tx) context.Context {
	return context.WithValue(ent.NewTxContext(ctx, tx), txKey{}, tx)
}

// WithTx runs fn in a transaction and commits it when fn returns nil.
//
// It rolls back when fn returns an error (returned, with a failed rollback joined
// to it), when fn panics (the panic goes on after the rollback), and when ctx is
// done before the commit (ctx.Err() is returned; nothing is committed). A commit
// the server refused (a serialization failure, a deferred constraint) is
// returned, mapped as MapError does: nothing was committed. A commit whose
// answer never came back, because the connection broke or ctx ended while the
// COMMIT was in flight, returns ErrCommitUnknown: the transaction may have
// committed. WithTx never runs fn again after that, whatever the options; the
// caller decides, by reading what is stored or by retrying only work that is
// idempotent. With WithRetry, serialization failures and deadlocks run fn again
// in a new transaction.
//
// Calling WithTx with a context that carries a transaction (see TxContext) returns
// ErrNestedTx instead of opening a second, independent transaction. fn does not
// receive a context; use WithTxContext for one that carries the transaction.
//
// The transaction runs on the primary, whatever Config.ReplicaURLs, and
// unless ReadOnly it counts as a write of ctx's consistency session
// (NoteWrite, WithToken).
//
// Cost: BEGIN and COMMIT (or ROLLBACK) are one round trip each, on top of fn's.
func (db *DB) WithTx(ctx context.Context, fn func(tx *ent.Tx) error, opts ...TxOption) error {
	return db.WithTxContext(ctx, func(_ context.Context, tx *ent.Tx) error { return fn(tx) }, opts...)
}

// WithTxContext is WithTx for functions that take a context: fn receives ctx
// marked with the transaction, so that code it calls that would start another
// transaction with that context gets ErrNestedTx instead.
func (db *DB) WithTxContext(ctx context.Context, fn func(ctx context.Context, tx *ent.Tx) error, opts ...TxOption) error {
	if InTx(ctx) {
		return ErrNestedTx
	}
	o := txOptions{attempts: 1, baseBackoff: 10 * time.Millisecond, maxBackoff: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.readOnly {
		NoteWrite(ctx)
	}
	backoff := o.baseBackoff
	for attempt := 1; ; attempt++ {
		err := db.runTx(ctx, fn, &o)
		if err == nil || attempt >= o.attempts || !errors.Is(err, ErrSerialization) {
			return err
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		noteTxRetry(ctx, attempt+1, sleep, err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(sleep):
		}
		backoff = min(2*backoff, o.maxBackoff)
	}
}

// InTx reports whether ctx carries a transaction (see TxContext).
func InTx(ctx context.Context) bool {
	if ctx.Value(txKey{}) != nil {
		return true
	}
	return ent.TxFromContext(ctx) != nil
}

func (db *DB) runTx(ctx context.Context, fn func(context.Context, *ent.Tx) error, o *txOptions) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	tx, err := db.client.BeginTx(ctx, &sql.TxOptions{Isolation: o.isolation, ReadOnly: o.readOnly && db.dialect == Postgres})
	if err != nil {
		return fmt.Errorf("database: begin: %w", mapBeginError(err))
	}
	return endTx(ctx, tx, func() error { return fn(TxContext(ctx, tx), tx) })
}

// WithConnTx is WithTx for work that needs the transaction's connection as well,
// such as CopyFrom, which an ent.Tx does not expose: fn gets the *sql.Conn the
// transaction runs on and an ent client bound to the transaction, and the same
// commit, rollback, panic, cancellation and nesting rules as WithTx hold (no
// options: it runs at the default isolation, without retries).
//
// Cost: BEGIN and COMMIT (or ROLLBACK), one round trip each, on top of fn's.
func (db *DB) WithConnTx(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn, client *ent.Client) error) error {
	if InTx(ctx) {
		return ErrNestedTx
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	NoteWrite(ctx)
	start := time.Now()
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("database: begin: %w", mapError(err))
	}
	notePoolWait(ctx, start)
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("database: begin: %w", mapBeginError(err))
	}
	db.logStatement(ctx, "BEGIN")
	client := db.newClient(entsql.NewDriver(db.dialect, entsql.Conn{ExecQuerier: tx}))
	return endTx(ctx, loggedTx{Tx: tx, db: db, ctx: ctx}, func() error { return fn(context.WithValue(ctx, txKey{}, tx), conn, client) })
}

// loggedTx logs the end of a WithConnTx transaction as ent's debug driver
// logs the end of the client's transactions, when Config.LogQueries asks.
type loggedTx struct {
	*sql.Tx
	db  *DB
	ctx context.Context
}

func (t loggedTx) Commit() error {
	t.db.logStatement(t.ctx, "COMMIT")
	return t.Tx.Commit()
}

func (t loggedTx) Rollback() error {
	t.db.logStatement(t.ctx, "ROLLBACK")
	return t.Tx.Rollback()
}

// endTx runs fn in the open transaction tx and ends it: commit when fn returns
// nil and ctx is not done, rollback otherwise, and rollback then re-panic when fn
// panics (or rollback when it calls runtime.Goexit, as t.FailNow does: without
// it the connection stays taken until ctx is done, if ever).
func endTx(ctx context.Context, tx interface {
	Commit() error
	Rollback() error
}, fn func() error) error {
	returned := false
	defer func() {
		if returned {
			return
		}
		_ = tx.Rollback()
		if p := recover(); p != nil {
			panic(p)
		}
	}()
	err := fn()
	returned = true
	if err != nil {
		return joinRollback(mapError(err), tx.Rollback())
	}
	if err := ctx.Err(); err != nil {
		// database/sql rolls back by itself once ctx is done; Rollback then says
		// ErrTxDone, which is not news.
		return joinRollback(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		if !commitOutcomeKnown(err) {
			// Wrap the driver's error, not its classification: an unknown
			// outcome must not match ErrBadConn (see ErrCommitUnknown).
			return fmt.Errorf("database: commit: %w", &Error{Kind: ErrCommitUnknown, Err: err})
		}
		return fmt.Errorf("database: commit: %w", mapError(err))
	}
	return nil
}

func joinRollback(err, rbErr error) error {
	if rbErr == nil || errors.Is(rbErr, sql.ErrTxDone) {
		return err
	}
	return errors.Join(err, fmt.Errorf("database: rollback: %w", mapError(rbErr)))
}

// mapBeginError classifies an error of BEGIN as MapError does, and one more:
// a server in recovery (a standby, or a primary that a failover demoted)
// refuses lib/pq's BEGIN READ WRITE, and a serializable BEGIN of either
// driver, with 0A000 feature_not_supported. That code means other things
// elsewhere; at BEGIN it means the server takes no writes: ErrReadOnly, as
// the 25006 of a write on pgx's plain BEGIN.
func mapBeginError(err error) error {
	if code, ok := sqlState(err); ok && code == "0A000" {
		return &Error{Kind: ErrReadOnly, Code: code, Err: err}
	}
	return mapError(err)
}
