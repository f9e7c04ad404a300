package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	atlasschema "ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlite"
	sqlitedriver "modernc.org/sqlite"

	"github.com/chatdb/chatdb/migrations"
)

// Where applied migrations are recorded: the Atlas CLI's own revisions table, so
// that `atlas migrate status` and `atlas migrate apply` read and continue what
// Migrate did, and the other way round. On PostgreSQL the table lives in a schema
// of its own (the Atlas CLI's choice when its URL names no schema; with a
// schema-bound URL, pass it --revisions-schema atlas_schema_revisions); on SQLite
// it is in the main database.
const (
	// RevisionsSchema is the PostgreSQL schema that holds RevisionsTable.
	RevisionsSchema = "atlas_schema_revisions"
	// RevisionsTable is the table that records applied migration files.
	RevisionsTable = "atlas_schema_revisions"
)

// Errors returned by Migrate and Migrations. Match them with errors.Is.
var (
	// ErrChecksum is returned when a migration directory does not match its
	// atlas.sum: a file was edited, added or removed after the sum was computed,
	// or atlas.sum is missing or malformed. The error is a *ChecksumError. Nothing
	// is applied.
	ErrChecksum = errors.New("database: migration directory does not match atlas.sum")
	// ErrNotClean is returned by Migrate when the database has no migration
	// history but already holds tables, which migrations would collide with or
	// silently build on. Nothing is applied.
	ErrNotClean = errors.New("database: database has tables but no migration history")
	// ErrMigration is returned when a migration file fails to apply. The error is
	// a *MigrationError naming the file and the statement; the file's transaction
	// was rolled back.
	ErrMigration = errors.New("database: migration failed")
	// ErrLockTimeout is returned by Migrate when another migrator held the
	// migration lock for longer than the lock timeout (WithLockTimeout). The
	// error is a *LockTimeoutError; errors.Is(err, ErrTimeout) holds too. Files
	// applied before the wait stay applied.
	ErrLockTimeout = errors.New("database: migration lock timeout")
)

// LockTimeoutError is returned by Migrate when the migration lock stayed taken
// for longer than the lock timeout. errors.Is(err, ErrLockTimeout) and
// errors.Is(err, ErrTimeout) hold.
type LockTimeoutError struct {
	// Dialect is Postgres or SQLite: what the lock is differs (see Migrate).
	Dialect string
	// Timeout is how long Migrate waited.
	Timeout time.Duration
}

func (e *LockTimeoutError) Error() string {
	if e.Dialect == SQLite {
		return fmt.Sprintf("%v: another process held the database file's write lock (a migration, or a long write) for longer than %s", ErrLockTimeout, e.Timeout)
	}
	return fmt.Sprintf("%v: another chatdb or atlas migrate apply held the migration lock (advisory lock %d) for longer than %s", ErrLockTimeout, migrateLockID, e.Timeout)
}

// Is reports whether target is ErrLockTimeout or ErrTimeout.
func (e *LockTimeoutError) Is(target error) bool {
	return target == ErrLockTimeout || target == ErrTimeout
}

// ChecksumError is returned when a migration directory does not match its
// atlas.sum. errors.Is(err, ErrChecksum) holds.
type ChecksumError struct {
	// Dir is the directory's path, for messages.
	Dir string
	// File is the first file that differs from atlas.sum; empty when atlas.sum
	// itself is missing or malformed.
	File string
	// Reason says what differs: "edited", "added", "removed", "atlas.sum is
	// missing" or "atlas.sum is malformed".
	Reason string
	// Err is Atlas's error.
	Err error
}

func (e *ChecksumError) Error() string {
	what := e.Reason
	if e.File != "" {
		what = e.File + " was " + e.Reason
	}
	return fmt.Sprintf("%v: %s: %s (a migration file must not change once generated; if the change is intended, recompute the sum with `chatdb migrate hash`)", ErrChecksum, e.Dir, what)
}

// Is reports whether target is ErrChecksum.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// Unwrap returns Atlas's error.
func (e *ChecksumError) Unwrap() error { return e.Err }

