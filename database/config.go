package database

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Defaults of Config. They follow the system chatdb replaces: 20 pooled connections
// plus 10 overflow, recycled on a lifetime, checked before reuse after sitting idle.
const (
	DefaultMaxOpenConns     = 30
	DefaultMaxIdleConns     = 20
	DefaultConnMaxLifetime  = 30 * time.Minute
	DefaultConnMaxIdleTime  = 5 * time.Minute
	DefaultHealthCheckAfter = time.Second
	DefaultConnectTimeout   = 5 * time.Second
	DefaultOpenRetryWindow  = 10 * time.Second
	DefaultSQLiteBusy       = 5 * time.Second
	DefaultCloseTimeout     = 30 * time.Second
	DefaultSQLitePath       = "chatdb.db"
)

// Drivers for PostgreSQL, the values of Config.Driver.
const (
	// DriverPgx is pgx's database/sql driver (github.com/jackc/pgx/v5/stdlib), the
	// default: one round trip per statement, and it checks idle connections itself.
	DriverPgx = "pgx"
	// DriverPQ is github.com/lib/pq, opened with binary_parameters=yes (one round
	// trip per statement) and wrapped so that idle connections are checked before
	// reuse as pgx does.
	DriverPQ = "pq"
)

// Dialects, the values of (*DB).Dialect. They are ent's dialect names.
const (
	Postgres = "postgres"
	SQLite   = "sqlite3"
)

