// Package migrations holds chatdb's versioned migration directories, one per
// dialect, embedded in the binary so that database.Migrate needs no files at run
// time.
//
// The directories are Atlas migration directories: files named
// "<version>_<name>.sql" and an atlas.sum that pins their contents. They are
// written by `chatdb migrate diff NAME`, linted (`chatdb migrate lint`),
// reviewed, and committed; editing a file by hand afterwards breaks atlas.sum,
// and database.Migrate then refuses the directory until `chatdb migrate hash`
// rewrites the sum, which only a deliberate, reviewed edit should do. The Atlas
// CLI reads them as they are (see atlas.hcl).
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"ariga.io/atlas/sql/migrate"
)

//go:embed postgres sqlite
var files embed.FS

// ErrUnknownDialect is returned when a dialect has no migration directory.
var ErrUnknownDialect = errors.New("migrations: unknown dialect")

// DirName returns the name of the directory holding dialect's migrations, relative
// to this package: "postgres" for "postgres", "sqlite" for "sqlite3" (the dialect
// names of the database package, database.Postgres and database.SQLite).
func DirName(dialect string) (string, error) {
	switch dialect {
	case "postgres":
		return "postgres", nil
	case "sqlite3":
		return "sqlite", nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownDialect, dialect)
}

// Dir returns the embedded migration directory for dialect ("postgres" or
// "sqlite3"). Each call returns a new in-memory copy, so a caller that writes to it
// changes nothing for anyone else.
func Dir(dialect string) (migrate.Dir, error) {
	name, err := DirName(dialect)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(files, name)
	if err != nil {
		return nil, fmt.Errorf("migrations: read %s: %w", name, err)
	}
	// A MemDir of our own, not migrate.OpenMemDir, which shares one directory per
	// name across the process.
	dir := &migrate.MemDir{}
	dir.SetPath(path.Join("migrations", name))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := files.ReadFile(path.Join(name, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migrations: read %s: %w", path.Join(name, e.Name()), err)
		}
		if err := dir.WriteFile(e.Name(), b); err != nil {
			return nil, fmt.Errorf("migrations: load %s: %w", path.Join(name, e.Name()), err)
		}
	}
	return dir, nil
}
