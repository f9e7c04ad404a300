package database

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"ariga.io/atlas/sql/migrate"
)

// The revisions table as the Atlas CLI creates it: these statements are what ent
// generates for the CLI's Revision schema (cmd/atlas/internal/migrate/ent/schema
// in ariga/atlas), so that either tool reads and writes the other's rows.
const (
	revisionsDDLPostgres = `CREATE TABLE IF NOT EXISTS "atlas_schema_revisions"."atlas_schema_revisions" (
  "version" character varying NOT NULL,
  "description" character varying NOT NULL,
  "type" bigint NOT NULL DEFAULT 2,
  "applied" bigint NOT NULL DEFAULT 0,
  "total" bigint NOT NULL DEFAULT 0,
  "executed_at" timestamptz NOT NULL,
  "execution_time" bigint NOT NULL,
  "error" text NULL,
  "error_stmt" text NULL,
  "hash" character varying NOT NULL,
  "partial_hashes" jsonb NULL,
  "operator_version" character varying NOT NULL,
  PRIMARY KEY ("version")
)`
	revisionsDDLSQLite = "CREATE TABLE IF NOT EXISTS `atlas_schema_revisions` (" +
		"`version` text NOT NULL, `description` text NOT NULL, `type` integer NOT NULL DEFAULT (2), " +
		"`applied` integer NOT NULL DEFAULT (0), `total` integer NOT NULL DEFAULT (0), " +
		"`executed_at` datetime NOT NULL, `execution_time` integer NOT NULL, `error` text NULL, " +
		"`error_stmt` text NULL, `hash` text NOT NULL, `partial_hashes` json NULL, " +
		"`operator_version` text NOT NULL, PRIMARY KEY (`version`))"
)

// cloudIdentifier is a row the Atlas CLI keeps in the revisions table to identify
// the table itself; it is not a migration.
const cloudIdentifier = ".atlas_cloud_identifier"

const revisionColumns = "version, description, type, applied, total, executed_at, execution_time, error, error_stmt, hash, partial_hashes, operator_version"

// querier is what revisions needs: a pool, a connection or a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// revisions is the migrate.RevisionReadWriter over the revisions table. A missing
// table reads as no revisions, so that Migrations works on an empty database
// without creating anything.
type revisions struct {
	q       querier
	dialect string
}

var _ migrate.RevisionReadWriter = (*revisions)(nil)

// Ident returns the table's name, which Atlas leaves out of its emptiness checks.
func (r *revisions) Ident() *migrate.TableIdent {
	if r.dialect == Postgres {
		return &migrate.TableIdent{Schema: RevisionsSchema, Name: RevisionsTable}
	}
	return &migrate.TableIdent{Name: RevisionsTable}
}

func (r *revisions) table() string {
	if r.dialect == Postgres {
		return `"atlas_schema_revisions"."atlas_schema_revisions"`
	}
	return "`atlas_schema_revisions`"
}