// MigrationError is returned when a migration file fails to apply.
// errors.Is(err, ErrMigration) holds, and so does errors.Is with the sentinel
// that classifies the database's error (see MapError).
type MigrationError struct {
	// File is the migration file's name, such as "20250101120000_initial.sql".
	File string
	// Stmt is the statement that failed; empty when the file failed as a whole
	// (at commit, or a foreign key check after it ran). Migration statements are
	// DDL written by developers, so the statement is part of the message.
	Stmt string
	// Err is the database's error, classified by MapError.
	Err error
}

func (e *MigrationError) Error() string {
	if e.Stmt == "" {
		return fmt.Sprintf("%v: %s: %v", ErrMigration, e.File, e.Err)
	}
	return fmt.Sprintf("%v: %s: statement %q: %v", ErrMigration, e.File, e.Stmt, e.Err)
}

// Is reports whether target is ErrMigration.
func (e *MigrationError) Is(target error) bool { return target == ErrMigration }

// Unwrap returns the database's error.
func (e *MigrationError) Unwrap() error { return e.Err }

// Migration is one file of a migration directory.
type Migration struct {
	// Version is the file's version, the timestamp its name starts with.
	Version string
	// Description is the rest of its name, such as "initial".
	Description string
	// Statements is the number of statements in the file.
	Statements int
	// AppliedAt is when the file was applied; zero for a pending file.
	AppliedAt time.Time
	// Duration is how long applying it took; zero for a pending file.
	Duration time.Duration
}

// File returns the migration's file name, "<version>_<description>.sql".
func (m Migration) File() string {
	if m.Description == "" {
		return m.Version + ".sql"
	}
	return m.Version + "_" + m.Description + ".sql"
}

// MigrationStatus is what Migrations reports: the migrations applied to a
// database and those still to apply, each in order.
type MigrationStatus struct {
	// Applied lists the files recorded as applied, oldest first.
	Applied []Migration
	// Pending lists the files Migrate would apply, in the order it would.
	Pending []Migration
}

// MigrateOption configures Migrate and Migrations.
type MigrateOption func(*migrateOptions)

type migrateOptions struct {
	dir      migrate.Dir
	dryRun   bool
	progress func(Migration)
	// lockTimeout is WithLockTimeout's; lockTimeoutSet says it was given.
	lockTimeout    time.Duration
	lockTimeoutSet bool
	lockWait       func()
	// revertGuards are WithRevertGuards', for Revert.
	revertGuards []RevertGuard
	// Per-statement lock timeout and retries (migrate_stmtlock.go).
	stmtLockTimeout    time.Duration
	stmtLockTimeoutSet bool
	stmtLockRetries    int
	stmtLockRetriesSet bool
}

// WithDir applies dir instead of the migrations embedded in the binary (package
// migrations). The CLI uses it for --dir; tests for directories of their own.
func WithDir(dir migrate.Dir) MigrateOption {
	return func(o *migrateOptions) { o.dir = dir }
}

// WithDryRun makes Migrate check the directory and work out what is pending, and
// report each pending file to the WithProgress function, without changing the
// database (not even creating the revisions table) or taking the lock.
func WithDryRun() MigrateOption {
	return func(o *migrateOptions) { o.dryRun = true }
}

// WithProgress calls fn for each migration file once it is applied and committed,
// or, with WithDryRun, for each file that would be applied. fn runs while the
// migration lock is held: keep it quick.
func WithProgress(fn func(Migration)) MigrateOption {
	return func(o *migrateOptions) { o.progress = fn }
}

// WithLockTimeout bounds how long Migrate waits for the migration lock while
// another migrator holds it: after d it gives up with a *LockTimeoutError
// (ErrLockTimeout). d == 0 waits for as long as ctx allows. Without this
// option, Migrate waits for as long as ctx allows on PostgreSQL, and for up to
// Config.SQLiteBusyTimeout on SQLite. On SQLite the lock is taken once per
// file (see Migrate), and each of those waits is bounded by d.
func WithLockTimeout(d time.Duration) MigrateOption {
	return func(o *migrateOptions) { o.lockTimeout, o.lockTimeoutSet = max(d, 0), true }
}

// WithLockWait calls fn once per Migrate call, when Migrate finds the
// migration lock held by another migrator and starts waiting for it, so that
// a tool can say what it is waiting for. Migrate also logs the wait at info
// level.
func WithLockWait(fn func()) MigrateOption {
	return func(o *migrateOptions) { o.lockWait = fn }
}

