package database_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	atlasschema "ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlite"
	"entgo.io/ent/dialect/entsql"
	entdsql "entgo.io/ent/dialect/sql"
	entschema "entgo.io/ent/dialect/sql/schema"
	"entgo.io/ent/schema/field"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/migrations"
	"github.com/chatdb/chatdb/viewer"
)

// The migration tests make their databases themselves (an SQLite file in a
// temporary directory, a scratch database on the PostgreSQL server) rather than
// through dbtest, whose template databases are built with Migrate: they test
// what dbtest relies on.

// migScratchPostgres creates an empty database for the test and returns its URL;
// the database is dropped when the test ends. Which server, and whether its
// absence skips or fails the test, is dbtest's rule, as everywhere else.
func migScratchPostgres(t *testing.T) string {
	t.Helper()
	return dbtest.EmptyConfig(t, dbtest.PGX).URL
}

// migDialects runs fn once per dialect (and PostgreSQL driver), each with the
// config of an empty database of its own.
func migDialects(t *testing.T, fn func(t *testing.T, cfg database.Config)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, database.Config{URL: filepath.Join(t.TempDir(), "chatdb.db")})
	})
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		t.Run("postgres-"+drv, func(t *testing.T) {
			t.Parallel()
			fn(t, database.Config{URL: migScratchPostgres(t), Driver: drv})
		})
	}
}