// arg returns the i'th (1-based) placeholder.
func (r *revisions) arg(i int) string {
	if r.dialect == Postgres {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

func (r *revisions) exists(ctx context.Context) (bool, error) {
	query := "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'atlas_schema_revisions')"
	if r.dialect == Postgres {
		query = `SELECT to_regclass('"atlas_schema_revisions"."atlas_schema_revisions"') IS NOT NULL`
	}
	var ok bool
	if err := r.q.QueryRowContext(ctx, query).Scan(&ok); err != nil {
		return false, fmt.Errorf("database: migrate: find revisions table: %w", mapError(err))
	}
	return ok, nil
}

// ReadRevisions returns the applied revisions in version order.
func (r *revisions) ReadRevisions(ctx context.Context) ([]*migrate.Revision, error) {
	if ok, err := r.exists(ctx); err != nil || !ok {
		return nil, err
	}
	rows, err := r.q.QueryContext(ctx, "SELECT "+revisionColumns+" FROM "+r.table()+
		" WHERE version <> "+r.arg(1)+" ORDER BY version", cloudIdentifier)
	if err != nil {
		return nil, fmt.Errorf("database: migrate: read revisions: %w", mapError(err))
	}
	defer rows.Close()
	var revs []*migrate.Revision
	for rows.Next() {
		rev, err := scanRevision(rows)
		if err != nil {
			return nil, err
		}
		revs = append(revs, rev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("database: migrate: read revisions: %w", mapError(err))
	}
	return revs, nil
}

// ReadRevision returns the revision of version, or migrate.ErrRevisionNotExist.
func (r *revisions) ReadRevision(ctx context.Context, version string) (*migrate.Revision, error) {
	if ok, err := r.exists(ctx); err != nil {
		return nil, err
	} else if !ok {
		return nil, migrate.ErrRevisionNotExist
	}
	rows, err := r.q.QueryContext(ctx, "SELECT "+revisionColumns+" FROM "+r.table()+" WHERE version = "+r.arg(1), version)
	if err != nil {
		return nil, fmt.Errorf("database: migrate: read revision: %w", mapError(err))
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("database: migrate: read revision: %w", mapError(err))
		}
		return nil, migrate.ErrRevisionNotExist
	}
	return scanRevision(rows)
}

func scanRevision(rows *sql.Rows) (*migrate.Revision, error) {
	var (
		rev             migrate.Revision
		typ, exec       int64
		errText, errSQL sql.NullString
		partial         []byte
	)
	err := rows.Scan(&rev.Version, &rev.Description, &typ, &rev.Applied, &rev.Total, &rev.ExecutedAt,
		&exec, &errText, &errSQL, &rev.Hash, &partial, &rev.OperatorVersion)
	if err != nil {
		return nil, fmt.Errorf("database: migrate: read revision: %w", mapError(err))
	}
	rev.Type = migrate.RevisionType(typ)
	rev.ExecutionTime = time.Duration(exec)
	rev.Error, rev.ErrorStmt = errText.String, errSQL.String
	if len(partial) > 0 {
		if err := json.Unmarshal(partial, &rev.PartialHashes); err != nil {
			return nil, fmt.Errorf("database: migrate: revision %s: partial_hashes: %w", rev.Version, err)
		}
	}
	return &rev, nil
}

// WriteRevision inserts or updates rev, writing every column as the Atlas CLI
// does: its ent client sets each one, so for a file without an error, error
// and error_stmt hold the empty string (not NULL), and partial_hashes holds
// the JSON encoding of the hashes, 'null' when there are none (not SQL NULL).
// As the CLI's upsert does, an update keeps description and executed_at,
// which it declares immutable.
func (r *revisions) WriteRevision(ctx context.Context, rev *migrate.Revision) error {
	if rev.Version == cloudIdentifier {
		return errors.New("database: migrate: the revisions table's identifier row is not a revision")
	}
	partial, err := json.Marshal(rev.PartialHashes)
	if err != nil {
		return fmt.Errorf("database: migrate: write revision: %w", err)
	}
	placeholders := make([]string, 12)
	for i := range placeholders {
		placeholders[i] = r.arg(i + 1)
	}
	query := "INSERT INTO " + r.table() + " (" + revisionColumns + ") VALUES (" + strings.Join(placeholders, ", ") + ")" +
		" ON CONFLICT (version) DO UPDATE SET type = excluded.type, applied = excluded.applied, total = excluded.total," +
		" execution_time = excluded.execution_time, error = excluded.error, error_stmt = excluded.error_stmt," +
		" hash = excluded.hash, partial_hashes = excluded.partial_hashes, operator_version = excluded.operator_version"
	_, err = r.q.ExecContext(ctx, query,
		rev.Version, rev.Description, int64(rev.Type), rev.Applied, rev.Total, rev.ExecutedAt.UTC(),
		int64(rev.ExecutionTime), rev.Error, rev.ErrorStmt, rev.Hash, string(partial), rev.OperatorVersion)
	if err != nil {
		return fmt.Errorf("database: migrate: write revision %s: %w", rev.Version, mapError(err))
	}
	return nil
}

// DeleteRevision deletes the revision of version.
func (r *revisions) DeleteRevision(ctx context.Context, version string) error {
	if version == cloudIdentifier {
		return errors.New("database: migrate: the revisions table's identifier row is not a revision")
	}
	if _, err := r.q.ExecContext(ctx, "DELETE FROM "+r.table()+" WHERE version = "+r.arg(1), version); err != nil {
		return fmt.Errorf("database: migrate: delete revision %s: %w", version, mapError(err))
	}
	return nil
}