// Config configures Open. The zero value opens the embedded SQLite file
// DefaultSQLitePath in the working directory with the default pool settings.
type Config struct {
	// URL names the database: "postgres://" or "postgresql://" (in any case), or
	// a libpq key/value string ("host=db user=app dbname=chat sslmode=require"),
	// for PostgreSQL; "sqlite://PATH", "sqlite:PATH", "file:PATH" or a bare path
	// for SQLite, where PATH ":memory:" is a private in-memory database. Empty
	// means the SQLite file DefaultSQLitePath. ParseURL says what is accepted,
	// and which mistyped PostgreSQL URLs are refused rather than taken for a
	// file. For PostgreSQL, say sslmode explicitly; Open keeps the driver's own
	// default (prefer for pgx, require for lib/pq) when it is absent, and logs a
	// warning, or refuses the URL with RequireTLS.
	URL string

	// Driver chooses the PostgreSQL driver: DriverPgx or DriverPQ. Empty means
	// DriverPgx. Ignored for SQLite.
	Driver string

	// Pooler says what stands between chatdb and PostgreSQL: PoolerNone (or
	// empty) for a direct connection, PoolerSession for a pooler in session
	// mode (the same to chatdb), PoolerTransaction for PgBouncer, or another
	// pooler, in transaction mode. With PoolerTransaction, pgx runs without
	// named prepared statements (default_query_exec_mode=cache_describe
	// unless the URL names exec or simple_protocol; see README.md, PgBouncer),
	// lib/pq keeps binary_parameters=yes, and Migrate refuses to run unless
	// MigrationURL is set. Ignored for SQLite.
	Pooler string

	// MigrationURL, when set, is where Migrate applies migrations, on a pool
	// of its own that it opens and closes, with the other settings of this
	// Config: a direct connection to the same database, for a URL that goes
	// through a transaction pooler (the migration lock is a session advisory
	// lock), or a role that may change the schema where the application's may
	// not. Empty means URL, and refused behind a transaction pooler.
	MigrationURL string

	// MaxOpenConns caps the connections open at once (pooled and overflow).
	// Zero means DefaultMaxOpenConns (30); negative means no limit.
	MaxOpenConns int

	// MaxIdleConns caps the connections kept open while idle. Zero means
	// DefaultMaxIdleConns (20); negative means none are kept.
	MaxIdleConns int

	// ConnMaxLifetime closes a connection this long after it was opened, so that
	// connections are spread again after a failover or a load balancer change.
	// Zero means DefaultConnMaxLifetime (30m); negative means forever.
	ConnMaxLifetime time.Duration

	// ConnMaxIdleTime closes a connection that sat idle this long. Zero means
	// DefaultConnMaxIdleTime (5m); negative means never.
	ConnMaxIdleTime time.Duration

	// HealthCheckAfter is how long a connection may sit idle before it is pinged
	// when taken from the pool; a dead one is replaced without the caller seeing an
	// error. pgx does this itself after one second; chatdb does the same for lib/pq.
	// Zero means DefaultHealthCheckAfter (1s); negative means always ping.
	HealthCheckAfter time.Duration

	// ConnectTimeout bounds the dial and start-up of one new connection. Zero means
	// DefaultConnectTimeout (5s).
	ConnectTimeout time.Duration

	// OpenRetryWindow bounds how long Open keeps retrying its first ping while the
	// server cannot be reached, is starting up, or has too many connections (a
	// server that answers with another error, such as a bad password, is not
	// retried). Zero means DefaultOpenRetryWindow (10s); negative
	// means a single attempt.
	OpenRetryWindow time.Duration

	// SQLiteBusyTimeout is how long an SQLite writer waits for the file lock before
	// giving up with ErrTimeout. Zero means DefaultSQLiteBusy (5s). Writers of
	// one file in this process wait their turn in arrival order (a queue in Go),
	// writers of other processes at SQLite's lock; each wait has this bound.
	SQLiteBusyTimeout time.Duration

	// CloseTimeout bounds how long Close waits for the queries and transactions
	// in progress to end before it closes the pool. On PostgreSQL the
	// connections still in use then are closed under their work, which fails
	// with ErrBadConn (a transaction does not commit; a statement outside one
	// may have run). On SQLite, whose statements run in this process and
	// cannot be interrupted from outside them, the work still in progress then
	// is left to end by itself, and its connection is closed when it does.
	// Zero means DefaultCloseTimeout (30s); negative means Close does not wait.
	CloseTimeout time.Duration

	// Logger receives the few events the package logs (connection retries, slow
	// migrations) and, when LogQueries is set, every statement at debug level with
	// its arguments left out. Nil means nothing is logged.
	Logger *slog.Logger

	// TracerProvider receives the OpenTelemetry spans of every SQL statement
	// (with the database semantic conventions: db.system.name, db.operation.name,
	// db.query.text without arguments, server.address), of each new
	// connection, and, through DB.TracerProvider, the store's operations; the
	// wait for a pool connection and transaction retries are events. Nil
	// means the global provider (otel.GetTracerProvider): nothing is traced
	// until the application sets one, before or after Open, and until then
	// the instrumentation costs an atomic load per statement and per store
	// operation. A provider of package
	// go.opentelemetry.io/otel/trace/noop turns it off altogether: the
	// drivers are then not wrapped. See trace.go and README.md, "Tracing".
	TracerProvider trace.TracerProvider

	// LogQueries logs each statement ent runs at debug level. Arguments are never
	// logged: they carry message bodies and password hashes.
	LogQueries bool

	// RequireTLS makes Open refuse a PostgreSQL URL that does not say sslmode,
	// or says a mode that may send traffic in clear (disable, allow, prefer):
	// only require, verify-ca and verify-full pass. Set it in production, with
	// verify-full and sslrootcert so that the server's name is checked too (see
	// RELIABILITY.md). False, the zero value, accepts any mode, and logs a
	// warning when there is none: the drivers' defaults differ (pgx prefers TLS
	// without verifying it, lib/pq requires it). SQLite, which has no network,
	// is not affected.
	RequireTLS bool

	// ReplicaURLs are streaming standbys of URL that serve the reads that
	// tolerate staleness (DB.ReadClient; the store's History, Inbox, GetUser,
	// GetChat, Members). Each gets a pool of its own with the settings above
	// (so the process may open up to MaxOpenConns per replica besides the
	// primary's), the same driver, and a background check of its health and
	// lag every ReplicaCheckInterval; writes and transactions always go to
	// URL. Empty, the default, means no replicas. Refused for SQLite. See
	// README.md, "Read replicas".
	ReplicaURLs []string

	// MaxReplicaLag is how far behind the primary a replica may be and still
	// serve reads (see ReplicaStatus.Lag for how lag is bounded). Zero means
	// DefaultMaxReplicaLag (5s); negative means no bound (down and promoted
	// replicas are still skipped).
	MaxReplicaLag time.Duration

	// ReplicaCheckInterval is how often each replica's health and lag are
	// checked: one query on the primary and one on each replica. Zero means
	// DefaultReplicaCheckInterval (1s); negative is refused.
	ReplicaCheckInterval time.Duration
}

