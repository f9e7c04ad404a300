package migration

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// TestPostgresDevDropped: the temporary dev database exists while planning and
// is gone afterwards, also when the caller's context was cancelled meanwhile.
// (An internal test: the database's name is not part of the API.)
func TestPostgresDevDropped(t *testing.T) {
	t.Parallel()
	u := dbtest.AdminURL(t)
	admin, err := database.Open(t.Context(), database.Config{URL: u, OpenRetryWindow: -1})
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	exists := func(name string) bool {
		var ok bool
		require.NoError(t, admin.SQL().QueryRowContext(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok))
		return ok
	}

	for _, cancelFirst := range []bool{false, true} {
		ctx, cancel := context.WithCancel(t.Context())
		d, err := openDev(ctx, database.Postgres, u)
		require.NoError(t, err)
		i := strings.LastIndex(d.db.URL(), "/")
		name, _, _ := strings.Cut(d.db.URL()[i+1:], "?")
		require.True(t, strings.HasPrefix(name, "chatdb_dev_"), name)
		require.True(t, exists(name))
		if cancelFirst {
			cancel()
		}
		require.NoError(t, d.close())
		require.False(t, exists(name), "dev database %s left behind", name)
		cancel()
	}
}