func migOpen(t *testing.T, cfg database.Config) *database.DB {
	t.Helper()
	db, err := database.Open(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// migDir returns a copy of the embedded directory for dialect with extra files
// added after it, and atlas.sum recomputed over all of them.
func migDir(t *testing.T, dialect string, extra ...migrate.File) *migrate.MemDir {
	t.Helper()
	src, err := migrations.Dir(dialect)
	require.NoError(t, err)
	files, err := src.Files()
	require.NoError(t, err)
	files = append(files, extra...)
	dir := &migrate.MemDir{}
	require.NoError(t, dir.CopyFiles(files))
	return dir
}

// migEmbedded returns the embedded migration files for dialect, oldest first.
func migEmbedded(t *testing.T, dialect string) []migrate.File {
	t.Helper()
	dir, err := migrations.Dir(dialect)
	require.NoError(t, err)
	files, err := dir.Files()
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

// migVersions returns the versions of files, in order.
func migVersions(files []migrate.File) []string {
	vs := make([]string, len(files))
	for i, f := range files {
		vs[i] = f.Version()
	}
	return vs
}

// migInitial returns the embedded initial migration file.
func migInitial(t *testing.T, dialect string) migrate.File {
	t.Helper()
	dir, err := migrations.Dir(dialect)
	require.NoError(t, err)
	files, err := dir.Files()
	require.NoError(t, err)
	require.NotEmpty(t, files)
	require.Equal(t, "initial", files[0].Desc())
	return files[0]
}

// migTables lists the tables of the database's current schema (PostgreSQL) or
// main database (SQLite).
func migTables(t *testing.T, db *database.DB) []string {
	t.Helper()
	query := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
	if db.Dialect() == database.Postgres {
		query = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
	}
	rows, err := db.SQL().QueryContext(t.Context(), query)
	require.NoError(t, err)
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	return names
}

func migRevisionsTable(db *database.DB) string {
	if db.Dialect() == database.Postgres {
		return database.RevisionsSchema + "." + database.RevisionsTable
	}
	return database.RevisionsTable
}

// migRevisionsExist reports whether the revisions table exists.
func migRevisionsExist(t *testing.T, db *database.DB) bool {
	t.Helper()
	query := "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'atlas_schema_revisions')"
	if db.Dialect() == database.Postgres {
		query = "SELECT to_regclass('atlas_schema_revisions.atlas_schema_revisions') IS NOT NULL"
	}
	var ok bool
	require.NoError(t, db.SQL().QueryRowContext(t.Context(), query).Scan(&ok))
	return ok
}

type migRevision struct {
	version, description, hash, operator string
	typ, applied, total                  int64
	executedAt                           time.Time
	errText, errStmt                     sql.NullString
	partial                              []byte
}

func migRevisions(t *testing.T, db *database.DB) []migRevision {
	t.Helper()
	rows, err := db.SQL().QueryContext(t.Context(), "SELECT version, description, type, applied, total, executed_at, error, error_stmt, hash, partial_hashes, operator_version FROM "+migRevisionsTable(db)+" ORDER BY version")
	require.NoError(t, err)
	defer rows.Close()
	var revs []migRevision
	for rows.Next() {
		var r migRevision
		require.NoError(t, rows.Scan(&r.version, &r.description, &r.typ, &r.applied, &r.total, &r.executedAt, &r.errText, &r.errStmt, &r.hash, &r.partial, &r.operator))
		revs = append(revs, r)
	}
	require.NoError(t, rows.Err())
	return revs
}

var migAppTables = []string{"chats", "credentials", "memberships", "messages", "users"}

func TestMigrateEmptyDatabase(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		files := migEmbedded(t, db.Dialect())
		var reported []database.Migration
		require.NoError(t, database.Migrate(t.Context(), db, database.WithProgress(func(m database.Migration) {
			reported = append(reported, m)
		})))

		require.Subset(t, migTables(t, db), migAppTables)
		require.Equal(t, migNames(files), migFiles(reported), "every embedded file, in order")
		for _, m := range reported {
			require.Positive(t, m.Statements, m.File())
			require.False(t, m.AppliedAt.IsZero(), m.File())
		}

		dir, err := migrations.Dir(db.Dialect())
		require.NoError(t, err)
		sum, err := dir.Checksum()
		require.NoError(t, err)
		revs := migRevisions(t, db)
		require.Len(t, revs, len(files))
		for i, r := range revs {
			f := files[i]
			wantHash, err := sum.SumByName(f.Name())
			require.NoError(t, err)
			require.Equal(t, f.Version(), r.version)
			require.Equal(t, f.Desc(), r.description)
			require.EqualValues(t, migrate.RevisionTypeExecute, r.typ)
			require.EqualValues(t, reported[i].Statements, r.applied)
			require.EqualValues(t, reported[i].Statements, r.total)
			require.Equal(t, wantHash, r.hash)
			// error, error_stmt and partial_hashes: TestRevisionRowsAsAtlasWrites.
			require.True(t, strings.HasPrefix(r.operator, "chatdb "), r.operator)
			require.WithinDuration(t, time.Now(), r.executedAt, time.Minute)
		}
		require.Equal(t, "initial", revs[0].description)

		// The schema is the one ent's client expects.
		u, err := db.Client().User.Create().SetEmail("ada@example.com").SetDisplayName("Ada").Save(viewer.SystemContext(t.Context()))
		require.NoError(t, err)
		_, err = db.Client().Chat.Create().SetKind("group").SetCreatedBy(u.ID).Save(viewer.SystemContext(t.Context()))
		require.NoError(t, err)
	})
}

// migFiles returns the file names of ms, in order.
func migFiles(ms []database.Migration) []string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.File()
	}
	return names
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		require.NoError(t, database.Migrate(t.Context(), db))
		before := migRevisions(t, db)

		calls := 0
		require.NoError(t, database.Migrate(t.Context(), db, database.WithProgress(func(database.Migration) { calls++ })))
		require.Zero(t, calls)
		require.Equal(t, before, migRevisions(t, db))

		st, err := database.Migrations(t.Context(), db)
		require.NoError(t, err)
		require.Empty(t, st.Pending)
		require.Len(t, st.Applied, len(migEmbedded(t, db.Dialect())))
	})
}

func TestMigrationsStatus(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		files := migEmbedded(t, db.Dialect())

		st, err := database.Migrations(t.Context(), db)
		require.NoError(t, err)
		require.Empty(t, st.Applied)
		require.Equal(t, migNames(files), migFiles(st.Pending))
		for _, m := range st.Pending {
			require.True(t, m.AppliedAt.IsZero(), m.File())
		}
		require.False(t, migRevisionsExist(t, db), "Migrations must not create the revisions table")

		// Part way: only the first file applied, from a directory of just that.
		require.NoError(t, database.Migrate(t.Context(), db, database.WithDir(migPrefix(t, files, 1))))
		st, err = database.Migrations(t.Context(), db)
		require.NoError(t, err)
		require.Equal(t, migNames(files[:1]), migFiles(st.Applied))
		require.Equal(t, migNames(files[1:]), migFiles(st.Pending))

		require.NoError(t, database.Migrate(t.Context(), db))
		st, err = database.Migrations(t.Context(), db)
		require.NoError(t, err)
		require.Empty(t, st.Pending)
		require.Equal(t, migNames(files), migFiles(st.Applied))
		for i, m := range st.Applied {
			require.Equal(t, files[i].Version(), m.Version)
			require.WithinDuration(t, time.Now(), m.AppliedAt, time.Minute, m.File())
		}
	})
}