// Migrate applies the migration files that db has not applied yet: by default the
// directory embedded for db.Dialect(), otherwise the one given by WithDir.
// Applying an up-to-date database does nothing.
//
// It refuses, before changing anything, a directory that does not match its
// atlas.sum (ErrChecksum) and a database that has tables but no migration history
// (ErrNotClean).
//
// Each file runs in a transaction of its own, together with its row in the
// revisions table (RevisionsTable, the Atlas CLI's format). A file that fails is
// rolled back as a whole, leaving the database as it was before that file, and
// the error is a *MigrationError naming the file and the statement; files
// applied before it stay applied. The exception, on PostgreSQL only, is a file
// with the Atlas directive `-- atlas:txmode none` at its top (for CREATE INDEX
// CONCURRENTLY, which PostgreSQL refuses inside a transaction): its statements
// run one by one outside any transaction, the revisions row updated after
// each, as the Atlas CLI does; a statement that fails leaves the ones before
// it applied and the next run resumes there. On PostgreSQL each statement
// runs with a lock_timeout and is tried again when it times out waiting for
// its lock (WithStatementLockTimeout, WithStatementLockRetries); when its
// tries run out the file fails with a *StatementLockTimeoutError.
//
// Concurrent Migrate calls, from this process or others, apply each file once.
// On PostgreSQL, Migrate holds a session-level advisory lock for the whole run on
// a connection of its own, under the name the Atlas CLI uses
// ("atlas_migrate_execute"), so it also excludes a concurrent `atlas migrate
// apply`; a second caller waits, then finds nothing pending. On SQLite a file
// has no server to hold a lock for it, so each file's transaction is the lock:
// Open makes transactions BEGIN IMMEDIATE, which takes the database's write lock
// at once, and the pending files are worked out again inside every transaction,
// so a caller that waited finds the file already applied. The Atlas CLI does
// not take that lock for its whole run on SQLite (its lock there is a file in
// the temporary directory, which Migrate does not take; see atlas.hcl), only
// per file while it writes. How long Migrate waits for a lock held elsewhere
// is WithLockTimeout's; WithLockWait reports the wait. While migrating,
// SQLite's foreign key enforcement is off on Migrate's connection (it cannot be
// changed inside a transaction, and table rebuilds need it off: with it on,
// dropping the old table would cascade), and each file must leave `PRAGMA
// foreign_key_check` clean before it commits.
//
// The advisory lock belongs to a server session, which a pooler in
// transaction mode (PgBouncer's pool_mode = transaction) does not give a
// client: with Config.Pooler set to PoolerTransaction, or when DetectPooler
// finds such a pooler, Migrate refuses with a *PoolerError (ErrPooler)
// before taking the lock. When Config.MigrationURL is set, Migrate applies
// the files there instead, on a pool of its own that it opens and closes:
// set it to a direct connection to the database.
//
// Migrate uses one connection from db's pool throughout, so it works with a
// pool of a single connection; on PostgreSQL, when files are pending, it first
// opens two connections of its own to look for a pooler (DetectPooler). Cost:
// with nothing pending, reading the revisions table; else, the lock and a few
// round trips per file besides its statements.
func Migrate(ctx context.Context, db *DB, opts ...MigrateOption) (err error) {
	if db.migration != nil {
		return db.migrateElsewhere(ctx, opts)
	}
	o, dir, err := db.migrateSetup(opts)
	if err != nil {
		return err
	}
	if o.dryRun {
		st, err := db.migrationStatus(ctx, dir)
		if err != nil {
			return err
		}
		for _, m := range st.Pending {
			o.progress(m)
		}
		return nil
	}
	// Nothing pending, as at most of an application's start-ups: no lock to
	// take, no pooler to look for (two connections), one read of the
	// revisions. Files another migrator commits meanwhile are its to apply.
	// An error here (no revisions table yet, say) is left to the locked path,
	// which reports it as Migrate always has.
	if st, err := db.migrationStatus(ctx, dir); err == nil && len(st.Pending) == 0 {
		return nil
	}
	return db.withMigrationLock(ctx, o, "migrate", func(l *migrationLock) error {
		if err := prepareRevisions(ctx, l); err != nil {
			return err
		}
		for {
			done, err := db.applyNext(ctx, l, dir, o)
			if err != nil || done {
				return err
			}
		}
	})
}

