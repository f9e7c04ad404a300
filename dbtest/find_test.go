package dbtest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFindServerFallsBackToCluster: with no URL in the environment and no local
// server, findServer starts a throwaway cluster and a template can be built on it.
func TestFindServerFallsBackToCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	t.Setenv("CHATDB_TEST_DATABASE_URL", "")
	t.Setenv("DATABASE_URL", "")
	old := localURL
	localURL = "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable"
	t.Cleanup(func() { localURL = old })

	// The cluster is stopped by Main (this package's TestMain) when the tests end.

	srv, reason := findServer()
	require.NotNil(t, srv, reason)
	tpl, err := srv.buildTemplate()
	require.NoError(t, err)
	require.Contains(t, tpl, "chatdb_tpl_")
}