// migPrefix returns a directory of the first n of files, with its atlas.sum.
func migPrefix(t *testing.T, files []migrate.File, n int) *migrate.MemDir {
	t.Helper()
	dir := &migrate.MemDir{}
	require.NoError(t, dir.CopyFiles(files[:n]))
	return dir
}

func TestMigrateDryRun(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		var pending []string
		require.NoError(t, database.Migrate(t.Context(), db, database.WithDryRun(), database.WithProgress(func(m database.Migration) {
			pending = append(pending, m.File())
		})))
		require.Equal(t, migNames(migEmbedded(t, db.Dialect())), pending)
		require.Empty(t, migTables(t, db))
		require.False(t, migRevisionsExist(t, db))
	})
}

// TestMigrateFailingFile: a file that fails midway is rolled back as a whole, the
// files before it stay applied, and the error names the file and statement.
func TestMigrateFailingFile(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		broken := migrate.NewLocalFile("29990101000000_broken.sql", []byte(
			"CREATE TABLE half_done (id integer);\n"+
				"INSERT INTO no_such_table (id) VALUES (1);\n"+
				"CREATE TABLE never_reached (id integer);\n"))
		dir := migDir(t, db.Dialect(), broken)

		for range 2 { // failing again changes nothing either
			err := database.Migrate(t.Context(), db, database.WithDir(dir))
			require.ErrorIs(t, err, database.ErrMigration)
			var me *database.MigrationError
			require.ErrorAs(t, err, &me)
			require.Equal(t, "29990101000000_broken.sql", me.File)
			require.Equal(t, "INSERT INTO no_such_table (id) VALUES (1);", me.Stmt)
			require.Contains(t, err.Error(), "29990101000000_broken.sql")
			require.Contains(t, err.Error(), "no_such_table")

			tables := migTables(t, db)
			require.Subset(t, tables, migAppTables, "the files before the broken one stay applied")
			require.NotContains(t, tables, "half_done", "the broken file is rolled back")
			require.NotContains(t, tables, "never_reached")
			var versions []string
			for _, r := range migRevisions(t, db) {
				versions = append(versions, r.version)
			}
			require.Equal(t, migVersions(migEmbedded(t, db.Dialect())), versions, "no revision is recorded for the rolled-back file")
		}

		st, err := database.Migrations(t.Context(), db, database.WithDir(dir))
		require.NoError(t, err)
		require.Len(t, st.Pending, 1)
		require.Equal(t, "29990101000000_broken.sql", st.Pending[0].File())
	})
}

func TestMigrateTamperedDir(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		dir := migDir(t, db.Dialect())
		initial := migInitial(t, db.Dialect())
		b := []byte(string(initial.Bytes()))
		i := strings.Index(string(b), "NOT NULL")
		require.Positive(t, i)
		b[i] = 'n' // one byte, after atlas.sum was computed
		require.NoError(t, dir.WriteFile(initial.Name(), b))

		for _, opts := range [][]database.MigrateOption{
			{database.WithDir(dir)},
			{database.WithDir(dir), database.WithDryRun()},
		} {
			err := database.Migrate(t.Context(), db, opts...)
			require.ErrorIs(t, err, database.ErrChecksum)
			require.ErrorIs(t, err, migrate.ErrChecksumMismatch)
			var ce *database.ChecksumError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, initial.Name(), ce.File)
			require.Equal(t, "edited", ce.Reason)
		}
		_, err := database.Migrations(t.Context(), db, database.WithDir(dir))
		require.ErrorIs(t, err, database.ErrChecksum)

		require.Empty(t, migTables(t, db))
		require.False(t, migRevisionsExist(t, db))
	})
}

