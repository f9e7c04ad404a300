package database

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	"modernc.org/sqlite"

	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/internal/pgdriver"
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
	// sent (see MapError). The schema package's sentinels (schema.ErrTooLong,
	// ...) say which rule.
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
	// ErrBadConn is returned when the connection broke while in use, or could not
	// be made: the server went away, restarted or refused it, or the network
	// failed. The statement may or may not have run; a transaction that had not
	// sent its COMMIT did not commit (the server rolls it back). Neither database/sql
	// nor WithTx runs a statement again after it may have reached the server.
	ErrBadConn = errors.New("database: connection lost")
	// ErrCommitUnknown is returned by WithTx when the connection broke while its
	// COMMIT was in flight: the transaction may have committed or not, and only
	// the database can tell. It is never retried (not even by WithRetry) and does
	// not match ErrBadConn, so that a loop that retries lost connections does not
	// run a committed transaction twice. Retry only work that is idempotent (such
	// as an insert keyed by an ID made before the first attempt), or read back
	// what is stored first.
	ErrCommitUnknown = errors.New("database: commit outcome unknown")
	// ErrPermission is returned when the database role may not do what was asked
	// (SQLSTATE 42501, insufficient_privilege): a write with a read-only role, or
	// DDL with the application role (see RELIABILITY.md, least privilege).
	ErrPermission = errors.New("database: permission denied")
	// ErrClosed is returned when a call starts after Close closed the pool
	// (database/sql's "sql: database is closed", classified).
	ErrClosed = errors.New("database: closed")
	// ErrReadOnly is returned when a write is sent where the server accepts
	// none (SQLSTATE 25006, read_only_sql_transaction): inside a ReadOnly
	// transaction, or on a standby, which is also what a demoted primary
	// answers during a failover. Retry on the new primary, not on the same
	// connection. WithTx also returns it when such a server refuses the BEGIN
	// itself (0A000: lib/pq's BEGIN READ WRITE, a serializable BEGIN).
	ErrReadOnly = errors.New("database: read-only transaction")
	// ErrSchema is returned when a statement names a table or column the
	// database does not have (SQLSTATE 42P01, 42703): the schema is behind the
	// code. Apply the migrations (chatdb migrate apply, or Migrate).
	ErrSchema = errors.New("database: table or column missing: the schema is behind the code; apply the migrations")
	// ErrTxAborted is returned when a statement or the COMMIT of a transaction
	// comes after one of its statements failed (SQLSTATE 25P02,
	// in_failed_sql_transaction): the server rolled the transaction back at
	// that error, which a function passed to WithTx dropped. Nothing of the
	// transaction is stored.
	ErrTxAborted = errors.New("database: transaction aborted by an earlier error")
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
	// label, when set, is said in place of Kind's text: a connection refused,
	// a host name that did not resolve or a certificate that did not verify is
	// ErrBadConn (could not be made), but not "connection lost".
	label string
}

func (e *Error) Error() string {
	msg := e.Kind.Error()
	if e.label != "" {
		msg = e.label
	}
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
//
// Input refused in Go before any SQL was sent is ErrInvalid: ent's validation
// errors, and an error whose chain holds one with a method InvalidInput() bool
// that reports true (the first such error in the chain decides), as
// schema.FieldError has. The method, like pgconn's SafeToRetry, lets packages
// above this one say so without this package importing their types.
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
	case errors.Is(err, errSQLClosed):
		return &Error{Kind: ErrClosed, Err: err}
	case errors.Is(err, pgx.ErrTxCommitRollback), errors.Is(err, pq.ErrInFailedTransaction):
		// The drivers' own words, at COMMIT, for 25P02: the server answered
		// the COMMIT of a failed transaction with ROLLBACK (pgx), or the
		// driver rolled back instead of sending it (lib/pq).
		return &Error{Kind: ErrTxAborted, Err: err}
	}
	var invalid interface{ InvalidInput() bool }
	if errors.As(err, &invalid) && invalid.InvalidInput() {
		return &Error{Kind: ErrInvalid, Err: err}
	}
	if code, ok := sqlState(err); ok {
		if code == "57014" && errors.Is(err, context.Canceled) {
			// lib/pq reports the cancel request it sent for a cancelled
			// context as query_canceled; pgx reports none. The caller's own
			// cancellation is not a timeout.
			return err
		}
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
		return err
	}
	switch {
	case tlsVerifyError(err):
		return &Error{Kind: ErrBadConn, Err: err, label: "database: TLS certificate did not verify"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &Error{Kind: ErrBadConn, Err: err, label: "database: connection refused"}
	case errors.As(err, new(*net.DNSError)):
		return &Error{Kind: ErrBadConn, Err: err, label: "database: host name did not resolve"}
	}
	if kind := networkKind(err); kind != nil {
		return &Error{Kind: kind, Err: err}
	}
	return err
}

