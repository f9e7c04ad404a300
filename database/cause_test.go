package database_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/viewer"
)

// openFails opens u with drv in a single attempt and returns the error.
func openFails(t *testing.T, u, drv string) error {
	t.Helper()
	db, err := database.Open(t.Context(), database.Config{URL: u, Driver: drv, OpenRetryWindow: -1, ConnectTimeout: 2 * time.Second})
	require.Nil(t, db)
	var ce *database.ConnectError
	require.ErrorAs(t, err, &ce)
	return err
}

// ConnectCause tells apart, on both drivers and real servers, why a
// connection could not be made or broke: nothing listening, a missing
// database, a missing role, a bad password (a throwaway cluster that asks for
// one), a connection lost in use. A refused connection is not called lost.
// (A certificate that does not verify is CauseTLS: TestTLSVerifyFull.)
func TestConnectCause(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := dbtest.StartCluster(t)
	admin := openAdmin(t, c.URL())
	ctx := t.Context()
	_, err := admin.SQL().ExecContext(ctx, "CREATE ROLE app LOGIN PASSWORD 'right-pw'")
	require.NoError(t, err)
	hba := serverFiles(t, map[string][]byte{"pg_hba.conf": []byte(
		"local all all trust\nhost all app 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n")})
	for _, stmt := range []string{
		"ALTER SYSTEM SET hba_file = " + sqlLiteral(hba+"/pg_hba.conf"),
		"ALTER SYSTEM SET password_encryption = 'scram-sha-256'",
	} {
		_, err := admin.SQL().ExecContext(ctx, stmt)
		require.NoError(t, err)
	}
	require.NoError(t, admin.Close())
	require.NoError(t, c.Restart())
	at := func(user, db string) string {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, c.Port(), db)
	}
	cases := []struct {
		name, url string
		cause     database.Cause
	}{
		{"refused", "postgres://app:right-pw@127.0.0.1:1/postgres?sslmode=disable", database.CauseRefused},
		{"missing database", at("postgres", "no_such_db"), database.CauseNoDatabase},
		{"missing role", at("no_such_role", "postgres"), database.CauseAuth},
		{"bad password", at("app:wrong-pw", "postgres"), database.CauseAuth},
		{"unknown host", "postgres://app:right-pw@nosuchhost.invalid:5432/postgres?sslmode=disable", database.CauseDNS},
	}
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		for _, tc := range cases {
			t.Run(drv+"/"+tc.name, func(t *testing.T) {
				err := openFails(t, tc.url, drv)
				require.Equal(t, tc.cause, database.ConnectCause(err), "%v", err)
				require.NotContains(t, err.Error(), "connection lost")
				require.NotContains(t, err.Error(), "wrong-pw")
			})
		}
		t.Run(drv+"/good password", func(t *testing.T) {
			db, err := database.Open(ctx, database.Config{URL: at("app:right-pw", "postgres"), Driver: drv})
			require.NoError(t, err)
			require.NoError(t, db.Close())
		})
	}
	require.Equal(t, database.Cause(""), database.ConnectCause(nil))
}

// A connection killed while in use is CauseLost, on both drivers.
func TestConnectCauseLost(t *testing.T) {
	t.Parallel()
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		ctx := viewer.SystemContext(t.Context())
		db := dbtest.Open(t, target)
		admin := openAdmin(t, dbtest.AdminURL(t))
		err := db.WithTx(ctx, func(tx *ent.Tx) error {
			pid, err := backendPID(ctx, tx)
			if err != nil {
				return err
			}
			terminate(t, admin, "pid = $1", pid)
			time.Sleep(100 * time.Millisecond)
			_, err = tx.ExecContext(ctx, "SELECT 1")
			return err
		})
		require.ErrorIs(t, err, database.ErrBadConn)
		require.Equal(t, database.CauseLost, database.ConnectCause(err), "%v", err)
	})
}