func TestMigrateMissingSum(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		dir := &migrate.MemDir{}
		initial := migInitial(t, db.Dialect())
		require.NoError(t, dir.WriteFile(initial.Name(), initial.Bytes()))

		err := database.Migrate(t.Context(), db, database.WithDir(dir))
		require.ErrorIs(t, err, database.ErrChecksum)
		require.ErrorIs(t, err, migrate.ErrChecksumNotFound)
		var ce *database.ChecksumError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "atlas.sum is missing", ce.Reason)
		require.Empty(t, migTables(t, db))
	})
}

func TestMigrateAddedFileWithoutSum(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		dir := migDir(t, db.Dialect())
		// Added by hand, without recomputing atlas.sum.
		require.NoError(t, dir.WriteFile("29990101000000_sneaky.sql", []byte("CREATE TABLE sneaky (id integer);\n")))
		err := database.Migrate(t.Context(), db, database.WithDir(dir))
		var ce *database.ChecksumError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "29990101000000_sneaky.sql", ce.File)
		require.Equal(t, "added", ce.Reason)
		require.Empty(t, migTables(t, db))
	})
}

// TestMigrateNotClean: a database with tables but no history is refused, rather
// than migrated on top of whatever is there.
func TestMigrateNotClean(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		_, err := db.SQL().ExecContext(t.Context(), "CREATE TABLE stray (id integer)")
		require.NoError(t, err)

		err = database.Migrate(t.Context(), db)
		require.ErrorIs(t, err, database.ErrNotClean)
		require.Contains(t, err.Error(), `"stray"`)
		require.Equal(t, []string{"stray"}, migTables(t, db))
		require.False(t, migRevisionsExist(t, db), "a refused database is left as it was")
	})
}

// TestMigrateConcurrent: Migrate calls from separate pools at the same time apply
// each file exactly once, and all of them succeed.
func TestMigrateConcurrent(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		dialect := database.SQLite
		if strings.HasPrefix(cfg.URL, "postgres") {
			dialect = database.Postgres
		}
		dir := migDir(t, dialect,
			migrate.NewLocalFile("29990101000001_log.sql", []byte("CREATE TABLE applied_log (file integer NOT NULL);\nINSERT INTO applied_log (file) VALUES (1);\n")),
			migrate.NewLocalFile("29990101000002_more.sql", []byte("INSERT INTO applied_log (file) VALUES (2);\n")),
		)
		files, err := dir.Files()
		require.NoError(t, err)

		const n = 4
		pools := make([]*database.DB, n)
		for i := range pools {
			pools[i] = migOpen(t, cfg)
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			applied []string
			errs    = make([]error, n)
		)
		start := make(chan struct{})
		for i, db := range pools {
			wg.Go(func() {
				<-start
				// Each goroutine needs its own copy: a MemDir is not safe for
				// concurrent use.
				errs[i] = database.Migrate(t.Context(), db, database.WithDir(migCopy(t, dir)), database.WithProgress(func(m database.Migration) {
					mu.Lock()
					applied = append(applied, m.File())
					mu.Unlock()
				}))
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, applied, len(files), "each file is applied once: %v", applied)
		require.ElementsMatch(t, migNames(files), applied)
		require.Len(t, migRevisions(t, pools[0]), len(files))
		var logged []int
		rows, err := pools[0].SQL().QueryContext(t.Context(), "SELECT file FROM applied_log ORDER BY file")
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var f int
			require.NoError(t, rows.Scan(&f))
			logged = append(logged, f)
		}
		require.NoError(t, rows.Err())
		require.Equal(t, []int{1, 2}, logged)
	})
}

func migCopy(t *testing.T, dir *migrate.MemDir) *migrate.MemDir {
	t.Helper()
	files, err := dir.Files()
	require.NoError(t, err)
	c := &migrate.MemDir{}
	require.NoError(t, c.CopyFiles(files))
	return c
}

func migNames(files []migrate.File) []string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name()
	}
	return names
}

