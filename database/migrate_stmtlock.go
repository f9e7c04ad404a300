package database

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"ariga.io/atlas/sql/migrate"
)

// Per-statement lock timeouts (PostgreSQL). An ALTER TABLE waiting for its
// ACCESS EXCLUSIVE lock behind a long transaction queues every later reader
// and writer of the table behind itself: the migration stalls traffic without
// having done anything. So each migration statement runs with a lock_timeout;
// one that cannot get its lock in time gives up (SQLSTATE 55P03), lets the
// queue drain, and is tried again after a backoff, a bounded number of times.
const (
	// DefaultStatementLockTimeout is the lock_timeout of each migration
	// statement unless WithStatementLockTimeout or the file's
	// `-- chatdb:lock_timeout` directive says otherwise.
	DefaultStatementLockTimeout = 5 * time.Second
	// DefaultStatementLockRetries is how many times a statement that timed
	// out waiting for its lock is tried again unless
	// WithStatementLockRetries says otherwise.
	DefaultStatementLockRetries = 5
	// stmtLockDirective is the file directive that sets the lock timeout of
	// one file's statements, such as `-- chatdb:lock_timeout 10s` (0 or off:
	// none). The Atlas CLI takes it for a comment.
	stmtLockDirective = "-- chatdb:lock_timeout"
	// stmtLockMaxText bounds the statement text an error carries.
	stmtLockMaxText = 200
)

// ErrStatementLockTimeout is returned by Migrate when a migration statement
// could not get its lock within its lock timeout on any of its tries. The
// error is a *MigrationError whose Err is a *StatementLockTimeoutError;
// errors.Is(err, ErrMigration) and errors.Is(err, ErrTimeout) hold too.
var ErrStatementLockTimeout = errors.New("database: migration statement could not get its lock")

// StatementLockTimeoutError says which statement of which file could not get
// its lock, and for how long it tried. errors.Is(err,
// ErrStatementLockTimeout) holds, and errors.Is(err, ErrTimeout) through the
// database's error.
type StatementLockTimeoutError struct {
	// File is the migration file's name.
	File string
	// Stmt is the statement's text, cut to 200 bytes.
	Stmt string
	// Timeout is the lock timeout of each try.
	Timeout time.Duration
	// Tries is how many times the statement was tried.
	Tries int
	// Err is the database's error of the last try (lock_not_available).
	Err error
}

func (e *StatementLockTimeoutError) Error() string {
	return fmt.Sprintf("%v within lock_timeout %s on any of %d tries (another transaction holds a conflicting lock on the table: apply again when it ends, or raise the timeout with --statement-lock-timeout or `%s <duration>` in the file): %v",
		ErrStatementLockTimeout, e.Timeout, e.Tries, stmtLockDirective, e.Err)
}

// Is reports whether target is ErrStatementLockTimeout.
func (e *StatementLockTimeoutError) Is(target error) bool { return target == ErrStatementLockTimeout }

// Unwrap returns the database's error.
func (e *StatementLockTimeoutError) Unwrap() error { return e.Err }

// WithStatementLockTimeout sets the lock_timeout each migration statement
// runs with on PostgreSQL (default DefaultStatementLockTimeout); a file's
// `-- chatdb:lock_timeout <duration>` directive overrides it for that file.
// d == 0 sets none: statements wait for their locks for as long as the
// server's own lock_timeout allows. SQLite has no lock_timeout and ignores
// it: its busy timeout (Config.SQLiteBusyTimeout) bounds the waits there.
func WithStatementLockTimeout(d time.Duration) MigrateOption {
	return func(o *migrateOptions) { o.stmtLockTimeout, o.stmtLockTimeoutSet = max(d, 0), true }
}

// WithStatementLockRetries sets how many times a statement that timed out
// waiting for its lock is tried again (default DefaultStatementLockRetries;
// 0: not again), with a jittered backoff that doubles from 200ms up to 5s.
func WithStatementLockRetries(n int) MigrateOption {
	return func(o *migrateOptions) { o.stmtLockRetries, o.stmtLockRetriesSet = max(n, 0), true }
}

// stmtLockPolicy is the lock timeout and retries of one file's statements.
type stmtLockPolicy struct {
	file    string
	timeout time.Duration
	retries int
}

// stmtLockPolicyFor works out f's policy from the options and the file's
// directive. A malformed directive is a *MigrationError (ErrInvalid).
func stmtLockPolicyFor(f migrate.File, o *migrateOptions) (stmtLockPolicy, error) {
	p := stmtLockPolicy{file: f.Name(), timeout: DefaultStatementLockTimeout, retries: DefaultStatementLockRetries}
	if o.stmtLockTimeoutSet {
		p.timeout = o.stmtLockTimeout
	}
	if o.stmtLockRetriesSet {
		p.retries = o.stmtLockRetries
	}
	d, ok, err := stmtLockFileDirective(f.Bytes())
	if err != nil {
		return p, &MigrationError{File: f.Name(), Err: err}
	}
	if ok {
		p.timeout = d
	}
	return p, nil
}

