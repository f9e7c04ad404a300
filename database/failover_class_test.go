package database_test

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/viewer"
)

// A connection string with target_session_attrs=read-write whose every host
// refuses writes (each a standby, as for a moment during a switchover, before
// the new primary is promoted) gives ErrBadConn on both drivers: no connection
// could be made, so nothing ran, and the caller retries as for a server that
// is down. lib/pq reported it as a plain error ("session is read-only") that
// no class matched; pgx as a *pgconn.ConnectError. A database whose
// default_transaction_read_only is on stands in for the standby: both drivers
// decide read-write by transaction_read_only.
func TestErrNoReadWriteHost(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cfg := dbtest.EmptyConfig(t, target)
		u, err := url.Parse(cfg.URL)
		require.NoError(t, err)
		name := strings.TrimPrefix(u.Path, "/")
		admin, err := database.Open(t.Context(), database.Config{URL: dbtest.AdminURL(t), Driver: target.Driver(), MaxOpenConns: 1})
		require.NoError(t, err)
		defer admin.Close()
		_, err = admin.SQL().ExecContext(t.Context(), `ALTER DATABASE "`+name+`" SET default_transaction_read_only = on`)
		require.NoError(t, err)

		q := u.Query()
		q.Set("target_session_attrs", "read-write")
		u.RawQuery = q.Encode()
		db, err := database.Open(t.Context(), database.Config{URL: u.String(), Driver: target.Driver(), OpenRetryWindow: -1})
		require.Nil(t, db)
		require.ErrorIs(t, err, database.ErrBadConn, "%v", err)
		var ce *database.ConnectError
		require.ErrorAs(t, err, &ce)

		// Without target_session_attrs the same database takes the
		// connection and refuses the write, as a standby or a demoted
		// primary does: ErrReadOnly.
		q.Del("target_session_attrs")
		u.RawQuery = q.Encode()
		db, err = database.Open(t.Context(), database.Config{URL: u.String(), Driver: target.Driver()})
		require.NoError(t, err)
		defer db.Close()
		_, err = db.SQL().ExecContext(t.Context(), "CREATE TABLE t (x int)")
		require.ErrorIs(t, database.MapError(err), database.ErrReadOnly)
	})
}

// A primary that a failover demoted (here: restarted as a standby) refuses
// writes, and every way chatdb sends one says ErrReadOnly, on both drivers: a
// statement (25006), WithTx and WithConnTx (lib/pq's BEGIN READ WRITE is
// refused at BEGIN with 0A000, pgx's plain BEGIN passes and the write gets
// 25006), and a serializable WithTx (refused at BEGIN with 0A000 on both).
// lib/pq's BEGIN was unclassified before.
func TestErrReadOnlyOnDemotedPrimary(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		cl := dbtest.StartCluster(t)
		ctx := viewer.SystemContext(t.Context())
		cfg := database.Config{URL: cl.URL(), Driver: target.Driver(), MaxOpenConns: 2}
		db, err := database.Open(ctx, cfg)
		require.NoError(t, err)
		require.NoError(t, database.Migrate(ctx, db))
		require.NoError(t, db.Close())
		require.NoError(t, cl.RestartAsStandby())

		db, err = database.Open(ctx, cfg)
		require.NoError(t, err)
		defer db.Close()
		update := func(ctx context.Context, c *ent.Client) error {
			_, err := c.User.Update().SetDisplayName("x").Save(ctx)
			return err
		}
		cases := map[string]func() error{
			"statement": func() error {
				_, err := db.SQL().ExecContext(ctx, "UPDATE users SET display_name = display_name")
				return database.MapError(err)
			},
			"WithTx": func() error {
				return db.WithTx(ctx, func(tx *ent.Tx) error { return update(ctx, tx.Client()) })
			},
			"WithTx serializable": func() error {
				return db.WithTx(ctx, func(tx *ent.Tx) error { return update(ctx, tx.Client()) }, database.WithIsolation(sql.LevelSerializable))
			},
			"WithConnTx": func() error {
				return db.WithConnTx(ctx, func(ctx context.Context, _ *sql.Conn, c *ent.Client) error { return update(ctx, c) })
			},
		}
		for name, fn := range cases {
			err := fn()
			require.ErrorIs(t, err, database.ErrReadOnly, "%s: %v", name, err)
		}
	})
}