// TestMigrateWaitsForAtlasLock: Migrate takes the advisory lock the Atlas CLI
// takes, waits while someone else holds it, and releases it when done.
func TestMigrateWaitsForAtlasLock(t *testing.T) {
	t.Parallel()
	cfg := database.Config{URL: migScratchPostgres(t)}
	db := migOpen(t, cfg)
	other := migOpen(t, cfg)

	key := migLockKey()
	conn, err := other.SQL().Conn(t.Context())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(t.Context(), "SELECT pg_advisory_lock($1)", key)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = database.Migrate(ctx, db)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, database.ErrTimeout)
	require.Empty(t, migTables(t, db), "nothing is applied without the lock")

	done := make(chan error, 1)
	go func() { done <- database.Migrate(t.Context(), db) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Migrate returned while the lock was held: %v", err)
	default:
	}
	_, err = conn.ExecContext(t.Context(), "SELECT pg_advisory_unlock($1)", key)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.Subset(t, migTables(t, db), migAppTables)

	var held int
	require.NoError(t, other.SQL().QueryRowContext(t.Context(),
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
		key).Scan(&held))
	require.Zero(t, held, "the lock is released after Migrate")
}

// TestMigrateSQLiteSingleConnection: Migrate works with a pool of one connection
// (it uses nothing but the connection it took), and gives that connection back
// with foreign keys enforced again.
func TestMigrateSQLiteSingleConnection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, database.Config{URL: filepath.Join(t.TempDir(), "one.db"), MaxOpenConns: 1})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, database.Migrate(ctx, db))

	var on bool
	require.NoError(t, db.SQL().QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&on))
	require.True(t, on)
}

// TestMigrateSQLiteForeignKeyCheck: foreign keys are not enforced while a file
// runs on SQLite (table rebuilds need that), so a file that leaves a dangling
// reference is caught before it commits.
func TestMigrateSQLiteForeignKeyCheck(t *testing.T) {
	t.Parallel()
	db := migOpen(t, database.Config{URL: filepath.Join(t.TempDir(), "fk.db")})
	dangling := migrate.NewLocalFile("29990101000000_dangling.sql", []byte(fmt.Sprintf(
		"INSERT INTO memberships (id, role, joined_at, muted, user_id, chat_id) VALUES ('%s', 'member', '2025-01-01 00:00:00', false, '%s', '%s');\n",
		uuid.New(), uuid.New(), uuid.New())))
	err := database.Migrate(t.Context(), db, database.WithDir(migDir(t, database.SQLite, dangling)))
	require.ErrorIs(t, err, database.ErrMigration)
	require.ErrorIs(t, err, database.ErrInvalidReference)
	var me *database.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "29990101000000_dangling.sql", me.File)

	var n int
	require.NoError(t, db.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM memberships").Scan(&n))
	require.Zero(t, n)
	require.Len(t, migRevisions(t, db), len(migEmbedded(t, database.SQLite)))
}