// withMigrationLock runs fn holding the migration lock (see migrationLock) on
// a connection of db's own, as Migrate and Revert do. op names the caller in
// errors.
func (db *DB) withMigrationLock(ctx context.Context, o *migrateOptions, op string, fn func(*migrationLock) error) (err error) {
	if err := db.checkSessionLock(ctx); err != nil {
		return err
	}
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("database: %s: %w", op, mapError(err))
	}
	defer conn.Close()
	l := &migrationLock{db: db, conn: conn, o: o}
	release, err := l.acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, release()) }()
	return fn(l)
}

// Migrations reports which migrations db has applied and which are pending, from
// the embedded directory or the one given by WithDir. It changes nothing and
// takes no lock. Like Migrate, it refuses a directory that does not match its
// atlas.sum.
func Migrations(ctx context.Context, db *DB, opts ...MigrateOption) (MigrationStatus, error) {
	_, dir, err := db.migrateSetup(opts)
	if err != nil {
		return MigrationStatus{}, err
	}
	return db.migrationStatus(ctx, dir)
}

func (db *DB) migrateSetup(opts []MigrateOption) (*migrateOptions, migrate.Dir, error) {
	o := &migrateOptions{progress: func(Migration) {}}
	for _, opt := range opts {
		opt(o)
	}
	dir := o.dir
	if dir == nil {
		var err error
		if dir, err = migrations.Dir(db.dialect); err != nil {
			return nil, nil, fmt.Errorf("database: migrate: %w", err)
		}
	}
	if err := ValidateDir(dir); err != nil {
		return nil, nil, err
	}
	return o, dir, nil
}

func (db *DB) migrationStatus(ctx context.Context, dir migrate.Dir) (MigrationStatus, error) {
	drv, err := atlasDriver(db.dialect, db.sql)
	if err != nil {
		return MigrationStatus{}, err
	}
	rrw := &revisions{q: db.sql, dialect: db.dialect}
	revs, err := rrw.ReadRevisions(ctx)
	if err != nil {
		return MigrationStatus{}, err
	}
	var st MigrationStatus
	for _, r := range revs {
		if r.Applied == r.Total {
			st.Applied = append(st.Applied, Migration{
				Version: r.Version, Description: r.Description, Statements: r.Total,
				AppliedAt: r.ExecutedAt, Duration: r.ExecutionTime,
			})
		}
	}
	ex, err := newExecutor(drv, dir, rrw)
	if err != nil {
		return MigrationStatus{}, err
	}
	pending, err := ex.Pending(ctx)
	if err != nil && !errors.Is(err, migrate.ErrNoPendingFiles) {
		return MigrationStatus{}, fmt.Errorf("database: migrate: %w", mapError(err))
	}
	for _, f := range pending {
		m, err := pendingMigration(drv, f)
		if err != nil {
			return MigrationStatus{}, err
		}
		st.Pending = append(st.Pending, m)
	}
	return st, nil
}

