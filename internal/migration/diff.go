package migration

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"ariga.io/atlas/sql/migrate"
	entsql "entgo.io/ent/dialect/sql"
	entschema "entgo.io/ent/dialect/sql/schema"

	"github.com/chatdb/chatdb/database"
	entmigrate "github.com/chatdb/chatdb/ent/migrate"
	"github.com/chatdb/chatdb/schema"
)

// Errors returned by Diff. Match them with errors.Is.
var (
	// ErrUnknownDialect is returned when the dialect is neither database.Postgres
	// nor database.SQLite.
	ErrUnknownDialect = errors.New("migration: unknown dialect")
	// ErrDevURL is returned when PostgreSQL planning has no usable dev database
	// URL: it is empty or does not name a PostgreSQL server.
	ErrDevURL = errors.New("migration: dev database URL must be a postgres:// URL")
	// ErrName is returned when the migration name is empty or would not survive
	// as part of a file name.
	ErrName = errors.New("migration: name must be letters, digits, '_' or '-'")
)

// Dialects returns the dialects that have a migration directory, in the order
// the CLI processes them.
func Dialects() []string { return []string{database.Postgres, database.SQLite} }

// Diff computes the change that takes the schema built by dir's migration files
// to the ent schema, and writes it to dir as one new file named
// "<UTC timestamp>_<name>.sql", updating atlas.sum. It returns the new file's
// name, or "" when dir is already in sync with the ent schema, in which case
// nothing is written.
//
// The current state comes from replaying dir on a clean dev database (Atlas's
// "replay" mode), not from any real database. For PostgreSQL, devURL names a
// server on which Diff creates a temporary database, chatdb_dev_<random>, and
// drops it before returning, also on error; the role needs CREATEDB. For SQLite,
// devURL is ignored and the dev database is private and in memory.
//
// Diff refuses a directory whose atlas.sum does not match its files.
//
// Column and index drops are planned, unlike ent's default, so that the directory
// always ends up equal to the schema; table drops are not (ent never plans
// them), so removing an entity needs a hand-written migration.
func Diff(ctx context.Context, dialect string, dir migrate.Dir, name, devURL string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("%w: %q", ErrName, name)
	}
	if dialect != database.Postgres && dialect != database.SQLite {
		return "", fmt.Errorf("%w %q", ErrUnknownDialect, dialect)
	}
	if err := migrate.Validate(dir); err != nil {
		return "", fmt.Errorf("migration: %s: %w (was a file edited after it was generated? run `chatdb migrate hash` only if the edit was intended)", dirPath(dir), err)
	}
	dev, err := openDev(ctx, dialect, devURL)
	if err != nil {
		return "", err
	}
	before, err := fileNames(dir)
	if err != nil {
		return "", errors.Join(err, dev.close())
	}
	err = plan(ctx, dev.db, dialect, dir, name)
	inSync := errors.Is(err, migrate.ErrNoPlan)
	if inSync {
		err = nil
	}
	if err := errors.Join(err, dev.close()); err != nil {
		return "", err
	}
	if inSync {
		return "", nil
	}
	after, err := fileNames(dir)
	if err != nil {
		return "", err
	}
	for _, f := range after {
		if !slices.Contains(before, f) {
			return f, nil
		}
	}
	// The planner found changes but wrote no new file: the name it chose was
	// taken by a file planned in the same second.
	return "", fmt.Errorf("migration: %s: no new file written (another was written in the same second? run again)", dirPath(dir))
}

// Check is Diff without writing: it returns the file Diff would add to dir, or
// nil when dir is in sync with the ent schema. dir is not changed; it costs what
// Diff costs. CI uses it to refuse a tree whose schema and migrations disagree.
func Check(ctx context.Context, dialect string, dir migrate.Dir, devURL string) (migrate.File, error) {
	mem := &migrate.MemDir{}
	mem.SetPath(pathOf(dir))
	files, err := dir.Files()
	if err != nil {
		return nil, fmt.Errorf("migration: read %s: %w", dirPath(dir), err)
	}
	for _, f := range files {
		if err := mem.WriteFile(f.Name(), f.Bytes()); err != nil {
			return nil, fmt.Errorf("migration: copy %s: %w", f.Name(), err)
		}
	}
	// atlas.sum as it is, not recomputed: Diff must see a tampered directory.
	switch sum, err := fs.ReadFile(dir, migrate.HashFileName); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("migration: read %s: %w", dirPath(dir), err)
	default:
		if err := mem.WriteFile(migrate.HashFileName, sum); err != nil {
			return nil, fmt.Errorf("migration: copy %s: %w", migrate.HashFileName, err)
		}
	}
	name, err := Diff(ctx, dialect, mem, "pending_schema_changes", devURL)
	if err != nil || name == "" {
		return nil, err
	}
	b, err := fs.ReadFile(mem, name)
	if err != nil {
		return nil, fmt.Errorf("migration: read planned %s: %w", name, err)
	}
	return migrate.NewLocalFile(name, b), nil
}