// stmtLockFileDirective reads `-- chatdb:lock_timeout <duration>` from the
// comments at the top of a file, before its first statement.
func stmtLockFileDirective(b []byte) (time.Duration, bool, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "--") {
			break
		}
		rest, ok := strings.CutPrefix(line, stmtLockDirective)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		v := strings.TrimSpace(rest)
		if v == "off" || v == "0" {
			return 0, true, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, false, fmt.Errorf("%w: %s %q: want a duration such as 10s, or 0 or off for none", ErrInvalid, stmtLockDirective, v)
		}
		return d, true, nil
	}
	return 0, false, nil
}

// stmtLockExec is the ExecQuerier Migrate gives Atlas's driver: with a policy
// set, each statement Atlas executes (the file's, one by one) runs under the
// lock timeout and is retried when it times out. In a file's transaction a
// failed statement would abort the transaction, so each runs under a
// SAVEPOINT and a timed-out try rolls back to it, keeping what the statements
// before it did, and the locks they took. Outside a transaction (txmode none)
// each statement is on its own: the lock timeout is SET on the session before
// it, and reset by the caller after the file.
type stmtLockExec struct {
	q      execQuerier
	inTx   bool
	db     *DB
	policy *stmtLockPolicy
}

type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (x *stmtLockExec) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return x.q.QueryContext(ctx, query, args...)
}

// start sets the policy for the file about to run; in a transaction it SETs
// the lock timeout LOCAL to it.
func (x *stmtLockExec) start(ctx context.Context, p stmtLockPolicy) error {
	if x.db.dialect != Postgres {
		return nil
	}
	x.policy = &p
	if !x.inTx || p.timeout == 0 {
		return nil
	}
	if _, err := x.q.ExecContext(ctx, lockTimeoutSQL("SET LOCAL", p.timeout)); err != nil {
		return &MigrationError{File: p.file, Err: fmt.Errorf("set lock_timeout: %w", mapError(err))}
	}
	return nil
}

func lockTimeoutSQL(set string, d time.Duration) string {
	ms := d.Milliseconds()
	if d > 0 && ms == 0 {
		ms = 1
	}
	return fmt.Sprintf("%s lock_timeout = %d", set, ms)
}

func (x *stmtLockExec) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	p := x.policy
	if p == nil || p.timeout == 0 {
		return x.q.ExecContext(ctx, query, args...)
	}
	timeout := p.timeout
	if !x.inTx && strings.Contains(strings.ToUpper(query), "CONCURRENTLY") {
		// A concurrent build's lock does not block reads or writes, and a
		// build that times out waiting for older transactions leaves an
		// INVALID index that its retry would collide with: no timeout.
		timeout = 0
	}
	wait := 200 * time.Millisecond
	for try := 1; ; try++ {
		res, err := x.try(ctx, query, timeout, args)
		if err == nil || timeout == 0 {
			return res, err
		}
		if code, _ := sqlState(err); code != "55P03" {
			return nil, err
		}
		if try > p.retries {
			return nil, &StatementLockTimeoutError{File: p.file, Stmt: truncateStmt(query), Timeout: timeout, Tries: try, Err: mapError(err)}
		}
		sleep := wait/2 + rand.N(wait/2+1)
		x.db.logger.WarnContext(ctx, "database: migration statement timed out waiting for its lock; trying again",
			slog.String("file", p.file), slog.Int("try", try), slog.Duration("lock_timeout", timeout), slog.Duration("backoff", sleep))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (waiting to try again after lock_timeout)", mapError(ctx.Err()))
		case <-time.After(sleep):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// try runs query once under timeout: under a savepoint in a transaction, after
// a session SET outside one.
func (x *stmtLockExec) try(ctx context.Context, query string, timeout time.Duration, args []any) (sql.Result, error) {
	if !x.inTx {
		if _, err := x.q.ExecContext(ctx, lockTimeoutSQL("SET", timeout)); err != nil {
			return nil, err
		}
		return x.q.ExecContext(ctx, query, args...)
	}
	if _, err := x.q.ExecContext(ctx, "SAVEPOINT chatdb_migrate_stmt"); err != nil {
		return nil, err
	}
	res, err := x.q.ExecContext(ctx, query, args...)
	if err != nil {
		if _, rbErr := x.q.ExecContext(ctx, "ROLLBACK TO SAVEPOINT chatdb_migrate_stmt"); rbErr != nil {
			return nil, errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rbErr))
		}
		return nil, err
	}
	if _, err := x.q.ExecContext(ctx, "RELEASE SAVEPOINT chatdb_migrate_stmt"); err != nil {
		return nil, err
	}
	return res, nil
}

// finish resets the session's lock timeout after a file run outside a
// transaction.
func (x *stmtLockExec) finish(ctx context.Context) error {
	if x.inTx || x.policy == nil || x.policy.timeout == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := x.q.ExecContext(ctx, "RESET lock_timeout"); err != nil {
		return fmt.Errorf("database: migrate: reset lock_timeout: %w", mapError(err))
	}
	return nil
}

// stmtLockError turns a statement's failure into Migrate's error: a
// *MigrationError, with the statement cut short when it timed out waiting for
// its lock.
func stmtLockError(file string, se *migrate.StmtExecError) error {
	var le *StatementLockTimeoutError
	if errors.As(se.Err, &le) {
		return &MigrationError{File: file, Stmt: le.Stmt, Err: le}
	}
	return nil
}

func truncateStmt(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= stmtLockMaxText {
		return s
	}
	cut := stmtLockMaxText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