// applyNext applies the first pending file in a transaction of its own and
// reports whether there was none.
func (db *DB) applyNext(ctx context.Context, l *migrationLock, dir migrate.Dir, o *migrateOptions) (done bool, err error) {
	tx, err := l.begin(ctx)
	if err != nil {
		return false, err
	}
	committed := false
	defer func() {
		if !committed {
			err = joinRollback(err, tx.Rollback())
		}
	}()
	sx := &stmtLockExec{q: tx, inTx: true, db: db}
	drv, err := atlasDriver(db.dialect, sx)
	if err != nil {
		return false, err
	}
	rrw := &revisions{q: tx, dialect: db.dialect}
	ex, err := newExecutor(drv, dir, rrw)
	if err != nil {
		return false, err
	}
	// Worked out inside the transaction, under the lock: a caller that waited for
	// the lock sees what the one before it applied.
	pending, err := ex.Pending(ctx)
	switch {
	case errors.Is(err, migrate.ErrNoPendingFiles):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("database: migrate: %w", mapError(err))
	}
	f := pending[0]
	none, err := checkTxMode(db.dialect, f)
	if err != nil {
		return false, err
	}
	if none {
		// Under the advisory lock, what is pending stays pending: run the file
		// on the lock's connection, outside any transaction.
		committed = true
		if err := tx.Rollback(); err != nil {
			return false, fmt.Errorf("database: migrate: %w", mapError(err))
		}
		return false, db.applyNoTx(ctx, l, dir, f, o)
	}
	m, err := pendingMigration(drv, f)
	if err != nil {
		return false, err
	}
	policy, err := stmtLockPolicyFor(f, o)
	if err != nil {
		return false, err
	}
	if err := sx.start(ctx, policy); err != nil {
		return false, err
	}
	start := time.Now()
	if err := ex.Execute(ctx, f); err != nil {
		var se *migrate.StmtExecError
		if errors.As(err, &se) {
			if err := stmtLockError(f.Name(), se); err != nil {
				return false, err
			}
			// Execute also tried to record the failure in the revisions table;
			// that write dies with the rollback, as the rest of the file does.
			return false, &MigrationError{File: f.Name(), Stmt: se.Stmt.Text, Err: mapError(se.Err)}
		}
		return false, &MigrationError{File: f.Name(), Err: mapError(err)}
	}
	if db.dialect == SQLite {
		if err := foreignKeyCheck(ctx, tx); err != nil {
			return false, &MigrationError{File: f.Name(), Err: err}
		}
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return false, &MigrationError{File: f.Name(), Err: mapError(err)}
	}
	m.AppliedAt, m.Duration = start, time.Since(start)
	db.logger.InfoContext(ctx, "database: applied migration",
		slog.String("file", f.Name()), slog.Int("statements", m.Statements), slog.Duration("duration", m.Duration))
	o.progress(m)
	return false, nil
}

func newExecutor(drv migrate.Driver, dir migrate.Dir, rrw migrate.RevisionReadWriter) (*migrate.Executor, error) {
	ex, err := migrate.NewExecutor(drv, dir, rrw,
		// Atlas's own emptiness check looks at every schema on PostgreSQL and
		// refuses a database with, say, an empty extension schema; checkClean
		// looks where the files create their tables instead.
		migrate.WithAllowDirty(true),
		migrate.WithOperatorVersion(operatorVersion()),
	)
	if err != nil {
		return nil, fmt.Errorf("database: migrate: %w", err)
	}
	return ex, nil
}

func pendingMigration(drv migrate.Driver, f migrate.File) (Migration, error) {
	stmts, err := migrate.FileStmtDecls(drv, f)
	if err != nil {
		return Migration{}, fmt.Errorf("database: migrate: read statements of %s: %w", f.Name(), err)
	}
	return Migration{Version: f.Version(), Description: f.Desc(), Statements: len(stmts)}, nil
}

// checkTxMode reads a file's `-- atlas:txmode` directive and reports whether
// it is "none": run the file outside a transaction, as the Atlas CLI does, for
// statements that cannot run inside one, such as CREATE INDEX CONCURRENTLY.
// That is honoured on PostgreSQL only, where the advisory lock, not the
// transaction, keeps other migrators out. SQLite has no such statement and its
// transaction is the lock, so there "none" is refused, as is any mode other
// than "file" (the default).
func checkTxMode(dialect string, f migrate.File) (none bool, err error) {
	lf, ok := f.(interface{ Directive(string) []string })
	if !ok {
		return false, nil
	}
	for _, mode := range lf.Directive("txmode") {
		switch {
		case mode == "file":
		case mode == "none" && dialect == Postgres:
			none = true
		default:
			return false, &MigrationError{File: f.Name(), Err: fmt.Errorf("atlas:txmode %s is not supported on %s: Migrate runs each file in a transaction of its own, or on PostgreSQL with txmode none outside any (apply this file with `atlas migrate apply --tx-mode %s`)", mode, dialect, mode)}
		}
	}
	return none, nil
}

