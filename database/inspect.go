package database

import (
	"context"
	"fmt"
	"strings"
)

// WithDefaults returns c with every zero field replaced by the default Open uses
// for it, so that a tool can show the settings a pool runs with. (Open also
// keeps a single connection, forever, for SQLite ":memory:", whatever c says.)
func (c Config) WithDefaults() Config { return c.withDefaults() }

// SQLitePath returns the file that url names when it names an SQLite database
// (":memory:" for a private in-memory one), and ok false for PostgreSQL or a
// malformed URL (ParseURL's SQLitePath). A tool uses it to tell "no database yet" from "empty database"
// without opening, and so creating, the file.
func SQLitePath(url string) (path string, ok bool) {
	t, err := parseURL(url)
	if err != nil || t.dialect != SQLite {
		return "", false
	}
	return t.sqlitePath, true
}

// ServerVersion returns the database's product and version, such as
// "PostgreSQL 15.8" or "SQLite 3.49.1". It costs one query.
func (db *DB) ServerVersion(ctx context.Context) (string, error) {
	var q, product string
	switch db.dialect {
	case Postgres:
		q, product = "SHOW server_version", "PostgreSQL"
	default:
		q, product = "SELECT sqlite_version()", "SQLite"
	}
	var v string
	if err := db.sql.QueryRowContext(ctx, q).Scan(&v); err != nil {
		return "", fmt.Errorf("database: server version: %w", scrub(mapError(err), db.secrets...))
	}
	// PostgreSQL appends the packager's note: "15.8 (Debian 15.8-1.pgdg120+1)".
	if i := strings.IndexByte(v, ' '); i > 0 {
		v = v[:i]
	}
	return product + " " + v, nil
}
