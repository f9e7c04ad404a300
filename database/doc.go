// Package database opens chatdb's database and manages its lifecycle: the
// connection pool, transactions, error classification and migrations.
//
// PostgreSQL is reached through pgx's database/sql driver by default, or through
// github.com/lib/pq (Config.Driver = DriverPQ); an empty URL opens the embedded
// SQLite file. Nothing outside this package and internal/pgdriver, which wraps
// the PostgreSQL drivers for it, imports a driver.
//
//	db, err := database.Open(ctx, database.Config{URL: os.Getenv("DATABASE_URL")})
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	if err := database.Migrate(ctx, db); err != nil {
//		return err
//	}
//	// The privacy policies deny a context without a viewer; creating accounts is
//	// the platform's job, so it runs as the system viewer (package viewer).
//	ctx = viewer.SystemContext(ctx)
//	err = db.WithTx(ctx, func(tx *ent.Tx) error {
//		_, err := tx.User.Create().SetEmail("ada@example.com").SetDisplayName("Ada").Save(ctx)
//		return err
//	}, database.WithRetry(3))
//	if errors.Is(err, database.ErrConflict) {
//		// the address is taken
//	}
//
// With Config.ReplicaURLs, reads that tolerate staleness go to streaming
// standbys through ReadClient, and writes yield consistency tokens (WithToken,
// DB.Token) so that a later read, on any server, never sees data older than
// the writer's own writes:
//
//	ctx, err := database.WithToken(ctx, tokenFromCookie)
//	... writes and reads with ctx ...
//	token, err := db.Token(ctx) // for the next request
package database
