package database_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a server certificate for dnsNames signed by ca, and its key,
// both PEM-encoded.
func (ca *testCA) issue(t *testing.T, dnsNames ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// serverFiles writes files into a new directory the PostgreSQL server can
// read: when the tests run as root, the throwaway cluster runs as user
// postgres, and the server refuses a key file that is not its own and private.
func serverFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "chatdb-tls-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		require.NoError(t, err)
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		require.NoError(t, os.WriteFile(p, data, mode))
		if uid >= 0 {
			require.NoError(t, os.Chown(p, uid, gid))
		}
	}
	return dir
}

// sqlLiteral quotes s as an SQL string literal.
func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TLS with a certificate made here: a throwaway cluster serves a certificate
// for "localhost" only, signed by a CA of the test's own. With sslmode=verify-full
// and that CA as sslrootcert, both drivers connect through "localhost" and
// refuse the same server reached as 127.0.0.1 (a name the certificate does not
// carry) or vouched for by another CA; the refusal is not retried. verify-ca
// checks the authority only, and require nothing but encryption, which is why
// production should say verify-full.
func TestTLSVerifyFull(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	t.Parallel()
	c := dbtest.StartCluster(t)
	ca := newTestCA(t, "chatdb test CA")
	other := newTestCA(t, "some other CA")
	cert, key := ca.issue(t, "localhost")
	dir := serverFiles(t, map[string][]byte{
		"server.crt": cert, "server.key": key, "ca.crt": ca.pem, "other-ca.crt": other.pem,
	})

	admin := openAdmin(t, c.URL())
	ctx := t.Context()
	for _, stmt := range []string{
		"ALTER SYSTEM SET ssl_cert_file = " + sqlLiteral(filepath.Join(dir, "server.crt")),
		"ALTER SYSTEM SET ssl_key_file = " + sqlLiteral(filepath.Join(dir, "server.key")),
		"ALTER SYSTEM SET ssl = on",
		"SELECT pg_reload_conf()",
	} {
		_, err := admin.SQL().ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}

	urlFor := func(host, mode, rootCert string) string {
		u := fmt.Sprintf("postgres://postgres@%s:%d/postgres?sslmode=%s", host, c.Port(), mode)
		if rootCert != "" {
			u += "&sslrootcert=" + filepath.Join(dir, rootCert)
		}
		return u
	}
	// The reload is asynchronous: wait until the server offers TLS.
	require.Eventually(t, func() bool {
		db, err := database.Open(ctx, database.Config{URL: urlFor("127.0.0.1", "require", ""), OpenRetryWindow: -1})
		if err != nil {
			return false
		}
		db.Close()
		return true
	}, 20*time.Second, 100*time.Millisecond, "the server did not turn TLS on (is the key file readable by the server?)")

	encrypted := func(t *testing.T, db *database.DB) bool {
		t.Helper()
		var ssl bool
		require.NoError(t, db.SQL().QueryRowContext(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
		return ssl
	}
	for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
		t.Run(drv, func(t *testing.T) {
			accept := func(u string) {
				t.Helper()
				db, err := database.Open(ctx, database.Config{URL: u, Driver: drv, RequireTLS: true, OpenRetryWindow: -1})
				require.NoError(t, err, u)
				defer db.Close()
				require.True(t, encrypted(t, db), u)
			}
			refuse := func(u string, want any) {
				t.Helper()
				start := time.Now()
				db, err := database.Open(ctx, database.Config{URL: u, Driver: drv, RequireTLS: true})
				require.Nil(t, db)
				var ce *database.ConnectError
				require.ErrorAs(t, err, &ce, u)
				require.Equal(t, 1, ce.Attempts, "a certificate that does not verify is not retried")
				require.Less(t, time.Since(start), 5*time.Second)
				require.True(t, errors.As(err, want), "%s: %v", u, err)
				require.Equal(t, database.CauseTLS, database.ConnectCause(err), "%v", err)
				require.NotContains(t, err.Error(), "connection lost")
			}

			accept(urlFor("localhost", "verify-full", "ca.crt"))
			var hostErr x509.HostnameError
			refuse(urlFor("127.0.0.1", "verify-full", "ca.crt"), &hostErr)
			var caErr x509.UnknownAuthorityError
			refuse(urlFor("localhost", "verify-full", "other-ca.crt"), &caErr)
			refuse(urlFor("127.0.0.1", "verify-ca", "other-ca.crt"), &caErr)
			// verify-ca trusts any name the CA vouched for; require checks nothing.
			accept(urlFor("127.0.0.1", "verify-ca", "ca.crt"))
			accept(urlFor("127.0.0.1", "require", ""))
		})
	}
}

// RequireTLS refuses, before any connection is made, a PostgreSQL URL that does
// not say sslmode or says a mode that may send traffic in clear. It comes from
// CHATDB_REQUIRE_TLS too.
func TestTLSRequired(t *testing.T) {
	cases := []struct {
		query string
		ok    bool
	}{
		{"", false},
		{"?sslmode=disable", false},
		{"?sslmode=allow", false},
		{"?sslmode=prefer", false},
		{"?sslmode=DISABLE", false},
		{"?sslmode=require", true},
		{"?sslmode=verify-ca", true},
		{"?sslmode=verify-full", true},
	}
	for _, tc := range cases {
		for _, drv := range []string{database.DriverPgx, database.DriverPQ} {
			// Port 1: a URL that passes the check fails to connect instead.
			u := "postgres://app:s3cret@127.0.0.1:1/chat" + tc.query
			_, err := database.Open(t.Context(), database.Config{URL: u, Driver: drv, RequireTLS: true, OpenRetryWindow: -1, ConnectTimeout: time.Second})
			var cfgErr *database.ConfigError
			if tc.ok {
				require.False(t, errors.As(err, &cfgErr), "%s %q: %v", drv, tc.query, err)
				var connErr *database.ConnectError
				require.ErrorAs(t, err, &connErr)
				continue
			}
			require.ErrorAs(t, err, &cfgErr, "%s %q", drv, tc.query)
			require.Contains(t, err.Error(), "RequireTLS")
			require.NotContains(t, err.Error(), "s3cret")
		}
	}

	// SQLite has no network to protect.
	db, err := database.Open(t.Context(), database.Config{URL: filepath.Join(t.TempDir(), "x.db"), RequireTLS: true})
	require.NoError(t, err)
	require.NoError(t, db.Close())

	clearEnv(t)
	t.Setenv("DATABASE_URL", "postgres://app@127.0.0.1:1/chat?sslmode=disable")
	t.Setenv("CHATDB_REQUIRE_TLS", "true")
	cfg, err := database.ConfigFromEnv()
	require.NoError(t, err)
	require.True(t, cfg.RequireTLS)
	cfg.OpenRetryWindow = -1
	_, err = database.Open(context.Background(), cfg)
	var cfgErr *database.ConfigError
	require.ErrorAs(t, err, &cfgErr)

	t.Setenv("CHATDB_REQUIRE_TLS", "sometimes")
	_, err = database.ConfigFromEnv()
	require.ErrorContains(t, err, "CHATDB_REQUIRE_TLS")
}
