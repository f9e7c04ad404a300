package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/lib/pq"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/chatdb/chatdb/internal/pgdriver"
)

// MaxParamsSQLite is SQLite's SQLITE_MAX_VARIABLE_NUMBER (since 3.32): CopyFrom
// splits its multi-row INSERTs so that none binds more values. (PostgreSQL's
// limit, 65535, never applies: CopyFrom uses COPY there.)
const MaxParamsSQLite = 32766

// CopyFrom writes rows into table's columns in bulk on conn and returns how many
// rows it wrote. Each row holds one value per column, of the types the driver
// accepts as statement arguments.
//
// On PostgreSQL it uses the COPY protocol: the rows stream to the server in one
// operation, without a round trip per row or per statement (pgx's CopyFrom, or
// lib/pq's CopyIn). On SQLite it sends multi-row INSERTs, each with as many rows
// as fit in MaxParamsSQLite parameters.
//
// conn must be a connection of db's pool (db.SQL().Conn) with a transaction
// begun on it (conn.BeginTx): the rows commit or roll back with that transaction,
// and lib/pq refuses COPY outside one. table and columns are quoted here as
// identifiers; they must come from code, never from input. Errors are classified
// as MapError does.
func (db *DB) CopyFrom(ctx context.Context, conn *sql.Conn, table string, columns []string, rows [][]any) (int64, error) {
	if len(columns) == 0 {
		return 0, errors.New("database: copy: no columns")
	}
	for i, row := range rows {
		if len(row) != len(columns) {
			return 0, fmt.Errorf("database: copy: row %d has %d values for %d columns", i, len(row), len(columns))
		}
	}
	if len(rows) == 0 {
		return 0, nil
	}
	var (
		n   int64
		err error
	)
	if db.dialect == Postgres {
		// COPY runs on the driver's connection itself (conn.Raw), under
		// the tracing wrapper: its span is started here.
		var end func(error)
		ctx, end = db.copySpan(ctx, table)
		defer func() { end(err) }()
	}
	switch {
	case db.dialect == SQLite:
		per := max(MaxParamsSQLite/len(columns), 1)
		for i := 0; i < len(rows); i += per {
			db.logStatement(ctx, "query=INSERT INTO "+quoteIdent(table)+" ("+strings.Join(columns, ", ")+") VALUES ...")
		}
		n, err = insertRows(ctx, conn, table, columns, rows, MaxParamsSQLite)
	case db.driver == DriverPQ:
		db.logStatement(ctx, "query=COPY "+quoteIdent(table)+" ("+strings.Join(columns, ", ")+") FROM STDIN")
		n, err = copyPQ(ctx, conn, table, columns, rows)
	default:
		db.logStatement(ctx, "query=COPY "+quoteIdent(table)+" ("+strings.Join(columns, ", ")+") FROM STDIN")
		n, err = copyPgx(ctx, conn, table, columns, rows)
	}
	if err != nil {
		return n, fmt.Errorf("database: copy into %s: %w", table, scrub(mapError(err), db.secrets...))
	}
	return n, nil
}

// copySpan starts the span of a COPY into table, as the statements' spans
// are (tracedriver.go), and returns the function that ends it with the
// COPY's error.
func (db *DB) copySpan(ctx context.Context, table string) (context.Context, func(error)) {
	if !db.tracing.on() {
		return ctx, func(error) {}
	}
	ctx, span := db.tracing.start(ctx, db.traceAttrs, "COPY", "COPY "+quoteIdent(table)+" FROM STDIN")
	if span.IsRecording() {
		span.SetAttributes(semconv.DBCollectionName(table))
	}
	return ctx, func(err error) { endSpan(span, err) }
}

func copyPgx(ctx context.Context, conn *sql.Conn, table string, columns []string, rows [][]any) (int64, error) {
	var n int64
	err := conn.Raw(func(dc any) error {
		pc, ok := pgdriver.PgxConn(dc)
		if !ok {
			return fmt.Errorf("database: copy: connection is a %T, not pgx's", dc)
		}
		var err error
		n, err = pc.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
		return err
	})
	return n, err
}

// copyPQ runs lib/pq's COPY ... FROM STDIN statement on the driver connection
// itself: database/sql's Conn has no Prepare that joins the transaction begun on
// it, and the rows must go into that transaction.
func copyPQ(ctx context.Context, conn *sql.Conn, table string, columns []string, rows [][]any) (int64, error) {
	var n int64
	err := conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("database: copy: connection is a %T, not lib/pq's", dc)
		}
		st, err := pc.PrepareContext(ctx, pq.CopyIn(table, columns...))
		if err != nil {
			return err
		}
		exec := func(args []driver.Value) error {
			//nolint:staticcheck // lib/pq's COPY statement implements only Exec.
			_, err := st.Exec(args)
			return err
		}
		args := make([]driver.Value, len(columns))
		for _, row := range rows {
			for i, v := range row {
				dv, err := driverValue(v)
				if err != nil {
					st.Close()
					return err
				}
				args[i] = dv
			}
			if err := exec(args); err != nil {
				st.Close()
				return err
			}
			n++
		}
		// An Exec without arguments ends the COPY and reports its errors.
		if err := exec(nil); err != nil {
			st.Close()
			return err
		}
		return st.Close()
	})
	return n, err
}

// driverValue converts v as database/sql would before handing it to a driver.
func driverValue(v any) (driver.Value, error) {
	if vr, ok := v.(driver.Valuer); ok {
		var err error
		if v, err = vr.Value(); err != nil {
			return nil, err
		}
	}
	return driver.DefaultParameterConverter.ConvertValue(v)
}

// insertRows sends multi-row INSERTs of at most maxParams values each.
func insertRows(ctx context.Context, conn *sql.Conn, table string, columns []string, rows [][]any, maxParams int) (int64, error) {
	perStmt := max(maxParams/len(columns), 1)
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = quoteIdent(c)
	}
	head := "INSERT INTO " + quoteIdent(table) + " (" + strings.Join(quoted, ", ") + ") VALUES "
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	var n int64
	for start := 0; start < len(rows); start += perStmt {
		batch := rows[start:min(start+perStmt, len(rows))]
		var b strings.Builder
		b.Grow(len(head) + len(batch)*(len(tuple)+2))
		b.WriteString(head)
		args := make([]any, 0, len(batch)*len(columns))
		for i, row := range batch {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tuple)
			args = append(args, row...)
		}
		res, err := conn.ExecContext(ctx, b.String(), args...)
		if err != nil {
			return n, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// quoteIdent quotes an SQL identifier the standard way, which both PostgreSQL
// and SQLite accept.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
