// Package migration plans versioned migrations: it compares an Atlas migration
// directory with the ent schema in ./schema and writes the difference as a new
// migration file with an updated atlas.sum. Applying migrations is
// database.Migrate's job, not this package's.
//
// Planning needs a clean dev database to replay the directory on and to normalise
// the desired schema with: a temporary database created (and dropped) on a
// PostgreSQL server for PostgreSQL, a private in-memory database for SQLite. No
// database that holds data is read or changed.
//
//	dir, err := migrate.NewLocalDir("migrations/postgres")
//	if err != nil {
//		return err
//	}
//	file, err := migration.Diff(ctx, database.Postgres, dir, "add_reactions",
//		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
//	switch {
//	case err != nil:
//		return err
//	case file == "":
//		// the directory is in sync with the schema
//	}
package migration
