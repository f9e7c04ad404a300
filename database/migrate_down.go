package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// ErrRevertStale is returned by Revert when the newest applied migrations are
// no longer the ones the down plan was made for: another migrator applied or
// reverted files in between. Nothing was changed; plan again.
var ErrRevertStale = errors.New("database: migrate down: the applied migrations changed since the plan was made")

// ErrRevertData is returned by Revert when a RevertGuard finds data that the
// plan would delete and that was not there when the plan was made. Nothing
// was changed; plan again.
var ErrRevertData = errors.New("database: migrate down: data the plan would delete was written since the plan was made")

// RevertGuard is a check Revert makes under the migration lock, in its
// transaction, before it runs any statement: Query (a SELECT) must return no
// row. A down plan guards every table or column it drops that held no data
// when it was planned, so that data written between the plan and the revert
// is not dropped with them. On PostgreSQL, Revert first locks Table in SHARE
// mode, which lets no one write to it until the revert commits: a row
// committed after the check cannot be lost. On SQLite, the transaction's
// write lock already keeps every other writer out.
type RevertGuard struct {
	// Table is the table the query reads (unquoted).
	Table string
	// Query is a SELECT that returns a row when there is data to lose.
	Query string
	// Finding says what would be lost, for the error.
	Finding string
}

// WithRevertGuards gives Revert the checks of a down plan; other calls ignore
// them.
func WithRevertGuards(gs ...RevertGuard) MigrateOption {
	return func(o *migrateOptions) { o.revertGuards = append(o.revertGuards, gs...) }
}

// checkRevertGuards locks the guarded tables (PostgreSQL) and runs the
// guards, in tx.
func checkRevertGuards(ctx context.Context, dialect string, exec execQuerier, tx *sql.Tx, gs []RevertGuard) error {
	if dialect == Postgres {
		locked := make(map[string]bool)
		for _, g := range gs {
			if locked[g.Table] {
				continue
			}
			locked[g.Table] = true
			if _, err := exec.ExecContext(ctx, `LOCK TABLE "`+strings.ReplaceAll(g.Table, `"`, `""`)+`" IN SHARE MODE`); err != nil {
				return fmt.Errorf("database: migrate down: lock %s: %w", g.Table, mapError(err))
			}
		}
	}
	for _, g := range gs {
		var found bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS ("+g.Query+")").Scan(&found); err != nil {
			return fmt.Errorf("database: migrate down: check %s: %w", g.Table, mapError(err))
		}
		if found {
			return fmt.Errorf("%w: %s", ErrRevertData, g.Finding)
		}
	}
	return nil
}

// Revert runs a down plan: the statements stmts, which take the schema back to
// what it was before the migrations of versions (the newest applied ones, in
// any order), then deletes those versions' rows from the revisions table, so
// that Migrations, and the Atlas CLI, see them as pending again. Planning the
// statements is the caller's (see internal/migration's PlanDown).
//
// It takes the migration lock as Migrate does (the advisory lock on
// PostgreSQL, honouring WithLockTimeout and WithLockWait, and refusing a
// transaction pooler; the write lock on SQLite, with foreign key enforcement
// off and `PRAGMA foreign_key_check` clean before the commit), and runs
// everything in one transaction on the lock's connection: a statement that
// fails leaves the database as it was. Under the lock it first checks that
// versions are still the newest applied migrations, and returns
// ErrRevertStale when they are not. With Config.MigrationURL set, it runs
// there, as Migrate does. Other options (WithDir, WithDryRun) are ignored.
func Revert(ctx context.Context, db *DB, versions, stmts []string, opts ...MigrateOption) (err error) {
	if len(versions) == 0 {
		return errors.New("database: migrate down: no versions to revert")
	}
	if db.migration != nil {
		direct, err := Open(ctx, *db.migration)
		if err != nil {
			return fmt.Errorf("database: migrate down: MigrationURL: %w", err)
		}
		defer func() { err = errors.Join(err, direct.Close()) }()
		return Revert(ctx, direct, versions, stmts, opts...)
	}
	o := &migrateOptions{progress: func(Migration) {}}
	for _, opt := range opts {
		opt(o)
	}
	return db.withMigrationLock(ctx, o, "migrate down", func(l *migrationLock) error {
		return db.revertLocked(ctx, l, o, versions, stmts)
	})
}

// revertLocked is Revert's work, under the migration lock l.
func (db *DB) revertLocked(ctx context.Context, l *migrationLock, o *migrateOptions, versions, stmts []string) (err error) {
	tx, err := l.begin(ctx)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			err = joinRollback(err, tx.Rollback())
		}
	}()
	rrw := &revisions{q: tx, dialect: db.dialect}
	revs, err := rrw.ReadRevisions(ctx)
	if err != nil {
		return err
	}
	if len(revs) < len(versions) {
		return fmt.Errorf("%w: %d applied, %d to revert", ErrRevertStale, len(revs), len(versions))
	}
	var newest []string
	for _, r := range revs[len(revs)-len(versions):] {
		newest = append(newest, r.Version)
	}
	want := slices.Clone(versions)
	slices.Sort(want)
	if !slices.Equal(newest, want) {
		return fmt.Errorf("%w: the newest applied are %s, the plan reverts %s", ErrRevertStale, strings.Join(newest, ", "), strings.Join(want, ", "))
	}
	// The plan's statements wait for their locks as a migration file's do:
	// under the statement lock timeout, retried (WithStatementLockTimeout,
	// WithStatementLockRetries), so that a revert does not queue an ACCESS
	// EXCLUSIVE lock that stalls the application behind a long transaction.
	policy := stmtLockPolicy{file: "down plan", timeout: DefaultStatementLockTimeout, retries: DefaultStatementLockRetries}
	if o.stmtLockTimeoutSet {
		policy.timeout = o.stmtLockTimeout
	}
	if o.stmtLockRetriesSet {
		policy.retries = o.stmtLockRetries
	}
	x := &stmtLockExec{q: tx, inTx: true, db: db}
	if err := x.start(ctx, policy); err != nil {
		return err
	}
	if err := checkRevertGuards(ctx, db.dialect, x, tx, o.revertGuards); err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := x.ExecContext(ctx, s); err != nil {
			if errors.Is(err, ErrStatementLockTimeout) {
				return &MigrationError{File: "down plan", Stmt: truncateStmt(s), Err: err}
			}
			return &MigrationError{File: "down plan", Stmt: s, Err: mapError(err)}
		}
	}
	for _, v := range versions {
		if err := rrw.DeleteRevision(ctx, v); err != nil {
			return err
		}
	}
	if db.dialect == SQLite {
		if err := foreignKeyCheck(ctx, tx); err != nil {
			return &MigrationError{File: "down plan", Err: err}
		}
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("database: migrate down: commit: %w", mapError(err))
	}
	db.logger.InfoContext(ctx, "database: reverted migrations",
		slog.String("versions", strings.Join(versions, ",")), slog.Int("statements", len(stmts)))
	return nil
}