// Values of sslmode that RequireTLS accepts.
var tlsModes = map[string]bool{"require": true, "verify-ca": true, "verify-full": true}

// checkTLS applies RequireTLS to a PostgreSQL URL.
func checkTLS(t target, cfg Config, logger *slog.Logger) error {
	mode := t.pgURL.Query().Get("sslmode")
	switch {
	case cfg.RequireTLS && mode == "":
		return &ConfigError{Reason: "RequireTLS: the PostgreSQL URL must say sslmode (require, verify-ca or verify-full)"}
	case cfg.RequireTLS && !tlsModes[mode]:
		// The mode is one of a few words, never a secret; it helps to say it.
		return &ConfigError{Reason: fmt.Sprintf("RequireTLS: sslmode=%.20q may send traffic in clear; use require, verify-ca or verify-full", mode)}
	case mode == "":
		logger.Warn("database: the PostgreSQL URL does not say sslmode; pgx then uses TLS if the server offers it, unverified, and lib/pq requires it: say it explicitly",
			slog.String("url", t.redacted))
	}
	return nil
}

// tlsFiles are the parameters that name a file the drivers read to set up TLS.
var tlsFiles = []string{"sslrootcert", "sslcert", "sslkey"}

// checkTLSFiles reads the TLS files a PostgreSQL URL names, so that one missing
// or unreadable is a configuration error on both drivers, naming the file:
// pgx refused it without saying which; lib/pq retried a missing sslrootcert
// for the whole OpenRetryWindow, and ignored a missing sslcert or sslkey. A
// path is not a secret; with sslinline (lib/pq), the values are the files'
// contents, and are not checked.
func checkTLSFiles(u *url.URL) error {
	q := u.Query()
	if q.Get("sslmode") == "disable" || isTrue(q.Get("sslinline")) {
		return nil
	}
	for _, p := range tlsFiles {
		path := q.Get(p)
		if path == "" || (p == "sslrootcert" && path == "system") {
			continue
		}
		if _, err := os.ReadFile(path); err != nil {
			return &ConfigError{Reason: fmt.Sprintf("%s: %v", p, err), Err: err}
		}
	}
	return nil
}

