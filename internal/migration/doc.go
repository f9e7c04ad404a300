// Package migration plans and checks versioned migrations. Diff compares an
// Atlas migration directory with the ent schema in ./schema and writes the
// difference as a new migration file with an updated atlas.sum; Check says
// whether Diff would write one, without writing. Lint runs Atlas's analyzers
// (destructive, data-dependent and backward-incompatible changes) over the
// newest files, and on PostgreSQL chatdb's own: shard-readiness
// (ShardAnalyzer) and zero-downtime (ZeroDowntimeAnalyzer: statements that
// lock a table that already exists for a whole build, rewrite or scan);
// Validate checks a directory against its atlas.sum and that its files parse;
// Hash rewrites atlas.sum after a deliberate edit. Applying migrations is
// database.Migrate's job, not this package's; reverting them is PlanDown's
// (the plan, from the directory's earlier state) and Down's (which runs it
// through database.Revert).
//
// Planning and linting need a clean dev database to replay the directory on: a
// temporary database created (and dropped) on a PostgreSQL server for
// PostgreSQL, a private in-memory database for SQLite. No database that holds
// data is read or changed.
//
//	dir, err := migrate.NewLocalDir("migrations/postgres")
//	if err != nil {
//		return err
//	}
//	dev := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
//	file, err := migration.Diff(ctx, database.Postgres, dir, "add_reactions", dev)
//	switch {
//	case err != nil:
//		return err
//	case file == "":
//		// the directory is in sync with the schema
//	}
//	report, err := migration.Lint(ctx, database.Postgres, dir, 1, dev)
//	if err != nil {
//		return err
//	}
//	for _, f := range report.Findings {
//		fmt.Println(f) // file:line: [analyzer code] message
//	}
package migration
