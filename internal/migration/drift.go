package migration

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/schema"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/migrations"
)

// Errors returned by Drift. Match them with errors.Is.
var (
	// ErrNoDev is returned when no dev database could be made to replay the
	// applied migrations on: the server refused to create one (the role lacks
	// CREATEDB, say), or the dev URL is not usable. Doctor reports it as a
	// skipped check rather than a failure.
	ErrNoDev = errors.New("migration: no dev database")
	// ErrUnknownRevision is returned when the database records a migration as
	// applied that the directory does not have: the database is ahead of the
	// files, and what its schema should be cannot be worked out from them.
	ErrUnknownRevision = errors.New("migration: applied revision not in the migration directory")
)

// devError marks a failure to make a dev database (ErrNoDev), keeping the
// message of the cause.
type devError struct{ err error }

func (e *devError) Error() string        { return e.err.Error() }
func (e *devError) Unwrap() error        { return e.err }
func (e *devError) Is(target error) bool { return target == ErrNoDev }

// DriftReport is what Drift found.
type DriftReport struct {
	// Applied lists the applied migration files that were replayed, oldest
	// first.
	Applied []string
	// Differences describes each difference, seen from the live schema, such
	// as `users: column "nickname" is not in the migrations`. It is empty when
	// there is no drift.
	Differences []string
	// Changes lists the SQL statements, planned by Atlas's driver for the
	// database's dialect, that would bring the live schema back to the schema
	// the applied files produce. It is empty when there is no drift.
	Changes []string
}

// Drifted reports whether the live schema differs from the applied files'.
func (r *DriftReport) Drifted() bool { return len(r.Differences) > 0 }

// Drift compares the live schema of db with the schema that the migration
// files db records as applied (in the revisions table, database.RevisionsTable)
// produce, and returns the statements that would take the first to the second.
// dir is the migration directory; nil means the one built into chatdb for
// db's dialect.
//
// The applied files, exactly those and in order, are replayed on a clean dev
// database, as Diff does: for PostgreSQL a temporary database created on the
// server devURL names (the role needs CREATEDB) and dropped before Drift
// returns; for SQLite a private in-memory database, devURL being ignored. Both
// schemas are then inspected with Atlas's driver and compared; db is only
// read. A failure to make the dev database is an ErrNoDev.
//
// What is compared: on PostgreSQL the current schema (where the files create
// their tables), on SQLite the main database, without the revisions table.
// Comments (COMMENT ON ... on PostgreSQL) are left out on both sides: they
// document the schema but change nothing an application reads or writes, and
// they are what operators and data catalogues most often add by hand, so
// counting them would make drift noise.
//
// Cost: replaying the applied files, and inspecting both schemas (a few
// catalogue queries per table).
//
// database.Migrate does not call Drift, on purpose: the check creates a
// database on the server, which an application starting up should neither
// need the privilege for nor wait on. `chatdb migrate apply` checks before
// applying, in the deploy, and `chatdb doctor` reports drift.
func Drift(ctx context.Context, db *database.DB, dir migrate.Dir, devURL string) (*DriftReport, error) {
	dialect := db.Dialect()
	if dir == nil {
		var err error
		if dir, err = migrations.Dir(dialect); err != nil {
			return nil, fmt.Errorf("migration: drift: %w", err)
		}
	}
	st, err := database.Migrations(ctx, db, database.WithDir(dir))
	if err != nil {
		return nil, fmt.Errorf("migration: drift: %w", err)
	}
	applied, err := appliedFiles(dir, st.Applied)
	if err != nil {
		return nil, err
	}
	report := &DriftReport{}
	for _, f := range applied.files {
		report.Applied = append(report.Applied, f.Name())
	}
	drv, changes, err := liveToFiles(ctx, db, applied.dir, devURL, "drift")
	if err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		return report, nil
	}
	report.Differences = describe(changes)
	plan, err := planAsFiles(ctx, drv, "drift", changes)
	if err != nil {
		return nil, err
	}
	for _, c := range plan.Changes {
		report.Changes = append(report.Changes, c.Cmd+";")
	}
	return report, nil
}