// errSQLClosed is database/sql's error for a call on a closed *sql.DB. The
// package does not export it: provoking it once gives the value itself, to
// match with errors.Is rather than by its text.
var errSQLClosed = func() error {
	db := sql.OpenDB(noConnector{})
	db.Close()
	return db.Ping()
}()

// noConnector is the connector of a pool that is closed before it connects.
type noConnector struct{}

func (noConnector) Connect(context.Context) (driver.Conn, error) { return nil, driver.ErrBadConn }
func (noConnector) Driver() driver.Driver                        { return nil }

// networkKind classifies an error that did not come from the server: the
// connection could not be made, broke, or timed out. Each driver reports these
// its own way: pgx as *pgconn.ConnectError, pgconn.ErrConnClosed or
// io.ErrUnexpectedEOF, lib/pq as driver.ErrBadConn or a *net.OpError (and,
// when it could not connect, pgdriver.ConnectError), both as
// net.Error for dial failures and timeouts, and the wrappers around them as
// pgdriver.ErrConnLost when the statement may have run.
func networkKind(err error) error {
	var connect *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.Is(err, pgdriver.ErrConnLost),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return ErrBadConn
	case errors.As(err, &netErr) && netErr.Timeout():
		return ErrTimeout
	case errors.As(err, &netErr), errors.As(err, &connect), errors.As(err, new(*pgdriver.ConnectError)):
		return ErrBadConn
	}
	return nil
}

// commitOutcomeKnown reports whether a failed COMMIT certainly did not commit:
// the server answered with an error (a serialization failure or a deferred
// constraint, say), or the driver or database/sql refused before sending it.
// A lost connection, a fatal server error (sent, for instance, by a server
// shutting down, possibly after the commit was durable) or a context that ended
// while the COMMIT was in flight leave the outcome unknown.
func commitOutcomeKnown(err error) bool {
	if errors.Is(err, sql.ErrTxDone) || errors.Is(err, pgx.ErrTxCommitRollback) || errors.Is(err, pq.ErrInFailedTransaction) {
		return true
	}
	if code, ok := sqlState(err); ok && code == "25P03" {
		// idle_in_transaction_session_timeout ended the session before the
		// COMMIT arrived: the server rolled back. pgx reports it; lib/pq reports
		// every fatal error as driver.ErrBadConn, whose outcome is unknown.
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return !fatalServerError(pgErr.Code, pgErr.Severity)
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return !fatalServerError(string(pqErr.Code), pqErr.Severity)
	}
	return false
}

// fatalServerError reports whether a server error ended the session rather than
// the statement.
func fatalServerError(code, severity string) bool {
	if severity == "FATAL" || severity == "PANIC" || strings.HasPrefix(code, "08") {
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
		return true
	}
	return false
}

