package migration

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	"ariga.io/atlas/sql/sqlite"

	"github.com/chatdb/chatdb/database"
)

// ErrInvalidFile is returned by Validate when a migration file's name or
// contents are not what a migration file must be. The error says which file and
// what is wrong.
var ErrInvalidFile = errors.New("migration: invalid migration file")

// Validate checks the integrity of dir without a database: atlas.sum matches the
// files (a *database.ChecksumError when not, as database.Migrate would refuse
// the directory), every file is named "<version>_<name>.sql" with a version of
// its own, and every file splits into statements with dialect's lexer
// (ErrInvalidFile). Replaying the files is Lint's job.
func Validate(dialect string, dir migrate.Dir) error {
	scanner, err := stmtScanner(dialect)
	if err != nil {
		return err
	}
	if err := database.ValidateDir(dir); err != nil {
		return err
	}
	files, err := dir.Files()
	if err != nil {
		return fmt.Errorf("migration: read %s: %w", dirPath(dir), err)
	}
	versions := make(map[string]string, len(files))
	for _, f := range files {
		if err := migrate.CheckVersion(f.Version()); err != nil || !validName(f.Desc()) {
			return fmt.Errorf("%w: %s: the name must be <version>_<name>.sql, the version a UTC timestamp such as 20250101120000", ErrInvalidFile, f.Name())
		}
		if other, ok := versions[f.Version()]; ok {
			return fmt.Errorf("%w: %s and %s have the same version %s", ErrInvalidFile, other, f.Name(), f.Version())
		}
		versions[f.Version()] = f.Name()
		stmts, err := scanner.ScanStmts(string(f.Bytes()))
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidFile, f.Name(), err)
		}
		if len(stmts) == 0 {
			return fmt.Errorf("%w: %s has no statements", ErrInvalidFile, f.Name())
		}
	}
	return nil
}

// stmtScanner returns the statement lexer of dialect's Atlas driver, which needs
// no connection.
func stmtScanner(dialect string) (migrate.StmtScanner, error) {
	switch dialect {
	case database.Postgres:
		return &postgres.Driver{}, nil
	case database.SQLite:
		return &sqlite.Driver{}, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownDialect, dialect)
}

// Hash recomputes dir's atlas.sum from its files and writes it, for after a
// deliberate edit of a migration file; it reports whether the sum changed. A
// file edited after a database applied it is not applied again: change a
// migration that has shipped only to fix what fails to apply, and write a new
// migration for anything else.
func Hash(dir migrate.Dir) (changed bool, err error) {
	files, err := dir.Files()
	if err != nil {
		return false, fmt.Errorf("migration: read %s: %w", dirPath(dir), err)
	}
	sum, err := migrate.NewHashFile(files)
	if err != nil {
		return false, fmt.Errorf("migration: hash %s: %w", dirPath(dir), err)
	}
	want, err := sum.MarshalText()
	if err != nil {
		return false, fmt.Errorf("migration: hash %s: %w", dirPath(dir), err)
	}
	have, err := fs.ReadFile(dir, migrate.HashFileName)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("migration: read %s: %w", dirPath(dir), err)
	}
	if bytes.Equal(have, want) {
		return false, nil
	}
	if err := migrate.WriteSumFile(dir, sum); err != nil {
		return false, fmt.Errorf("migration: write %s: %w", dirPath(dir), err)
	}
	return true, nil
}