// appliedSet is the applied files of a directory, as a directory of their own.
type appliedSet struct {
	files []migrate.File
	dir   migrate.Dir
}

// appliedFiles returns the files of dir that applied names, in order, as a
// directory with its own atlas.sum, for replaying.
func appliedFiles(dir migrate.Dir, applied []database.Migration) (*appliedSet, error) {
	files, err := dir.Files()
	if err != nil {
		return nil, fmt.Errorf("migration: drift: read %s: %w", dirPath(dir), err)
	}
	byVersion := make(map[string]migrate.File, len(files))
	for _, f := range files {
		byVersion[f.Version()] = f
	}
	set := &appliedSet{}
	mem := &migrate.MemDir{}
	for _, m := range applied {
		f, ok := byVersion[m.Version]
		if !ok {
			return nil, fmt.Errorf("%w: %s is applied, %s has no such file (is this chatdb older than the database?)", ErrUnknownRevision, m.File(), dirPath(dir))
		}
		set.files = append(set.files, f)
		if err := mem.WriteFile(f.Name(), f.Bytes()); err != nil {
			return nil, fmt.Errorf("migration: drift: copy %s: %w", f.Name(), err)
		}
	}
	sum, err := migrate.NewHashFile(set.files)
	if err == nil {
		err = migrate.WriteSumFile(mem, sum)
	}
	if err != nil {
		return nil, fmt.Errorf("migration: drift: %w", err)
	}
	set.dir = mem
	return set, nil
}

// replayed applies dir on a clean dev database and returns the schema it
// leaves.
func replayed(ctx context.Context, op, dialect string, dir migrate.Dir, devURL string) (_ *schema.Schema, err error) {
	dev, err := openDev(ctx, dialect, devURL)
	if err != nil {
		return nil, &devError{err: err}
	}
	defer func() { err = errors.Join(err, dev.close()) }()
	if err := database.Migrate(ctx, dev.db, database.WithDir(dir)); err != nil {
		err = fmt.Errorf("migration: %s: replay the applied files: %w", op, err)
		if errors.Is(err, database.ErrPooler) {
			// The dev URL goes through a pooler: no usable dev database.
			err = &devError{err: err}
		}
		return nil, err
	}
	drv, err := atlasDriver(dialect, dev.db)
	if err != nil {
		return nil, err
	}
	s, err := drv.InspectSchema(ctx, "", &schema.InspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("migration: %s: inspect the dev database: %w", op, database.MapError(err))
	}
	return s, nil
}

// normalize leaves out of s what Drift does not compare: the revisions table
// (on SQLite it shares the main database; on PostgreSQL it has a schema of its
// own, which is not inspected) and comments.
func normalize(dialect string, s *schema.Schema) {
	if dialect == database.SQLite {
		tables := s.Tables[:0]
		for _, t := range s.Tables {
			if t.Name != database.RevisionsTable {
				tables = append(tables, t)
			}
		}
		s.Tables = tables
	}
	s.Attrs = schema.RemoveAttr[*schema.Comment](s.Attrs)
	for _, t := range s.Tables {
		t.Attrs = schema.RemoveAttr[*schema.Comment](t.Attrs)
		for _, c := range t.Columns {
			c.Attrs = schema.RemoveAttr[*schema.Comment](c.Attrs)
		}
		for _, i := range t.Indexes {
			i.Attrs = schema.RemoveAttr[*schema.Comment](i.Attrs)
		}
	}
	for _, v := range s.Views {
		v.Attrs = schema.RemoveAttr[*schema.Comment](v.Attrs)
		for _, c := range v.Columns {
			c.Attrs = schema.RemoveAttr[*schema.Comment](c.Attrs)
		}
	}
}

