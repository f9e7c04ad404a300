package database_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// A TLS file that is missing or cannot be read (here a directory) is a
// configuration error: Open fails at once on both drivers, well inside the
// retry window (lib/pq used to retry it for the whole window), with an error
// that names the parameter and the file and holds no secret.
func TestTLSFileErrorsFailFast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct{ name, param, query string }{
		{"missing sslrootcert", "sslrootcert", "sslmode=verify-full&sslrootcert=" + missing},
		{"missing sslcert", "sslcert", "sslmode=require&sslcert=" + missing + "&sslkey=" + missing},
		{"missing sslkey", "sslkey", "sslmode=require&sslkey=" + missing},
		{"unreadable sslkey (a directory)", "sslkey", "sslmode=require&sslkey=" + dir},
		{"unreadable sslrootcert (a directory)", "sslrootcert", "sslmode=verify-ca&sslrootcert=" + dir},
	}
	dbtest.RunPostgres(t, func(t *testing.T, target dbtest.Target) {
		t.Parallel()
		base := dbtest.Config(t, target)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				u := strings.Replace(base.URL, "postgres://postgres@", "postgres://postgres:"+secretPW+"@", 1)
				u = strings.Replace(u, "sslmode=disable", tc.query+"&password="+secretQuery, 1)
				require.NotEqual(t, base.URL, u)
				start := time.Now()
				db, err := database.Open(t.Context(), database.Config{URL: u, Driver: base.Driver, OpenRetryWindow: 10 * time.Second})
				require.Nil(t, db)
				require.Error(t, err)
				require.Less(t, time.Since(start), time.Second, "a local file error is not retried: %v", err)
				require.Contains(t, err.Error(), tc.param)
				require.True(t, strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), dir), "the error names the file: %v", err)
				var pathErr *fs.PathError
				require.ErrorAs(t, err, &pathErr, "the file system's error stays reachable")
				requireNoSecret(t, "Open's error", err.Error())
			})
		}
	})
}