// applyNoTx applies f, a PostgreSQL file with `-- atlas:txmode none`, on the
// lock's connection without a transaction: each statement commits on its own,
// and the revisions row is written after each, as the Atlas CLI does with
// --tx-mode none. A statement that fails leaves the ones before it applied and
// the revision partially applied (with the error); the next run resumes at the
// failed statement, after the file is fixed so that its applied part keeps its
// hashes. A CREATE INDEX CONCURRENTLY that fails leaves an INVALID index
// behind, which InvalidIndexes finds.
func (db *DB) applyNoTx(ctx context.Context, l *migrationLock, dir migrate.Dir, f migrate.File, o *migrateOptions) (err error) {
	sx := &stmtLockExec{q: l.conn, db: db}
	drv, err := atlasDriver(db.dialect, sx)
	if err != nil {
		return err
	}
	policy, err := stmtLockPolicyFor(f, o)
	if err != nil {
		return err
	}
	if err := sx.start(ctx, policy); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sx.finish(ctx)) }()
	ex, err := newExecutor(drv, dir, &revisions{q: l.conn, dialect: db.dialect})
	if err != nil {
		return err
	}
	m, err := pendingMigration(drv, f)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := ex.Execute(ctx, f); err != nil {
		var se *migrate.StmtExecError
		if errors.As(err, &se) {
			if err := stmtLockError(f.Name(), se); err != nil {
				return err
			}
			return &MigrationError{File: f.Name(), Stmt: se.Stmt.Text, Err: fmt.Errorf("%w (txmode none: the statements before it stay applied)", mapError(se.Err))}
		}
		return &MigrationError{File: f.Name(), Err: mapError(err)}
	}
	m.AppliedAt, m.Duration = start, time.Since(start)
	db.logger.InfoContext(ctx, "database: applied migration",
		slog.String("file", f.Name()), slog.Int("statements", m.Statements), slog.Duration("duration", m.Duration),
		slog.String("txmode", "none"))
	o.progress(m)
	return nil
}

// ValidateDir checks a migration directory against its atlas.sum, as Migrate
// and Migrations do before anything else: a mismatch, or a missing or malformed
// atlas.sum, is a *ChecksumError (errors.Is(err, ErrChecksum)). A directory
// without files needs no atlas.sum. It reads the directory and nothing else.
func ValidateDir(dir migrate.Dir) error {
	err := migrate.Validate(dir)
	if err == nil {
		return nil
	}
	path := "migration directory"
	if p, ok := dir.(interface{ Path() string }); ok && p.Path() != "" {
		path = p.Path()
	}
	var ce *migrate.ChecksumError
	switch {
	case errors.As(err, &ce):
		return &ChecksumError{Dir: path, File: ce.File, Reason: ce.Reason.String(), Err: err}
	case errors.Is(err, migrate.ErrChecksumNotFound):
		return &ChecksumError{Dir: path, Reason: "atlas.sum is missing", Err: err}
	case errors.Is(err, migrate.ErrChecksumFormat), errors.Is(err, migrate.ErrChecksumMismatch):
		// The sum file's own first line does not match its entries.
		return &ChecksumError{Dir: path, Reason: "atlas.sum is malformed", Err: err}
	}
	return fmt.Errorf("database: migrate: read %s: %w", path, err)
}

// prepareRevisions creates the revisions table, and on PostgreSQL its schema,
// when they do not exist, in a transaction of its own on the lock's
// connection. A database without migration history must be clean (see
// checkClean); it is checked first, so that a refused database is left exactly
// as it was.
func prepareRevisions(ctx context.Context, l *migrationLock) (err error) {
	dialect := l.db.dialect
	tx, err := l.begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = joinRollback(err, tx.Rollback())
		}
	}()
	revs, err := (&revisions{q: tx, dialect: dialect}).ReadRevisions(ctx)
	if err != nil {
		return err
	}
	if len(revs) == 0 {
		drv, err := atlasDriver(dialect, tx)
		if err != nil {
			return err
		}
		if err := checkClean(ctx, drv, dialect); err != nil {
			return err
		}
	}
	stmts := []string{revisionsDDLSQLite}
	if dialect == Postgres {
		stmts = []string{`CREATE SCHEMA IF NOT EXISTS "atlas_schema_revisions"`, revisionsDDLPostgres}
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("database: migrate: create revisions table: %w", mapError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("database: migrate: create revisions table: %w", mapError(err))
	}
	return nil
}

// checkClean refuses a database without migration history that has tables where
// the files create theirs: the current schema on PostgreSQL (the files name no
// schema), the main database on SQLite.
func checkClean(ctx context.Context, drv migrate.Driver, dialect string) error {
	s, err := drv.InspectSchema(ctx, "", &atlasschema.InspectOptions{Mode: atlasschema.InspectTables})
	if err != nil {
		return fmt.Errorf("database: migrate: inspect: %w", mapError(err))
	}
	for _, t := range s.Tables {
		if dialect == SQLite && t.Name == RevisionsTable {
			continue
		}
		return fmt.Errorf("%w: found table %q in schema %q (migrate an empty database, or record the version it matches with `atlas migrate set`)", ErrNotClean, t.Name, s.Name)
	}
	return nil
}

