package database_test

import (
	"strings"
	"testing"
	"time"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
)

// The grants of RELIABILITY.md ("Least privilege"), in the order an operator
// runs them. {owner}, {app} and {db} are replaced by the names.
var (
	// As the server's administrator (a superuser, or a role with CREATEROLE and
	// CREATEDB).
	grantsAdmin = []string{
		`CREATE ROLE {owner} LOGIN`,
		`CREATE ROLE {app} LOGIN`,
		`CREATE DATABASE {db} OWNER {owner}`,
		`REVOKE ALL ON DATABASE {db} FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE {db} TO {app}`,
	}
	// As the administrator, in database {db}: before PostgreSQL 15 every role
	// may create tables in schema public.
	grantsAdminInDB = []string{
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
	}
	// As {owner}, in database {db}, before the first migration: the tables it
	// creates from now on are readable and writable by {app}.
	grantsOwner = []string{
		`GRANT USAGE ON SCHEMA public TO {app}`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app}`,
	}
	// As {owner}, after the first migration: {app} may read the migration
	// status (to refuse to start on a schema it does not know), not change it.
	grantsOwnerAfterMigrate = []string{
		`GRANT USAGE ON SCHEMA atlas_schema_revisions TO {app}`,
		`GRANT SELECT ON atlas_schema_revisions.atlas_schema_revisions TO {app}`,
	}
)

func runGrants(t *testing.T, db *database.DB, stmts []string, names *strings.Replacer) {
	t.Helper()
	for _, stmt := range stmts {
		_, err := db.SQL().ExecContext(t.Context(), names.Replace(stmt))
		require.NoError(t, err, stmt)
	}
}

// Least privilege: migrations run as an owner role, the application as a role
// that can read and write rows and nothing else. The application role's DDL is
// refused with ErrPermission (SQLSTATE 42501), and a table a later migration
// creates is usable by it at once.
func TestPrivilegeAppRoleCannotRunDDL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	t.Parallel()
	c := dbtest.StartCluster(t)
	ctx := t.Context()
	names := strings.NewReplacer("{owner}", "chatdb_owner", "{app}", "chatdb_app", "{db}", "chatdb")
	roleURL := func(role, dbname string) string {
		u := strings.Replace(c.URL(), "postgres@", role+"@", 1)
		return strings.Replace(u, "/postgres?", "/"+dbname+"?", 1)
	}
	open := func(url, driver string) *database.DB {
		t.Helper()
		db, err := database.Open(ctx, database.Config{URL: url, Driver: driver, OpenRetryWindow: -1})
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	}

	admin := openAdmin(t, c.URL())
	runGrants(t, admin, grantsAdmin, names)
	runGrants(t, open(roleURL("postgres", "chatdb"), database.DriverPgx), grantsAdminInDB, names)
	owner := open(roleURL("chatdb_owner", "chatdb"), database.DriverPgx)
	runGrants(t, owner, grantsOwner, names)
	require.NoError(t, database.Migrate(ctx, owner))
	runGrants(t, owner, grantsOwnerAfterMigrate, names)

	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		t.Run(drv, func(t *testing.T) {
			app := open(roleURL("chatdb_app", "chatdb"), drv)

			// Rows: read, write, change, delete.
			id := "00000000-0000-7000-8000-0000000000" + map[string]string{database.DriverPgx: "01", database.DriverPQ: "02"}[drv]
			require.NoError(t, app.WithTx(ctx, func(tx *ent.Tx) error {
				for _, q := range []string{
					"INSERT INTO users (id, created_at, updated_at, email, display_name) VALUES ($1::uuid, now(), now(), $1::text || '@example.com', 'App')",
					"UPDATE users SET display_name = 'Renamed' WHERE id = $1::uuid",
				} {
					if _, err := tx.ExecContext(ctx, q, id); err != nil {
						return err
					}
				}
				return nil
			}))
			var name string
			require.NoError(t, app.SQL().QueryRowContext(ctx, "SELECT display_name FROM users WHERE id = $1", id).Scan(&name))
			require.Equal(t, "Renamed", name)
			_, err := app.SQL().ExecContext(ctx, "DELETE FROM users WHERE id = $1", id)
			require.NoError(t, err)
			status, err := database.Migrations(ctx, app)
			require.NoError(t, err, "the application may read the migration status")
			require.Empty(t, status.Pending)

			// DDL, and what only an owner may do: refused, nothing changed.
			for _, stmt := range []string{
				"DROP TABLE messages",
				"CREATE TABLE app_scratch (id int)",
				"ALTER TABLE users ADD COLUMN nickname text",
				"TRUNCATE users",
				"CREATE INDEX users_display_name ON users (display_name)",
				"CREATE SCHEMA app_schema",
				"DELETE FROM atlas_schema_revisions.atlas_schema_revisions",
			} {
				err := app.WithTx(ctx, func(tx *ent.Tx) error {
					_, err := tx.ExecContext(ctx, stmt)
					return err
				})
				require.ErrorIs(t, err, database.ErrPermission, stmt)
				require.Equal(t, "42501", requireDriverError(t, dbtest.Target("postgres-"+drv), err), stmt)
				_, err = app.SQL().ExecContext(ctx, stmt)
				require.ErrorIs(t, database.MapError(err), database.ErrPermission, "%s, outside a transaction", stmt)
			}
			require.Subset(t, migTables(t, owner), migAppTables, "the tables are all still there")

			// Migrating is the owner's job.
			err = database.Migrate(ctx, app, database.WithDir(migDir(t, database.Postgres, notesMigration)))
			require.ErrorIs(t, err, database.ErrPermission)
			require.NotContains(t, migTables(t, owner), "notes")

			require.Eventually(t, func() bool { return app.Stats().InUse == 0 }, 10*time.Second, 10*time.Millisecond)
		})
	}

	// The owner's next migration creates a table the application can use at
	// once: the default privileges granted it.
	require.NoError(t, database.Migrate(ctx, owner, database.WithDir(migDir(t, database.Postgres, notesMigration))))
	for i, drv := range []string{database.DriverPgx, database.DriverPQ} {
		app := open(roleURL("chatdb_app", "chatdb"), drv)
		_, err := app.SQL().ExecContext(ctx, "INSERT INTO notes (id, body) VALUES ($1, 'hello')", i)
		require.NoError(t, err, "%s: a table a later migration created is writable by the application", drv)
	}
}

// notesMigration is a migration after the real ones, for TestPrivilegeAppRoleCannotRunDDL.
var notesMigration = migrate.NewLocalFile("29990101000000_notes.sql", []byte("CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);\n"))
