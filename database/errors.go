package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	"modernc.org/sqlite"

	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/schema"
)

// Sentinel errors. Match them with errors.Is on any error returned by this package
// or passed through MapError; the driver's own error stays reachable with errors.As
// (*pgconn.PgError for pgx, *pq.Error for lib/pq, *sqlite.Error for SQLite).
var (
	// ErrNotFound is returned when a row that was asked for does not exist.
	ErrNotFound = errors.New("database: not found")
	// ErrConflict is returned when a write violates a unique constraint.
	ErrConflict = errors.New("database: conflict")
	// ErrInvalidReference is returned when a write violates a foreign key: it points
	// at a row that does not exist, or deletes a row still pointed at.
	ErrInvalidReference = errors.New("database: invalid reference")
	// ErrCheck is returned when a write violates a CHECK or NOT NULL constraint.
	ErrCheck = errors.New("database: check constraint violated")
	// ErrInvalid is returned when input fails validation in Go, before any SQL is
	// sent. The schema package's sentinels (schema.ErrTooLong, ...) say which rule.
	ErrInvalid = errors.New("database: invalid input")
	// ErrTimeout is returned when a statement, lock or idle transaction ran out of
	// time on the server (statement_timeout, lock_timeout,
	// idle_in_transaction_session_timeout, SQLite's busy timeout) or the context's
	// deadline passed.
	ErrTimeout = errors.New("database: timeout")
	// ErrSerialization is returned when a transaction lost a serialization conflict
	// or a deadlock (SQLSTATE 40001, 40P01). Running it again may succeed; WithTx
	// does so with WithRetry.
	ErrSerialization = errors.New("database: serialization failure")
	// ErrNestedTx is returned by WithTx when called with a context that already
	// carries a transaction.
	ErrNestedTx = errors.New("database: transaction already in progress")
	// ErrBadConn is returned when the connection broke while in use: the server went
	// away or the network failed. The statement may or may not have run.
	ErrBadConn = errors.New("database: connection lost")
)

// Error is a classified database error. Kind is one of the sentinels above;
// errors.Is(err, Kind) holds, and Unwrap gives the driver's error.
type Error struct {
	// Kind is the sentinel that classifies the error.
	Kind error
	// Code is the PostgreSQL SQLSTATE or the SQLite extended result code, as text.
	Code string
	// Constraint names the violated constraint, when the server said which.
	Constraint string
	// Err is the error as the driver or ent returned it.
	Err error
}

func (e *Error) Error() string {
	msg := e.Kind.Error()
	if e.Constraint != "" {
		msg += " (" + e.Constraint + ")"
	}
	return msg + ": " + e.Err.Error()
}

// Is reports whether target is the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the driver's error.
func (e *Error) Unwrap() error { return e.Err }

// MapError classifies err: it returns an *Error whose Kind is one of the sentinels
// when err is a known database failure, and err itself otherwise (nil for nil).
// The decision uses SQLSTATE codes and SQLite result codes, never message text.
// Errors already mapped are returned unchanged.
func MapError(err error) error { return mapError(err) }

func mapError(err error) error {
	if err == nil {
		return nil
	}
	var mapped *Error
	if errors.As(err, &mapped) {
		return err
	}
	switch {
	case errors.Is(err, sql.ErrNoRows), ent.IsNotFound(err):
		return &Error{Kind: ErrNotFound, Err: err}
	case ent.IsValidationError(err):
		return &Error{Kind: ErrInvalid, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: ErrTimeout, Err: err}
	case errors.Is(err, driver.ErrBadConn):
		return &Error{Kind: ErrBadConn, Err: err}
	}
	var fe *schema.FieldError
	if errors.As(err, &fe) {
		return &Error{Kind: ErrInvalid, Err: err}
	}
	if code, ok := sqlState(err); ok {
		if kind := pgKind(code); kind != nil {
			return &Error{Kind: kind, Code: code, Constraint: pgConstraint(err), Err: err}
		}
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		if kind := sqliteKind(se.Code()); kind != nil {
			return &Error{Kind: kind, Code: fmt.Sprint(se.Code()), Err: err}
		}
	}
	return err
}

// pgKind classifies a SQLSTATE (PostgreSQL documentation, appendix A).
func pgKind(code string) error {
	switch code {
	case "23505": // unique_violation
		return ErrConflict
	case "23503": // foreign_key_violation
		return ErrInvalidReference
	case "23514", "23502": // check_violation, not_null_violation
		return ErrCheck
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return ErrSerialization
	case "57014", "55P03", "25P03": // query_canceled (statement_timeout), lock_not_available, idle_in_transaction_session_timeout
		return ErrTimeout
	case "57P01", "57P02", "57P03", "08000", "08003", "08006": // admin/crash shutdown, cannot connect now, connection exceptions
		return ErrBadConn
	}
	return nil
}

func pgConstraint(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.ConstraintName
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Constraint
	}
	return ""
}

// SQLite extended result codes (https://sqlite.org/rescode.html).
const (
	sqliteBusy                 = 5
	sqliteLocked               = 6
	sqliteInterrupt            = 9
	sqliteConstraintCheck      = 275
	sqliteConstraintForeignKey = 787
	sqliteConstraintNotNull    = 1299
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintTrigger    = 1811
	sqliteConstraintUnique     = 2067
)

func sqliteKind(code int) error {
	switch code {
	case sqliteConstraintUnique, sqliteConstraintPrimaryKey:
		return ErrConflict
	case sqliteConstraintForeignKey:
		return ErrInvalidReference
	case sqliteConstraintTrigger:
		// SQLite enforces ON DELETE/UPDATE RESTRICT with an internal trigger that
		// raises this code; chatdb's schema defines no triggers of its own.
		return ErrInvalidReference
	case sqliteConstraintCheck, sqliteConstraintNotNull:
		return ErrCheck
	}
	switch code & 0xff { // primary result code
	case sqliteBusy, sqliteLocked, sqliteInterrupt:
		return ErrTimeout
	}
	return nil
}

// scrub returns err with every occurrence of a secret removed from its text, as a
// last line of defence for driver errors that echo connection parameters. The
// original stays reachable with errors.As/Is.
func scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "xxxxx")
		}
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