// atlasDriver opens Atlas's driver for dialect over q: a pool, or a transaction
// so that everything the executor does is part of it.
func atlasDriver(dialect string, q atlasschema.ExecQuerier) (migrate.Driver, error) {
	var (
		drv migrate.Driver
		err error
	)
	switch dialect {
	case Postgres:
		drv, err = postgres.Open(q)
	case SQLite:
		drv, err = sqlite.Open(q)
	default:
		return nil, fmt.Errorf("database: migrate: unknown dialect %q", dialect)
	}
	if err != nil {
		return nil, fmt.Errorf("database: migrate: %w", mapError(err))
	}
	return drv, nil
}

// migrateLockID is the Atlas CLI's advisory lock key: the 32-bit FNV-1 hash of
// "atlas_migrate_execute", as its postgres driver computes it.
var migrateLockID = func() int64 {
	h := fnv.New32()
	h.Write([]byte("atlas_migrate_execute"))
	return int64(h.Sum32())
}()

// migrationLock is the migration lock of one Migrate call, on the connection
// Migrate uses throughout.
type migrationLock struct {
	db   *DB
	conn *sql.Conn
	o    *migrateOptions
	// sqliteBusy is the connection's busy timeout; begin sets it to 0 while it
	// takes the lock, so that it waits for the lock itself, and back for the
	// statements of the transaction.
	sqliteBusy time.Duration
	// reported says the wait was reported (WithLockWait, the log).
	reported bool
}

// acquire prepares the connection for a migration run and returns what undoes
// it: on PostgreSQL it takes the advisory lock; on SQLite, where each file's
// transaction is the lock (see begin), it turns foreign key enforcement off
// (see Migrate). If undoing fails, the connection is
// discarded rather than returned to the pool holding the lock or without
// foreign keys.
func (l *migrationLock) acquire(ctx context.Context) (func() error, error) {
	conn := l.conn
	// Undo even when ctx is done: that is when it matters most.
	undoCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	}
	discard := func(err error) error {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return err
	}
	switch l.db.dialect {
	case Postgres:
		err := l.wait(ctx, func() (bool, error) {
			var ok bool
			if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", migrateLockID).Scan(&ok); err != nil {
				return false, fmt.Errorf("database: migrate: lock: %w", mapError(err))
			}
			return ok, nil
		})
		if err != nil {
			return nil, err
		}
		return func() error {
			ctx, cancel := undoCtx()
			defer cancel()
			var released bool
			err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", migrateLockID).Scan(&released)
			switch {
			case err != nil:
				return discard(fmt.Errorf("database: migrate: release lock: %w", mapError(err)))
			case !released:
				return discard(errors.New("database: migrate: release lock: the session did not hold it"))
			}
			return nil
		}, nil
	case SQLite:
		var on bool
		var busy int64
		if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&on); err != nil {
			return nil, fmt.Errorf("database: migrate: %w", mapError(err))
		}
		if err := conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			return nil, fmt.Errorf("database: migrate: %w", mapError(err))
		}
		l.sqliteBusy = time.Duration(busy) * time.Millisecond
		undo := func() error {
			ctx, cancel := undoCtx()
			defer cancel()
			stmts := []string{fmt.Sprintf("PRAGMA busy_timeout = %d", busy)}
			if on {
				stmts = append(stmts, "PRAGMA foreign_keys = on")
			}
			for _, s := range stmts {
				if _, err := conn.ExecContext(ctx, s); err != nil {
					return discard(fmt.Errorf("database: migrate: restore the connection: %w", mapError(err)))
				}
			}
			return nil
		}
		if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = off"); err != nil {
			return nil, errors.Join(fmt.Errorf("database: migrate: %w", mapError(err)), undo())
		}
		return undo, nil
	}
	return nil, fmt.Errorf("database: migrate: unknown dialect %q", l.db.dialect)
}

