package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"ariga.io/atlas/sql/migrate"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/internal/migration"
	"github.com/chatdb/chatdb/migrations"
)

// dirFlagUsage is the help of every --dir flag.
const dirFlagUsage = "migrations root holding one directory per dialect, or one dialect's directory (file:// optional, as atlas takes it: file://migrations/postgres)"

// migrationsDir is a --dir value: a migrations root, which holds one directory
// per dialect as the repository's migrations/ does, or one dialect's directory,
// as the Atlas CLI's --dir names it. Either may be written with file://.
type migrationsDir struct {
	// flag is the value as given, for messages.
	flag string
	// path is the directory, without file://.
	path string
	// single says that path is one dialect's directory, not a root.
	single bool
	// dialect is the dialect of a single directory, when its name says
	// ("postgres", "sqlite"); empty otherwise.
	dialect string
}

// parseDir reads a --dir value. A directory is taken for one dialect's when
// it holds no dialect directory and either is named after a dialect (whether
// or not it exists) or holds atlas.sum or .sql files; anything else, including
// another directory that does not exist yet, is a root.
func parseDir(flag string) migrationsDir {
	p := strings.TrimPrefix(flag, "file://")
	if i := strings.IndexByte(p, '?'); i >= 0 && strings.HasPrefix(flag, "file://") {
		p = p[:i] // Atlas's options, such as ?format=atlas
	}
	d := migrationsDir{flag: flag, path: p}
	for _, dialect := range migration.Dialects() {
		sub, _ := migrations.DirName(dialect)
		if isDir(filepath.Join(p, sub)) {
			return d // a root
		}
	}
	for _, dialect := range migration.Dialects() {
		if sub, _ := migrations.DirName(dialect); filepath.Base(filepath.Clean(p)) == sub {
			d.single, d.dialect = true, dialect
			return d
		}
	}
	sums, _ := filepath.Glob(filepath.Join(p, migrate.HashFileName))
	sqls, _ := filepath.Glob(filepath.Join(p, "*.sql"))
	d.single = len(sums)+len(sqls) > 0
	return d
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// dialects returns the dialects a command works on, from its --dialect flag
// and the directory: all of a root's, and only its own for a dialect's
// directory.
func (d migrationsDir) dialects(flag string) ([]string, error) {
	all, err := diffDialects(flag)
	if err != nil || !d.single {
		return all, err
	}
	switch {
	case flag == "all" && d.dialect == "":
		return nil, fmt.Errorf("--dir %s is one dialect's directory: say which with --dialect postgres or --dialect sqlite", d.flag)
	case flag == "all":
		return []string{d.dialect}, nil
	}
	return all, d.check(all[0])
}

// check refuses a dialect's directory named after another dialect.
func (d migrationsDir) check(dialect string) error {
	if d.single && d.dialect != "" && d.dialect != dialect {
		have, _ := migrations.DirName(d.dialect)
		want, _ := migrations.DirName(dialect)
		return fmt.Errorf("--dir %s is the %s directory, and this is a %s database or --dialect", d.flag, have, want)
	}
	return nil
}

// dialectPath returns the name of dialect's directory ("postgres", "sqlite")
// and its path.
func (d migrationsDir) dialectPath(dialect string) (sub, path string, err error) {
	if sub, err = migrations.DirName(dialect); err != nil {
		return "", "", err
	}
	if err := d.check(dialect); err != nil {
		return "", "", err
	}
	if d.single {
		return sub, d.path, nil
	}
	return sub, filepath.Join(d.path, sub), nil
}

// open opens dialect's directory, which must exist.
func (d migrationsDir) open(dialect string) (string, *migrate.LocalDir, error) {
	sub, path, err := d.dialectPath(dialect)
	if err != nil {
		return "", nil, err
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sub, nil, &dirError{flag: d.flag, path: path}
	case err != nil:
		return sub, nil, err
	case !st.IsDir():
		return sub, nil, fmt.Errorf("%s is not a directory", path)
	}
	local, err := migrate.NewLocalDir(path)
	return sub, local, err
}

// create opens dialect's directory, creating it if need be, for diff to write
// to.
func (d migrationsDir) create(dialect string) (string, *migrate.LocalDir, error) {
	sub, path, err := d.dialectPath(dialect)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return sub, nil, err
	}
	local, err := migrate.NewLocalDir(path)
	return sub, local, err
}

// dirError is a migration directory that does not exist.
type dirError struct {
	flag, path string
}

func (e *dirError) Error() string {
	abs, err := filepath.Abs(e.path)
	if err != nil || abs == e.path {
		return e.path + ": no such directory"
	}
	return fmt.Sprintf("%s: no such directory (%s)", e.path, abs)
}

// dialectOf returns the dialect of the database url names, without opening
// it.
func dialectOf(url string) string {
	if _, ok := database.SQLitePath(url); ok {
		return database.SQLite
	}
	return database.Postgres
}