// planMu serialises planning: ent's planner writes to the generated,
// package-level table definitions (entmigrate.Tables) as it sets them up, so two
// plans at once race on them.
var planMu sync.Mutex

func plan(ctx context.Context, db *database.DB, dialect string, dir migrate.Dir, name string) error {
	planMu.Lock()
	defer planMu.Unlock()
	m, err := entschema.NewMigrate(entsql.OpenDB(dialect, db.SQL()),
		entschema.WithDir(dir),
		entschema.WithMigrationMode(entschema.ModeReplay),
		entschema.WithDialect(dialect),
		// Atlas's own layout (<version>_<name>.sql plus atlas.sum); ent's default
		// for a local directory is golang-migrate's up/down pair.
		entschema.WithFormatter(migrate.DefaultFormatter),
		// One column per line: files are reviewed in pull requests.
		entschema.WithIndent("  "),
		// ent skips these by default, which would leave the directory behind the
		// schema with no sign of it; lint flags them as destructive instead.
		entschema.WithDropColumn(true),
		entschema.WithDropIndex(true),
		entschema.WithErrNoPlan(true),
	)
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	// The foreign keys into users are declared by the schema package, not by
	// ent edges (see schema.UserReferences).
	if err := schema.AddUserReferences(entmigrate.Tables); err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	if err := m.NamedDiff(ctx, name, entmigrate.Tables...); err != nil {
		if errors.Is(err, migrate.ErrNoPlan) {
			return err
		}
		return fmt.Errorf("migration: plan %s: %w", dirPath(dir), err)
	}
	return nil
}

// validName accepts what reads well in a file name and in `atlas migrate status`.
func validName(name string) bool {
	if name == "" || len(name) > 100 {
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

func fileNames(dir migrate.Dir) ([]string, error) {
	files, err := dir.Files()
	if err != nil {
		return nil, fmt.Errorf("migration: read %s: %w", dirPath(dir), err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name()
	}
	return names, nil
}

// dirPath names dir in messages: its path, or "migration directory".
func dirPath(dir migrate.Dir) string {
	if p := pathOf(dir); p != "" {
		return p
	}
	return "migration directory"
}

// pathOf returns dir's path, or "" when it has none (a MemDir, say).
func pathOf(dir migrate.Dir) string {
	if p, ok := dir.(interface{ Path() string }); ok {
		return p.Path()
	}
	return ""
}

// dev is an open dev database and what it takes to get rid of it.
type dev struct {
	db *database.DB
	// drop removes the temporary database; nil for SQLite.
	drop func() error
}

func (d *dev) close() error {
	err := d.db.Close()
	if d.drop != nil {
		err = errors.Join(err, d.drop())
	}
	return err
}

// openDev opens a clean dev database for dialect.
func openDev(ctx context.Context, dialect, devURL string) (*dev, error) {
	if dialect == database.SQLite {
		// A private in-memory database: database.Open keeps it on one connection
		// for its whole life and turns foreign keys on, as ent requires.
		db, err := database.Open(ctx, database.Config{URL: "sqlite://:memory:"})
		if err != nil {
			return nil, fmt.Errorf("migration: open dev database: %w", err)
		}
		return &dev{db: db}, nil
	}
	return openPostgresDev(ctx, devURL)
}

// openPostgresDev creates an empty database on the server devURL names and opens
// it. The database is dropped by the returned dev's close, or here if opening it
// fails.
func openPostgresDev(ctx context.Context, devURL string) (*dev, error) {
	u, err := url.Parse(devURL)
	if err != nil || !database.IsPostgresURL(devURL) {
		// The parse error quotes the URL, password included: leave it out.
		return nil, ErrDevURL
	}
	admin, err := database.Open(ctx, database.Config{URL: devURL, MaxOpenConns: 1})
	if err != nil {
		return nil, fmt.Errorf("migration: open dev server: %w", err)
	}
	// Recognisable if a crash leaves one behind, and unique enough for concurrent
	// runs on one server; rand.Text is lower-cased to stay a plain identifier.
	name := "chatdb_dev_" + strings.ToLower(rand.Text())
	// The name is ours, made of [a-z0-9_], so quoting it is enough.
	if _, err := admin.SQL().ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		return nil, errors.Join(fmt.Errorf("migration: create dev database on %s: %w", admin.URL(), database.MapError(err)), admin.Close())
	}
	drop := func() error {
		// Drop even when ctx was cancelled: that is when a leftover is likeliest.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, err := admin.SQL().ExecContext(dctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
		if err != nil {
			err = fmt.Errorf("migration: drop dev database %s on %s: %w", name, admin.URL(), database.MapError(err))
		}
		return errors.Join(err, admin.Close())
	}
	du := *u
	du.Path = "/" + name
	du.RawPath = ""
	db, err := database.Open(ctx, database.Config{URL: du.String(), MaxOpenConns: 4})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("migration: open dev database: %w", err), drop())
	}
	return &dev{db: db, drop: drop}, nil
}