// ConfigFromEnv returns a Config read from the environment:
//
//	DATABASE_URL               Config.URL
//	CHATDB_PG_DRIVER           Config.Driver ("pgx" or "pq")
//	CHATDB_POOLER              Config.Pooler ("none", "session" or "transaction")
//	CHATDB_MIGRATION_URL       Config.MigrationURL
//	CHATDB_MAX_OPEN_CONNS      Config.MaxOpenConns
//	CHATDB_MAX_IDLE_CONNS      Config.MaxIdleConns
//	CHATDB_CONN_MAX_LIFETIME   Config.ConnMaxLifetime (a Go duration, "30m")
//	CHATDB_CONN_MAX_IDLE_TIME  Config.ConnMaxIdleTime
//	CHATDB_HEALTH_CHECK_AFTER  Config.HealthCheckAfter
//	CHATDB_CONNECT_TIMEOUT     Config.ConnectTimeout
//	CHATDB_OPEN_RETRY_WINDOW   Config.OpenRetryWindow
//	CHATDB_SQLITE_BUSY_TIMEOUT Config.SQLiteBusyTimeout
//	CHATDB_CLOSE_TIMEOUT       Config.CloseTimeout
//	CHATDB_LOG_QUERIES         Config.LogQueries ("1", "true")
//	CHATDB_REQUIRE_TLS         Config.RequireTLS ("1", "true")
//	CHATDB_REPLICA_URLS        Config.ReplicaURLs (comma-separated; the commas
//	                           of a multi-host URL stay inside it)
//	CHATDB_MAX_REPLICA_LAG     Config.MaxReplicaLag
//	CHATDB_REPLICA_CHECK_INTERVAL Config.ReplicaCheckInterval
//
// Unset variables leave the field zero, which means its default. A malformed value
// is an error naming the variable (not its value, which may be a URL with a password).
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		URL:    os.Getenv("DATABASE_URL"),
		Driver: os.Getenv("CHATDB_PG_DRIVER"),

		ReplicaURLs: splitReplicaURLs(os.Getenv("CHATDB_REPLICA_URLS")),
	}
	cfg.Pooler, cfg.MigrationURL = os.Getenv("CHATDB_POOLER"), os.Getenv("CHATDB_MIGRATION_URL")
	ints := []struct {
		name string
		dst  *int
	}{
		{"CHATDB_MAX_OPEN_CONNS", &cfg.MaxOpenConns},
		{"CHATDB_MAX_IDLE_CONNS", &cfg.MaxIdleConns},
	}
	for _, v := range ints {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return Config{}, fmt.Errorf("database: %s: not an integer", v.name)
			}
			*v.dst = n
		}
	}
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{"CHATDB_CONN_MAX_LIFETIME", &cfg.ConnMaxLifetime},
		{"CHATDB_CONN_MAX_IDLE_TIME", &cfg.ConnMaxIdleTime},
		{"CHATDB_HEALTH_CHECK_AFTER", &cfg.HealthCheckAfter},
		{"CHATDB_CONNECT_TIMEOUT", &cfg.ConnectTimeout},
		{"CHATDB_OPEN_RETRY_WINDOW", &cfg.OpenRetryWindow},
		{"CHATDB_SQLITE_BUSY_TIMEOUT", &cfg.SQLiteBusyTimeout},
		{"CHATDB_CLOSE_TIMEOUT", &cfg.CloseTimeout},
		{"CHATDB_MAX_REPLICA_LAG", &cfg.MaxReplicaLag},
		{"CHATDB_REPLICA_CHECK_INTERVAL", &cfg.ReplicaCheckInterval},
	}
	for _, v := range durations {
		if s := os.Getenv(v.name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				return Config{}, fmt.Errorf("database: %s: not a duration such as 30s or 5m", v.name)
			}
			*v.dst = d
		}
	}
	bools := []struct {
		name string
		dst  *bool
	}{
		{"CHATDB_LOG_QUERIES", &cfg.LogQueries},
		{"CHATDB_REQUIRE_TLS", &cfg.RequireTLS},
	}
	for _, v := range bools {
		if s := os.Getenv(v.name); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return Config{}, fmt.Errorf("database: %s: not a boolean", v.name)
			}
			*v.dst = b
		}
	}
	return cfg, nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = DefaultMaxIdleConns
	}
	def(&c.ConnMaxLifetime, DefaultConnMaxLifetime)
	def(&c.ConnMaxIdleTime, DefaultConnMaxIdleTime)
	def(&c.HealthCheckAfter, DefaultHealthCheckAfter)
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.OpenRetryWindow, DefaultOpenRetryWindow)
	def(&c.SQLiteBusyTimeout, DefaultSQLiteBusy)
	def(&c.CloseTimeout, DefaultCloseTimeout)
	def(&c.MaxReplicaLag, DefaultMaxReplicaLag)
	def(&c.ReplicaCheckInterval, DefaultReplicaCheckInterval)
	if c.Driver == "" {
		c.Driver = DriverPgx
	}
	return c
}

// ConfigError is returned by Open and Redact when Config is invalid. It never holds
// the URL.
type ConfigError struct {
	Reason string
	// Err is the error behind Reason, when there is one that holds no secret:
	// the file system's for a TLS file that cannot be read.
	Err error
}

func (e *ConfigError) Error() string { return "database: invalid config: " + e.Reason }

// Unwrap returns Err.
func (e *ConfigError) Unwrap() error { return e.Err }