// pgKind classifies a SQLSTATE (PostgreSQL documentation, appendix A). It is
// the one table of server errors; a code not here stays unclassified. Of those
// chatdb can provoke, left out on purpose: 42601 and other syntax errors (a bug
// in a statement, to fix, not to handle) and 08P01 protocol_violation (both
// drivers refuse what would provoke it, more than 65535 parameters, before
// sending; a pooler such as PgBouncer sends it for failures of its own).
func pgKind(code string) error {
	switch code {
	case "23505": // unique_violation
		return ErrConflict
	case "23503": // foreign_key_violation
		return ErrInvalidReference
	case "23514", "23502": // check_violation, not_null_violation
		return ErrCheck
	case "22021", "22P05", "22008", // character_not_in_repertoire, untranslatable_character, datetime_field_overflow
		"22P02", "22003", "22007", "22001": // invalid_text_representation, numeric_value_out_of_range, invalid_datetime_format, string_data_right_truncation
		// Input the validators should have refused; still bad input, not a fault.
		return ErrInvalid
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return ErrSerialization
	case "57014", "55P03", "25P03": // query_canceled (statement_timeout), lock_not_available, idle_in_transaction_session_timeout
		// 57014 is also an operator's pg_cancel_backend, which PostgreSQL
		// reports with the same code (only the text differs). A cancelled
		// context is not: see mapError.
		return ErrTimeout
	case "42501": // insufficient_privilege
		return ErrPermission
	case "25006": // read_only_sql_transaction: a ReadOnly transaction, a standby, a demoted primary
		return ErrReadOnly
	case "42P01", "42703": // undefined_table, undefined_column
		return ErrSchema
	case "25P02": // in_failed_sql_transaction
		return ErrTxAborted
	case "57P01", "57P02", "57P03", "08000", "08003", "08006", // admin/crash shutdown, cannot connect now, connection exceptions
		"53300": // too_many_connections: the server refused a new connection; nothing ran
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

// Cause says why a connection could not be made or broke, as ConnectCause
// tells it. The empty Cause means none of these (or no error).
type Cause string

// Causes, the values of ConnectCause.
const (
	// CauseRefused: nothing accepted the connection at that address
	// (ECONNREFUSED): the server is down, or the host or port is wrong.
	CauseRefused Cause = "refused"
	// CauseTimeout: the server did not answer in time (ConnectTimeout, or the
	// context's deadline).
	CauseTimeout Cause = "timeout"
	// CauseDNS: the host name did not resolve.
	CauseDNS Cause = "dns"
	// CauseTLS: the server's certificate did not verify (unknown authority,
	// another name, expired).
	CauseTLS Cause = "tls"
	// CauseAuth: the server refused the role or its password (SQLSTATE 28000,
	// 28P01), or pg_hba.conf has no entry for it.
	CauseAuth Cause = "auth"
	// CauseNoDatabase: the database does not exist (3D000).
	CauseNoDatabase Cause = "no database"
	// CauseTooManyConnections: the server or the role has no connection slot
	// free (53300).
	CauseTooManyConnections Cause = "too many connections"
	// CauseStarting: the server is starting up, shutting down or in recovery
	// (57P03).
	CauseStarting Cause = "starting"
	// CauseLost: a connection that was made broke (reset, closed by the
	// server, ended by an administrator or a restart).
	CauseLost Cause = "lost"
)

// ConnectCause returns why err, an error of Open (a *ConnectError) or of any
// call (ErrBadConn), says a connection could not be made or broke, for a
// message to a person or a decision: CauseRefused and CauseTimeout may pass by
// themselves, CauseAuth, CauseNoDatabase and CauseTLS need the configuration
// fixed. It decides on SQLSTATEs and error types, never on text.
func ConnectCause(err error) Cause {
	if err == nil {
		return ""
	}
	if code, ok := sqlState(err); ok {
		switch code {
		case "28000", "28P01": // invalid_authorization_specification, invalid_password
			return CauseAuth
		case "3D000": // invalid_catalog_name
			return CauseNoDatabase
		case "53300":
			return CauseTooManyConnections
		case "57P03":
			return CauseStarting
		}
		if pgKind(code) == ErrBadConn { // shutdown, connection exceptions
			return CauseLost
		}
	}
	var (
		netErr net.Error
		dnsErr *net.DNSError
	)
	switch {
	case tlsVerifyError(err):
		return CauseTLS
	case errors.As(err, &dnsErr):
		return CauseDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return CauseRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return CauseTimeout
	case errors.Is(err, ErrBadConn), networkKind(err) == ErrBadConn:
		return CauseLost
	}
	return ""
}

// tlsVerifyError reports whether err is a certificate that did not verify
// (wrong name, unknown authority, expired): it will not verify on the next
// attempt either.
func tlsVerifyError(err error) bool {
	var (
		cve  *tls.CertificateVerificationError
		host x509.HostnameError
		ca   x509.UnknownAuthorityError
		inv  x509.CertificateInvalidError
	)
	return errors.As(err, &cve) || errors.As(err, &host) || errors.As(err, &ca) || errors.As(err, &inv)
}