// describe says what each change means for the live schema: changes go from
// the live schema to the migrations', so an added column is one the live
// schema lacks.
func describe(changes []schema.Change) []string {
	var out []string
	for _, c := range changes {
		switch c := c.(type) {
		case *schema.ModifyTable:
			for _, tc := range c.Changes {
				out = append(out, fmt.Sprintf("%s: %s", c.T.Name, describeTable(tc)))
			}
		case *schema.AddTable:
			out = append(out, fmt.Sprintf("table %q is missing", c.T.Name))
		case *schema.DropTable:
			out = append(out, fmt.Sprintf("table %q is not in the migrations", c.T.Name))
		case *schema.AddView:
			out = append(out, fmt.Sprintf("view %q is missing", c.V.Name))
		case *schema.DropView:
			out = append(out, fmt.Sprintf("view %q is not in the migrations", c.V.Name))
		default:
			out = append(out, changeName(c))
		}
	}
	return out
}

func describeTable(c schema.Change) string {
	switch c := c.(type) {
	case *schema.AddColumn:
		return fmt.Sprintf("column %q is missing", c.C.Name)
	case *schema.DropColumn:
		return fmt.Sprintf("column %q is not in the migrations", c.C.Name)
	case *schema.ModifyColumn:
		return fmt.Sprintf("column %q differs", c.From.Name)
	case *schema.AddIndex:
		return fmt.Sprintf("index %q is missing", c.I.Name)
	case *schema.DropIndex:
		return fmt.Sprintf("index %q is not in the migrations", c.I.Name)
	case *schema.ModifyIndex:
		return fmt.Sprintf("index %q differs", c.From.Name)
	case *schema.AddForeignKey:
		return fmt.Sprintf("foreign key %q is missing", c.F.Symbol)
	case *schema.DropForeignKey:
		return fmt.Sprintf("foreign key %q is not in the migrations", c.F.Symbol)
	case *schema.ModifyForeignKey:
		return fmt.Sprintf("foreign key %q differs", c.From.Symbol)
	case *schema.AddCheck:
		return fmt.Sprintf("check %q is missing", c.C.Name)
	case *schema.DropCheck:
		return fmt.Sprintf("check %q is not in the migrations", c.C.Name)
	case *schema.ModifyCheck:
		return fmt.Sprintf("check %q differs", c.From.Name)
	case *schema.AddPrimaryKey, *schema.DropPrimaryKey, *schema.ModifyPrimaryKey:
		return "the primary key differs"
	}
	return changeName(c)
}

// changeName names a change Drift has no words for by its type: "ModifyAttr".
func changeName(c schema.Change) string {
	n := fmt.Sprintf("%T", c)
	if i := strings.LastIndexByte(n, '.'); i >= 0 {
		n = n[i+1:]
	}
	return "a change of kind " + n
}

// liveToFiles replays the files of dir on a clean dev database (see replayed)
// and returns the changes that take db's live schema to theirs, with the
// driver to plan them. Comments are not compared (normalize). op names the
// caller in errors.
func liveToFiles(ctx context.Context, db *database.DB, dir migrate.Dir, devURL, op string) (migrate.Driver, []schema.Change, error) {
	dialect := db.Dialect()
	want, err := replayed(ctx, op, dialect, dir, devURL)
	if err != nil {
		return nil, nil, err
	}
	drv, err := atlasDriver(dialect, db)
	if err != nil {
		return nil, nil, err
	}
	have, err := drv.InspectSchema(ctx, "", &schema.InspectOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("migration: %s: inspect %s: %w", op, db.URL(), database.MapError(err))
	}
	normalize(dialect, have)
	normalize(dialect, want)
	// The files name no schema: they create their tables in whichever schema
	// is current, which need not be called the same in both databases.
	want.Name = have.Name
	changes, err := drv.SchemaDiff(have, want)
	if err != nil {
		return nil, nil, fmt.Errorf("migration: %s: compare: %w", op, err)
	}
	return drv, changes, nil
}

// planAsFiles plans changes with drv as the migration files are written: no
// schema names, indented.
func planAsFiles(ctx context.Context, drv migrate.Driver, op string, changes []schema.Change) (*migrate.Plan, error) {
	noQualifier := ""
	plan, err := drv.PlanChanges(ctx, op, changes, func(o *migrate.PlanOptions) {
		o.SchemaQualifier = &noQualifier
		o.Indent = "  "
	})
	if err != nil {
		return nil, fmt.Errorf("migration: %s: plan: %w", op, err)
	}
	return plan, nil
}
