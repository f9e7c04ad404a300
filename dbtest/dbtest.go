package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/migrations"
)

// Target is a database and driver that tests run on.
type Target string

// The targets. Every database test runs on all of them.
const (
	// SQLite is the embedded database, a file in the test's temporary directory.
	SQLite Target = "sqlite"
	// PGX is PostgreSQL through pgx's database/sql driver, chatdb's default.
	PGX Target = "postgres-pgx"
	// PQ is PostgreSQL through github.com/lib/pq.
	PQ Target = "postgres-pq"
	// PGXBouncer is PGX through a PgBouncer in transaction mode that dbtest
	// starts in front of the server (Config.Pooler is
	// database.PoolerTransaction, Config.MigrationURL the direct URL). Run
	// runs it in test processes whose TestMain asks for it (WithPgBouncer).
	PGXBouncer Target = "postgres-pgx-pgbouncer"
	// PQBouncer is PQ through the same PgBouncer.
	PQBouncer Target = "postgres-pq-pgbouncer"
)

// Targets lists the targets every database test runs on, in the order Run
// runs them. With WithPgBouncer, Run adds PGXBouncer and PQBouncer.
var Targets = []Target{SQLite, PGX, PQ}

// Postgres reports whether the target is a PostgreSQL one.
func (t Target) Postgres() bool { return t == PGX || t == PQ || t.Pooled() }

// Pooled reports whether the target reaches PostgreSQL through PgBouncer in
// transaction mode.
func (t Target) Pooled() bool { return t == PGXBouncer || t == PQBouncer }

// Driver returns the database.Config.Driver value for the target.
func (t Target) Driver() string {
	if t == PQ || t == PQBouncer {
		return database.DriverPQ
	}
	return database.DriverPgx
}

// Dialect returns database.Postgres or database.SQLite.
func (t Target) Dialect() string {
	if t.Postgres() {
		return database.Postgres
	}
	return database.SQLite
}

// Run runs fn as a subtest for each target, in parallel with each other when the
// caller asked for t.Parallel itself.
func Run(t *testing.T, fn func(t *testing.T, target Target)) {
	t.Helper()
	for _, target := range runTargets() {
		t.Run(string(target), func(t *testing.T) {
			fn(t, target)
		})
	}
}

// RunPostgres is Run for the PostgreSQL targets only, for behaviour SQLite does not
// have (advisory locks, SQLSTATEs, killed backends).
func RunPostgres(t *testing.T, fn func(t *testing.T, target Target)) {
	t.Helper()
	for _, target := range runTargets() {
		if !target.Postgres() {
			continue
		}
		t.Run(string(target), func(t *testing.T) {
			fn(t, target)
		})
	}
}

// Option adjusts the database.Config a test database is opened with.
type Option func(*database.Config)

// WithConfig applies fn to the Config before Open; URL and Driver are already set.
func WithConfig(fn func(*database.Config)) Option { return Option(fn) }

