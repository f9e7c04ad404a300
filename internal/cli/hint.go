package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/chatdb/chatdb/database"
)

// genericConnectHint is what to do when a PostgreSQL server cannot be
// reached for a reason database.ConnectCause does not name.
const genericConnectHint = "is the server running and reachable? Check --url or DATABASE_URL (user, password, host, port, database, sslmode)"

// hint returns what to do about err, for the line Main prints under it, or ""
// when the error says it already.
func hint(err error) string {
	var ce *database.ConnectError
	var cfg *database.ConfigError
	var de *dirError
	var nf *noFileError
	switch {
	case errors.As(err, &nf):
		return "create it with `chatdb demo` or `chatdb migrate apply`, or point --url or DATABASE_URL at the right file"
	case errors.As(err, &de):
		return "run chatdb from the repository's root, where migrations/ is, or pass --dir: the migrations root or one dialect's directory (file://migrations/postgres)"
	case errors.As(err, &ce):
		if strings.HasPrefix(ce.URL, "sqlite://") {
			return "check that the SQLite file's directory exists and is writable; --url or DATABASE_URL names the file"
		}
		if h := connectHint(ce); h != genericConnectHint {
			return h
		}
		return genericConnectHint + "; `chatdb doctor` checks step by step"
	case errors.As(err, &cfg):
		if env, err := database.ConfigFromEnv(); err == nil && env.RequireTLS {
			return "check --url or DATABASE_URL: postgres://user:pass@host:5432/db?sslmode=verify-full&sslrootcert=ca.pem (with CHATDB_REQUIRE_TLS set, sslmode must be require, verify-ca or verify-full), sqlite://path or a file path"
		}
		return "check --url or DATABASE_URL: postgres://user:pass@host:5432/db?sslmode=disable, sqlite://path or a file path"
	case errors.Is(err, database.ErrNotClean):
		return "the database holds tables that no migration created; point --url at an empty database, or at one chatdb migrated"
	case errors.Is(err, database.ErrLockTimeout):
		return "another migration is still running: let it finish and run apply again, or wait longer with --lock-timeout (0 waits until the lock is free)"
	case errors.Is(err, database.ErrTimeout):
		return "the database did not answer in time: another process may hold the SQLite file or the rows; try again, or check `chatdb doctor`"
	}
	return ""
}

// connectHint says what to do about a PostgreSQL server that could not be
// reached, by cause, naming the host, user and database of ce's URL.
func connectHint(ce *database.ConnectError) string {
	host, user, db := "the host", "the user", "the database"
	if u, err := url.Parse(ce.URL); err == nil {
		if u.Host != "" {
			host = u.Host
		}
		if n := u.User.Username(); n != "" {
			user = n
		}
		if p := strings.TrimPrefix(u.Path, "/"); p != "" {
			db = p
		}
	}
	switch database.ConnectCause(ce) {
	case database.CauseNoDatabase:
		return fmt.Sprintf("the server has no database %q: create it (%s, or CREATE DATABASE in psql) or fix its name in --url or DATABASE_URL", db, createdb(host, user, db))
	case database.CauseAuth:
		return fmt.Sprintf("the server refused %s: check the user and password in --url or DATABASE_URL, that the role exists, and that the server's pg_hba.conf lets %s connect to %s from this host", user, user, db)
	case database.CauseTooManyConnections:
		return "the server, or the role, has no connection slot free: close idle clients, lower MaxOpenConns (CHATDB_MAX_OPEN_CONNS) across the application's processes, or raise max_connections or the role's CONNECTION LIMIT"
	case database.CauseStarting:
		return "the server is starting up or shutting down: try again in a moment, or wait for it with `chatdb doctor --wait 30s`"
	case database.CauseTLS:
		return "the server's TLS certificate did not verify: set sslrootcert in the URL to the CA that signed it, and with sslmode=verify-full connect by the host name the certificate names (sslmode=require encrypts without verifying)"
	case database.CauseDNS:
		return fmt.Sprintf("the host name of %s does not resolve: check the host in --url or DATABASE_URL", host)
	case database.CauseRefused:
		return fmt.Sprintf("nothing accepts connections on %s: the server is down, or the host or port in --url or DATABASE_URL is wrong", host)
	case database.CauseTimeout:
		return fmt.Sprintf("%s did not answer in time: check the network between here and the server (firewall, VPN, security group) and the host and port; CHATDB_CONNECT_TIMEOUT raises the bound", host)
	}
	return genericConnectHint
}

// createdb is the command that creates database db on host (host:port) as
// user.
func createdb(host, user, db string) string {
	cmd := "createdb -h " + host
	if h, port, err := net.SplitHostPort(host); err == nil {
		cmd = "createdb -h " + h
		if port != "5432" {
			cmd += " -p " + port
		}
	}
	return cmd + " -U " + user + " " + db
}