// begin begins a transaction on the lock's connection. On SQLite it is BEGIN
// IMMEDIATE (see Open), which takes the database's write lock: the migration
// lock there. With the busy timeout at 0 a lock held elsewhere fails at once,
// and begin waits for it as acquire waits on PostgreSQL; the transaction's
// statements run with the busy timeout again, for the rare waits (such as a
// WAL recovery) that holding the write lock does not spare them.
func (l *migrationLock) begin(ctx context.Context) (*sql.Tx, error) {
	if l.db.dialect != SQLite {
		tx, err := l.conn.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("database: migrate: begin: %w", mapError(err))
		}
		return tx, nil
	}
	busy := func(ms int64) string { return fmt.Sprintf("PRAGMA busy_timeout = %d", ms) }
	if _, err := l.conn.ExecContext(ctx, busy(0)); err != nil {
		return nil, fmt.Errorf("database: migrate: %w", mapError(err))
	}
	var tx *sql.Tx
	err := l.wait(ctx, func() (bool, error) {
		var err error
		// A writer of this process holding the file: its turn in the queue
		// (sqlitegate.go), tried once like SQLite's lock.
		tx, err = l.conn.BeginTx(tryWriteOnce(ctx), nil)
		var se *sqlitedriver.Error
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &se) && se.Code()&0xff == sqliteBusy, errors.Is(err, errWriteQueue):
			return false, nil
		}
		return false, fmt.Errorf("database: migrate: begin: %w", mapError(err))
	})
	if err != nil {
		return nil, err // the undo of acquire restores the busy timeout
	}
	if _, err := tx.ExecContext(ctx, busy(l.sqliteBusy.Milliseconds())); err != nil {
		return nil, joinRollback(fmt.Errorf("database: migrate: %w", mapError(err)), tx.Rollback())
	}
	return tx, nil
}

// wait calls try until it takes the lock, fails, or the lock timeout (see
// WithLockTimeout) or ctx ends. It polls rather than blocking inside the
// server, as the Atlas CLI does: on PostgreSQL, a session blocked inside a
// statement holds a snapshot, and a CREATE INDEX CONCURRENTLY run by the lock
// holder (in a hand-written, non-transactional migration) would wait for it
// forever. The backoff is jittered and doubles from 25ms up to 1s.
func (l *migrationLock) wait(ctx context.Context, try func() (bool, error)) error {
	timeout, bounded := l.o.lockTimeout, l.o.lockTimeoutSet && l.o.lockTimeout > 0
	if !l.o.lockTimeoutSet && l.db.dialect == SQLite {
		timeout, bounded = max(l.sqliteBusy, 0), true
	}
	var deadline time.Time
	wait := 25 * time.Millisecond
	for first := true; ; first = false {
		ok, err := try()
		if err != nil || ok {
			return err
		}
		if first {
			deadline = time.Now().Add(timeout)
			if !l.reported {
				l.reported = true
				l.db.logger.InfoContext(ctx, "database: waiting for another migration to finish", slog.String("url", l.db.redacted))
				if l.o.lockWait != nil {
					l.o.lockWait()
				}
			}
		}
		sleep := wait/2 + rand.N(wait/2+1)
		if bounded {
			left := time.Until(deadline)
			if left <= 0 {
				return &LockTimeoutError{Dialect: l.db.dialect, Timeout: timeout}
			}
			sleep = min(sleep, left)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("database: migrate: waiting for the migration lock: %w", mapError(ctx.Err()))
		case <-time.After(sleep):
		}
		wait = min(2*wait, time.Second)
	}
}

// foreignKeyCheck fails when the transaction left a row pointing nowhere, which
// SQLite did not stop because enforcement is off while migrating.
func foreignKeyCheck(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("foreign key check: %w", mapError(err))
	}
	defer rows.Close()
	if rows.Next() {
		var (
			table, parent string
			rowid, fkid   sql.NullInt64
		)
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return fmt.Errorf("foreign key check: %w", err)
		}
		return fmt.Errorf("foreign key check: %w: a row of %q points at a missing row of %q", ErrInvalidReference, table, parent)
	}
	return rows.Err()
}

// operatorVersion is what the revisions table's operator_version column says
// applied a file; the Atlas CLI writes "Atlas CLI vX.Y.Z" there.
func operatorVersion() string {
	const module = "github.com/chatdb/chatdb"
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == module && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == module && d.Version != "" {
				v = d.Version
			}
		}
	}
	return "chatdb " + v
}