// TestRevisionsTableMatchesAtlasCLI compares the revisions table Migrate creates
// with the one the Atlas CLI creates: ent's migration of the CLI's Revision
// schema (ariga/atlas cmd/atlas/internal/migrate/ent/migrate/schema.go, copied
// below).
func TestRevisionsTableMatchesAtlasCLI(t *testing.T) {
	migDialects(t, func(t *testing.T, cfg database.Config) {
		db := migOpen(t, cfg)
		require.NoError(t, database.Migrate(t.Context(), db))

		// The CLI's table, created by ent in a second database.
		refCfg := database.Config{URL: filepath.Join(t.TempDir(), "ref.db")}
		if db.Dialect() == database.Postgres {
			refCfg = database.Config{URL: migScratchPostgres(t)}
		}
		ref := migOpen(t, refCfg)
		cols := []*entschema.Column{
			{Name: "version", Type: field.TypeString},
			{Name: "description", Type: field.TypeString},
			{Name: "type", Type: field.TypeUint, Default: 2},
			{Name: "applied", Type: field.TypeInt, Default: 0},
			{Name: "total", Type: field.TypeInt, Default: 0},
			{Name: "executed_at", Type: field.TypeTime},
			{Name: "execution_time", Type: field.TypeInt64},
			{Name: "error", Type: field.TypeString, Nullable: true, Size: 2147483647},
			{Name: "error_stmt", Type: field.TypeString, Nullable: true, Size: 2147483647},
			{Name: "hash", Type: field.TypeString},
			{Name: "partial_hashes", Type: field.TypeJSON, Nullable: true},
			{Name: "operator_version", Type: field.TypeString},
		}
		table := &entschema.Table{Name: "atlas_schema_revisions", Columns: cols, PrimaryKey: cols[:1],
			Annotation: &entsql.Annotation{Table: "atlas_schema_revisions"}}
		m, err := entschema.NewMigrate(entdsql.OpenDB(ref.Dialect(), ref.SQL()))
		require.NoError(t, err)
		require.NoError(t, m.Create(t.Context(), table))

		inspect := func(db *database.DB, schema string) *atlasschema.Table {
			var (
				drv migrate.Driver
				err error
			)
			if db.Dialect() == database.Postgres {
				drv, err = postgres.Open(db.SQL())
			} else {
				drv, err = sqlite.Open(db.SQL())
			}
			require.NoError(t, err)
			s, err := drv.InspectSchema(t.Context(), schema, nil)
			require.NoError(t, err)
			tb, ok := s.Table("atlas_schema_revisions")
			require.True(t, ok, "no revisions table in %q", schema)
			return tb
		}
		ourSchema, refSchema := "", ""
		if db.Dialect() == database.Postgres {
			ourSchema, refSchema = database.RevisionsSchema, "public"
		}
		ours, theirs := inspect(db, ourSchema), inspect(ref, refSchema)
		var drv migrate.Driver
		if db.Dialect() == database.Postgres {
			drv, err = postgres.Open(db.SQL())
		} else {
			drv, err = sqlite.Open(db.SQL())
		}
		require.NoError(t, err)
		changes, err := drv.TableDiff(ours, theirs)
		require.NoError(t, err)
		var diffs []string
		for _, c := range changes {
			switch c := c.(type) {
			case *atlasschema.ModifyColumn:
				diffs = append(diffs, fmt.Sprintf("column %s: ours %+v, Atlas CLI's %+v", c.From.Name, c.From.Type, c.To.Type))
			default:
				diffs = append(diffs, fmt.Sprintf("%T", c))
			}
		}
		require.Empty(t, diffs, "revisions table differs from the Atlas CLI's")
	})
}

// TestMigrateErrorsKeepTheirKind: a failing statement's database error is still
// classified, so callers can tell a timeout from a bad file.
func TestMigrateErrorsKeepTheirKind(t *testing.T) {
	t.Parallel()
	db := migOpen(t, database.Config{URL: filepath.Join(t.TempDir(), "kind.db")})
	dup := migrate.NewLocalFile("29990101000000_dup.sql", []byte(
		"INSERT INTO users (id, created_at, updated_at, email, display_name, status) VALUES ('a', '2025-01-01', '2025-01-01', 'x@example.com', 'X', 'active');\n"+
			"INSERT INTO users (id, created_at, updated_at, email, display_name, status) VALUES ('b', '2025-01-01', '2025-01-01', 'x@example.com', 'X', 'active');\n"))
	err := database.Migrate(t.Context(), db, database.WithDir(migDir(t, database.SQLite, dup)))
	require.ErrorIs(t, err, database.ErrMigration)
	require.ErrorIs(t, err, database.ErrConflict)
}

// TestMigrateRefusesTxModeNone: on SQLite, a file written for the Atlas CLI's non-transactional
// mode is refused with a clear error instead of failing halfway.
func TestMigrateRefusesTxModeNone(t *testing.T) {
	t.Parallel()
	db := migOpen(t, database.Config{URL: filepath.Join(t.TempDir(), "txmode.db")})
	none := migrate.NewLocalFile("29990101000000_concurrently.sql", []byte(
		"-- atlas:txmode none\n\nCREATE INDEX users_status_idx ON users (status);\n"))
	err := database.Migrate(t.Context(), db, database.WithDir(migDir(t, database.SQLite, none)))
	require.ErrorIs(t, err, database.ErrMigration)
	var me *database.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "29990101000000_concurrently.sql", me.File)
	require.Contains(t, err.Error(), "txmode none")
	require.Len(t, migRevisions(t, db), len(migEmbedded(t, database.SQLite)), "the files before it are applied")
}