// Open returns a *database.DB on a new database of the test's own, with every
// migration applied. The database is closed and removed when the test ends.
func Open(t testing.TB, target Target, opts ...Option) *database.DB {
	t.Helper()
	cfg := Config(t, target)
	for _, opt := range opts {
		opt(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := database.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("dbtest: open %s: %v", target, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Config returns a database.Config for a new, migrated database of the test's own,
// without opening it: for tests that open several pools on one database or run
// the command-line tool. The database is removed when the test ends.
func Config(t testing.TB, target Target) database.Config {
	t.Helper()
	switch target {
	case SQLite:
		return database.Config{URL: sqliteDatabase(t)}
	case PGX, PQ:
		return database.Config{URL: postgresDatabase(t), Driver: target.Driver()}
	case PGXBouncer, PQBouncer:
		return pooledConfig(t, target, postgresDatabase(t))
	default:
		t.Fatalf("dbtest: unknown target %q", target)
		return database.Config{}
	}
}

// EmptyConfig is Config without migrations: a new, empty database of the test's
// own, for tests of migrating itself.
func EmptyConfig(t testing.TB, target Target) database.Config {
	t.Helper()
	switch target {
	case SQLite:
		return database.Config{URL: filepath.Join(t.TempDir(), "empty.db")}
	case PGX, PQ:
		srv := server(t)
		name := "chatdb_test_" + randomHex(8)
		srv.createDatabase(t, name, "")
		return database.Config{URL: srv.url(name), Driver: target.Driver()}
	case PGXBouncer, PQBouncer:
		srv := server(t)
		name := "chatdb_test_" + randomHex(8)
		srv.createDatabase(t, name, "")
		return pooledConfig(t, target, srv.url(name))
	default:
		t.Fatalf("dbtest: unknown target %q", target)
		return database.Config{}
	}
}

// AdminURL returns the URL of the PostgreSQL server's maintenance database, for
// tests that must act as the server's administrator (terminate backends, create
// roles). It skips or fails the test as Open does when there is no PostgreSQL.
func AdminURL(t testing.TB) string {
	t.Helper()
	return server(t).url(server(t).adminDB)
}

// --- SQLite ---

var sqliteTemplate struct {
	once sync.Once
	path string
	err  error
}

// sqliteDatabase copies a template file, migrated once per process, into the
// test's temporary directory.
func sqliteDatabase(t testing.TB) string {
	t.Helper()
	sqliteTemplate.once.Do(func() {
		dir, err := os.MkdirTemp("", "chatdb-dbtest-")
		if err != nil {
			sqliteTemplate.err = err
			return
		}
		cleanups.add(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "template.db")
		sqliteTemplate.err = migrateTemplate(database.Config{URL: path})
		sqliteTemplate.path = path
	})
	if sqliteTemplate.err != nil {
		t.Fatalf("dbtest: sqlite template: %v", sqliteTemplate.err)
	}
	path := filepath.Join(t.TempDir(), "chatdb.db")
	if err := copyFile(sqliteTemplate.path, path); err != nil {
		t.Fatalf("dbtest: copy sqlite template: %v", err)
	}
	return path
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// migrateTemplate opens cfg, applies every migration and closes it again. Closing
// the last connection checkpoints SQLite's WAL into the main file.
func migrateTemplate(cfg database.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg.MaxOpenConns = 1
	db, err := database.Open(ctx, cfg)
	if err != nil {
		return err
	}
	if err := database.Migrate(ctx, db); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// --- PostgreSQL ---

// postgresDatabase creates a database from the migrated template and returns its
// URL; it is dropped when the test ends.
func postgresDatabase(t testing.TB) string {
	t.Helper()
	srv := server(t)
	tpl := srv.template(t)
	name := "chatdb_test_" + randomHex(8)
	srv.createDatabase(t, name, tpl)
	return srv.url(name)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// templateName names the template after the migration files, so that a changed
// migration directory gets a new template and stale ones are never used.
func templateName() (string, error) {
	dir, err := migrations.Dir(database.Postgres)
	if err != nil {
		return "", err
	}
	sum, err := dir.Checksum()
	if err != nil {
		return "", err
	}
	h := strings.ToLower(hex.EncodeToString([]byte(sum.Sum())))
	if len(h) > 24 {
		h = h[:24]
	}
	return "chatdb_tpl_" + h, nil
}

// pgServer is the PostgreSQL server the tests of this process use.
type pgServer struct {
	base    *url.URL
	adminDB string

	tplOnce sync.Once
	tpl     string
	tplErr  error

	// admin is one pool on the maintenance database for the whole process,
	// shared by every test's CREATE and DROP DATABASE; Main closes it.
	adminOnce sync.Once
	admin     *database.DB
	adminErr  error
}

var found struct {
	once   sync.Once
	srv    *pgServer
	reason string
}

var skipLine sync.Once

// server returns the PostgreSQL server, or skips (fails, when
// CHATDB_TEST_REQUIRE_POSTGRES=1) the test when there is none.
func server(t testing.TB) *pgServer {
	t.Helper()
	found.once.Do(func() { found.srv, found.reason = findServer() })
	if found.srv != nil {
		return found.srv
	}
	if os.Getenv("CHATDB_TEST_REQUIRE_POSTGRES") == "1" {
		t.Fatalf("dbtest: PostgreSQL required (CHATDB_TEST_REQUIRE_POSTGRES=1) but not available: %s", found.reason)
	}
	skipLine.Do(func() {
		fmt.Fprintf(os.Stderr, "dbtest: skipping PostgreSQL tests: %s (set CHATDB_TEST_DATABASE_URL, or CHATDB_TEST_REQUIRE_POSTGRES=1 to fail instead)\n", found.reason)
	})
	t.Skipf("dbtest: no PostgreSQL: %s", found.reason)
	return nil
}

// localURL is the local server tried after the environment; a variable so that a
// test can make it unreachable.
var localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func findServer() (*pgServer, string) {
	var tried []string
	for _, env := range []string{"CHATDB_TEST_DATABASE_URL", "DATABASE_URL"} {
		u := os.Getenv(env)
		if !database.IsPostgresURL(u) {
			continue
		}
		if srv, err := probe(u); err == nil {
			return srv, ""
		} else if env == "CHATDB_TEST_DATABASE_URL" {
			// An explicit test URL that does not work is a mistake to report, not a
			// reason to go and find another server.
			return nil, fmt.Sprintf("%s: %v", env, err)
		} else {
			tried = append(tried, fmt.Sprintf("%s: %v", env, err))
		}
	}
	srv, err := probe(localURL)
	if err == nil {
		return srv, ""
	}
	tried = append(tried, fmt.Sprintf("local server: %v", err))
	c, err := startProcessCluster()
	if err == nil {
		srv, err := probe(c.URL())
		if err == nil {
			return srv, ""
		}
		tried = append(tried, fmt.Sprintf("throwaway cluster: %v", err))
	} else {
		tried = append(tried, fmt.Sprintf("throwaway cluster: %v", err))
	}
	return nil, strings.Join(tried, "; ")
}

// probe connects to raw and checks that it may create databases.
func probe(raw string) (*pgServer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("malformed URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := database.Open(ctx, database.Config{URL: raw, OpenRetryWindow: -1, ConnectTimeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var canCreate bool
	if err := db.SQL().QueryRowContext(ctx, "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&canCreate); err != nil {
		return nil, err
	}
	if !canCreate {
		return nil, errors.New("the user may not create databases")
	}
	admin := strings.TrimPrefix(u.Path, "/")
	if admin == "" {
		admin = "postgres"
	}
	return &pgServer{base: u, adminDB: admin}, nil
}

// url returns the URL of database name on the server.
func (s *pgServer) url(name string) string {
	u := *s.base
	u.Path = "/" + name
	return u.String()
}

// exec runs statements on the maintenance database.
func (s *pgServer) exec(stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s.adminOnce.Do(func() {
		s.admin, s.adminErr = database.Open(ctx, database.Config{URL: s.url(s.adminDB), MaxOpenConns: 4, MaxIdleConns: 2, OpenRetryWindow: -1})
		if s.adminErr == nil {
			cleanups.add(func() { s.admin.Close() })
		}
	})
	if s.adminErr != nil {
		return s.adminErr
	}
	db := s.admin
	for _, stmt := range stmts {
		if _, err := db.SQL().ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (s *pgServer) createDatabase(t testing.TB, name, template string) {
	t.Helper()
	stmt := "CREATE DATABASE " + quoteIdent(name)
	if template != "" {
		stmt += " TEMPLATE " + quoteIdent(template)
	}
	if err := s.exec(stmt); err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	t.Cleanup(func() {
		// The test's own pools are closed by now (cleanups run last-in first-out);
		// FORCE ends any session a test leaked.
		if err := s.exec("DROP DATABASE IF EXISTS " + quoteIdent(name) + " WITH (FORCE)"); err != nil {
			t.Errorf("dbtest: drop database %s: %v", name, err)
		}
	})
}

// template returns the name of the migrated template database, creating it on the
// first call of any test process. Processes running at once (go test ./... runs
// packages in parallel) agree through an advisory lock.
func (s *pgServer) template(t testing.TB) string {
	t.Helper()
	s.tplOnce.Do(func() { s.tpl, s.tplErr = s.buildTemplate() })
	if s.tplErr != nil {
		t.Fatalf("dbtest: template database: %v", s.tplErr)
	}
	return s.tpl
}

// templateLockKey is the advisory lock that serialises template creation.
const templateLockKey = 7243011

func (s *pgServer) buildTemplate() (string, error) {
	name, err := templateName()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin, err := database.Open(ctx, database.Config{URL: s.url(s.adminDB), MaxOpenConns: 2, OpenRetryWindow: -1})
	if err != nil {
		return "", err
	}
	defer admin.Close()
	conn, err := admin.SQL().Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return "", err
	}
	defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", templateLockKey)
	var exists bool
	if err := conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	// Build under another name and rename when done, so that a process killed
	// half-way never leaves a half-migrated template under the real name.
	building := name + "_building"
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(building)+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(building)); err != nil {
		return "", err
	}
	if err := migrateTemplate(database.Config{URL: s.url(building), OpenRetryWindow: -1}); err != nil {
		conn.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+quoteIdent(building)+" WITH (FORCE)")
		return "", fmt.Errorf("migrate: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+quoteIdent(building)+" RENAME TO "+quoteIdent(name)); err != nil {
		return "", err
	}
	return name, nil
}

// --- process-wide cleanup ---

type cleanupList struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanupList) add(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, fn)
}

func (c *cleanupList) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

var cleanups cleanupList

// Main runs the tests and then releases what dbtest set up for the whole process:
// the SQLite template file and, if they were started, the throwaway PostgreSQL
// cluster and PgBouncer. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
func Main(m *testing.M, opts ...MainOption) int {
	applyMainOptions(opts)
	code := m.Run()
	cleanups.run()
	return code
}
