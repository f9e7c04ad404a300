// Package dbtest gives each test a real, isolated, migrated database, as ent's
// enttest and pgx's pgxtest do for theirs.
//
// Every test that touches the database runs on each Target: embedded SQLite, and
// PostgreSQL through pgx and through lib/pq.
//
//	func TestSomething(t *testing.T) {
//		dbtest.Run(t, func(t *testing.T, target dbtest.Target) {
//			db := dbtest.Open(t, target)
//			// db is a *database.DB on a database of this test's own, with every
//			// migration applied; it is closed and dropped when the test ends.
//		})
//	}
//
// PostgreSQL is found, once per test process, at CHATDB_TEST_DATABASE_URL, else
// DATABASE_URL (when it is a postgres:// URL), else the local server at
// 127.0.0.1:5432 (user postgres), else a throwaway cluster started from the
// PostgreSQL binaries on the machine (initdb into a temporary directory). Each test
// database is a copy of a template database migrated once with the real migration
// files. When no PostgreSQL can be had, the PostgreSQL targets are skipped with one
// clear line, unless CHATDB_TEST_REQUIRE_POSTGRES=1, which makes them fail.
//
// Packages whose tests use dbtest should call Main from TestMain, so that a
// throwaway cluster, if one was started, is stopped when the tests end. With
// the WithPgBouncer option, Run also runs every test on PGXBouncer and
// PQBouncer, through a PgBouncer in transaction mode that dbtest starts in
// front of the server (the store's tests do):
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m, dbtest.WithPgBouncer())) }
package dbtest
