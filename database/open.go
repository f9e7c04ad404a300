package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	entdialect "entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	"go.opentelemetry.io/otel/attribute"
	"modernc.org/sqlite"

	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/internal/pgdriver"
	// The schema's defaults, validators and hooks: without them the client that
	// Open returns cannot create a row ("uninitialized user.DefaultCreatedAt").
	_ "github.com/chatdb/chatdb/ent/runtime"
)

func init() {
	// modernc.org/sqlite registers itself as "sqlite"; ent and Atlas know SQLite
	// as "sqlite3". Register that name too, unless another driver took it.
	for _, name := range sql.Drivers() {
		if name == "sqlite3" {
			return
		}
	}
	sql.Register("sqlite3", &sqlite.Driver{})
}

// DB is an open database: a connection pool and the ent client over it. It is safe
// for concurrent use. Close it when done.
type DB struct {
	sql     *sql.DB
	client  *ent.Client
	dialect string
	driver  string
	logger  *slog.Logger
	// logQueries is Config.LogQueries, for every ent client newClient builds.
	logQueries bool
	// redacted is the URL without its password, for messages.
	redacted string
	// secrets are the URL's password(s) and TLS key passphrase, likewise.
	secrets []string

	// replicas are Config.ReplicaURLs' pools and their checker (replica.go);
	// nil without replicas.
	replicas *replicaSet
	// connector made the pool's connections (PostgreSQL only), for
	// DetectPooler's connections outside the pool.
	connector driver.Connector
	// pooler is Config.Pooler: "" or PoolerTransaction.
	pooler string
	// migration is the Config of Config.MigrationURL, nil when it is unset.
	migration *Config

	// tracing is the instrumentation (trace.go); nil when it is off.
	tracing *tracing
	// traceAttrs are the attributes of the primary's spans (trace.go).
	traceAttrs []attribute.KeyValue

	// closeTimeout is Config.CloseTimeout.
	closeTimeout time.Duration
	closeOnce    sync.Once
	closeErr     error
}

// Open opens the database that cfg names, applies the pool settings, and pings it,
// retrying while the server cannot be reached for at most cfg.OpenRetryWindow. It
// does not apply migrations; call Migrate for that.
//
// With cfg.ReplicaURLs it opens a pool per replica and checks each once,
// all at once, each bounded by cfg.ConnectTimeout, before it returns: a
// replica that cannot be reached then is down (see Replicas), not an error,
// and is checked again every cfg.ReplicaCheckInterval until Close.
//
// Errors never contain the password: the URL in them is redacted.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	cfg = cfg.withDefaults()
	t, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	replicaTargets, err := checkReplicaConfig(t, cfg)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{dialect: t.dialect, logger: logger, logQueries: cfg.LogQueries, closeTimeout: cfg.CloseTimeout, redacted: t.redacted,
		tracing: newTracing(cfg)}
	if db.migration, err = migrationConfig(cfg, t); err != nil {
		return nil, err
	}
	switch t.dialect {
	case Postgres:
		if cfg.Pooler, err = checkPooler(cfg.Pooler); err != nil {
			return nil, err
		}
		db.pooler = cfg.Pooler
		db.secrets = urlSecrets(t.pgURL)
		if err := checkTLS(t, cfg, logger); err != nil {
			return nil, err
		}
		if err := checkTLSFiles(t.pgURL); err != nil {
			return nil, err
		}
		db.driver = cfg.Driver
		if db.connector, err = postgresConnector(t.pgURL, cfg); err == nil {
			db.traceAttrs = postgresAttributes(t)
			db.sql = sql.OpenDB(db.tracing.traced(db.connector, db.traceAttrs))
		}
	case SQLite:
		db.driver = "sqlite"
		db.traceAttrs = sqliteAttributes()
		db.sql = sql.OpenDB(db.tracing.traced(openSQLiteConnector(t.sqlitePath, cfg), db.traceAttrs))
	}
	if err != nil {
		return nil, err
	}
	applyPool(db.sql, t, cfg)
	if err := db.pingWithRetry(ctx, cfg.OpenRetryWindow); err != nil {
		db.sql.Close()
		return nil, err
	}
	db.client = db.newClient(db.tracedPool(entsql.OpenDB(t.dialect, db.sql)))
	if len(cfg.ReplicaURLs) > 0 {
		if err := db.openReplicas(ctx, cfg, replicaTargets); err != nil {
			db.sql.Close()
			return nil, err
		}
	}
	return db, nil
}

// newClient returns an ent client over drv. Every client DB hands out, the
// pool's and the transaction's of WithConnTx, is built here, so that each logs
// its statements when Config.LogQueries asks for it.
func (db *DB) newClient(drv entdialect.Driver) *ent.Client {
	if db.logQueries {
		drv = entdialect.DebugWithContext(drv, queryLogger(db.logger))
	}
	return ent.NewClient(ent.Driver(drv))
}

// queryLogger logs the statement text only. ent's debug driver passes a string
// with the arguments appended ("args=[...]"); they are cut, because they carry
// message bodies and password hashes.
func queryLogger(l *slog.Logger) func(context.Context, ...any) {
	return func(ctx context.Context, v ...any) {
		if len(v) == 0 {
			return
		}
		s, ok := v[0].(string)
		if !ok {
			return
		}
		// ent's own SQL never contains " args=", so the first one is the separator.
		if i := strings.Index(s, " args="); i >= 0 {
			s = s[:i]
		}
		l.DebugContext(ctx, "query", slog.String("sql", s))
	}
}

// logStatement logs text, a statement or transaction step that runs outside
// the ent client's driver (WithConnTx's BEGIN and COMMIT, CopyFrom's COPY),
// as the query logger logs the client's, when Config.LogQueries asks for it.
func (db *DB) logStatement(ctx context.Context, text string) {
	if db.logQueries {
		queryLogger(db.logger)(ctx, text)
	}
}

func applyPool(db *sql.DB, t target, cfg Config) {
	maxOpen, maxIdle := cfg.MaxOpenConns, cfg.MaxIdleConns
	if maxOpen < 0 {
		maxOpen = 0 // database/sql: 0 is unlimited
	}
	if maxIdle < 0 {
		maxIdle = 0
	}
	if t.dialect == SQLite && t.sqlitePath == ":memory:" {
		// Each connection to ":memory:" is a database of its own; keep exactly one,
		// forever, or the data goes away with the connection.
		maxOpen, maxIdle = 1, 1
		cfg.ConnMaxLifetime, cfg.ConnMaxIdleTime = -1, -1
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxIdle)
	if cfg.ConnMaxLifetime > 0 {
		db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	}
	if cfg.ConnMaxIdleTime > 0 {
		db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	}
}

func postgresConnector(u *url.URL, cfg Config) (driver.Connector, error) {
	switch cfg.Driver {
	case DriverPgx:
		pc, err := pgx.ParseConfig(u.String())
		if err != nil {
			return nil, &ConfigError{Reason: "PostgreSQL URL rejected by pgx (check its parameters)"}
		}
		pc.ConnectTimeout = cfg.ConnectTimeout
		if err := pgxPoolerMode(pc, u, cfg.Pooler); err != nil {
			return nil, err
		}
		return pgdriver.Pgx(*pc, cfg.HealthCheckAfter), nil
	case DriverPQ:
		c := *u
		q := c.Query()
		if q.Has("sslpassword") {
			// lib/pq does not know it, and sends parameters it does not know to
			// the server as settings: the passphrase would travel in the start-up
			// message (and the server refuse it).
			return nil, &ConfigError{Reason: "lib/pq does not support sslpassword; use an unencrypted key file readable only by the application, or pgx"}
		}
		// One round trip per parameterised statement instead of two (Parse/Describe,
		// then Bind/Execute). lib/pq then sends []byte arguments in binary format,
		// which is why JSON columns are written as text (schematype.MessageMetadata).
		if err := pqPoolerCheck(q, cfg.Pooler); err != nil {
			return nil, err
		}
		if !q.Has("binary_parameters") {
			q.Set("binary_parameters", "yes")
		}
		if !q.Has("connect_timeout") {
			secs := int(cfg.ConnectTimeout.Round(time.Second) / time.Second)
			q.Set("connect_timeout", strconv.Itoa(max(secs, 1)))
		}
		c.RawQuery = q.Encode()
		conn, err := pq.NewConnector(c.String())
		if err != nil {
			return nil, &ConfigError{Reason: "PostgreSQL URL rejected by lib/pq (check its parameters)"}
		}
		return pgdriver.PQ(conn, cfg.HealthCheckAfter), nil
	default:
		return nil, &ConfigError{Reason: fmt.Sprintf("unknown PostgreSQL driver %q (use %q or %q)", cfg.Driver, DriverPgx, DriverPQ)}
	}
}

// openSQLiteConnector returns the connector of the SQLite database at path.
func openSQLiteConnector(path string, cfg Config) driver.Connector {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	if path != ":memory:" {
		q.Add("_pragma", "journal_mode(WAL)")
		// In WAL mode a commit is durable after fsync of the WAL; NORMAL syncs at
		// checkpoints only and can lose the last commits on power loss.
		q.Add("_pragma", "synchronous(FULL)")
	}
	q.Set("_busy_timeout", strconv.FormatInt(cfg.SQLiteBusyTimeout.Milliseconds(), 10))
	// Writers take the lock when the transaction begins: a deferred transaction that
	// reads and then writes cannot wait for the lock in WAL mode and fails at once
	// with SQLITE_BUSY, whatever the busy timeout.
	q.Set("_txlock", "immediate")
	// Fixed-width UTC text, so that stored times sort as they compare.
	q.Set("_time_format", "sqlite")
	dsn := "file:" + path + "?" + q.Encode()
	// Writers of the file queue in this process before they reach SQLite's
	// lock (sqlitegate.go).
	return newSQLiteConnector(dsn, path, cfg.SQLiteBusyTimeout)
}

// pingWithRetry pings until it succeeds, the server answers with an error that
// waiting will not fix, or window has passed. The backoff is jittered and doubles
// from 50ms up to 1s.
func (db *DB) pingWithRetry(ctx context.Context, window time.Duration) error {
	deadline := time.Now().Add(window)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := db.sql.PingContext(ctx)
		if err == nil {
			return nil
		}
		if !retryableConnectError(err) || ctx.Err() != nil || window < 0 || time.Now().Add(backoff).After(deadline) {
			return &ConnectError{URL: db.redacted, Attempts: attempt, Err: scrub(mapError(err), db.secrets...)}
		}
		db.logger.WarnContext(ctx, "database: not reachable yet, retrying",
			slog.String("url", db.redacted), slog.Int("attempt", attempt), slog.Duration("backoff", backoff))
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return &ConnectError{URL: db.redacted, Attempts: attempt, Err: ctx.Err()}
		case <-time.After(sleep):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// retryableConnectError reports whether a failed ping may succeed later: the
// server could not be reached, is starting up, or has no connection slot free
// yet. A server that answered with another error (bad password, unknown
// database) will answer the same again.
func retryableConnectError(err error) bool {
	if code, ok := sqlState(err); ok {
		// 57P03 cannot_connect_now: starting up, shutting down or in recovery.
		// 53300 too_many_connections: slots free up as other sessions end.
		return code == "57P03" || code == "53300"
	}
	// A certificate that does not verify (wrong name, unknown authority,
	// expired) will not verify on the next attempt either, nor will a local
	// file the driver could not read (a TLS file; Open checks those it knows
	// first, and this catches the rest).
	var (
		ce   *ConfigError
		path *fs.PathError
	)
	return !errors.As(err, &ce) && !tlsVerifyError(err) && !errors.As(err, &path)
}

// ConnectError is returned by Open when the database cannot be reached. URL has
// its password redacted, and Err is the last error seen, with any password in its
// text removed.
type ConnectError struct {
	URL      string
	Attempts int
	Err      error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("database: cannot connect to %s after %d attempt(s): %v", e.URL, e.Attempts, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Client returns the ent client over the pool. It is safe for concurrent use and
// must not be closed separately: Close closes it.
func (db *DB) Client() *ent.Client { return db.client }

// SQL returns the underlying pool, for queries ent cannot express and for tools.
func (db *DB) SQL() *sql.DB { return db.sql }

// Dialect returns Postgres or SQLite.
func (db *DB) Dialect() string { return db.dialect }

// Driver returns the driver in use: DriverPgx, DriverPQ or "sqlite".
func (db *DB) Driver() string { return db.driver }

// URL returns the database URL with its password redacted, for messages.
func (db *DB) URL() string { return db.redacted }

// Stats returns the pool's statistics: open, in use and idle connections, and how
// often and how long callers waited for one.
func (db *DB) Stats() sql.DBStats { return db.sql.Stats() }

// Close closes the ent client and the pool. It first waits until no connection
// is in use, that is until the queries and transactions in progress have
// ended, for at most Config.CloseTimeout (30s by default); see that field for
// what happens to the work still in progress then. Calls that start while
// Close waits run as usual, and Close waits for them too, within the same
// bound: stop sending work before closing (as http.Server.Shutdown does) so
// that Close does not wait for its bound. Calls that start after Close has
// closed the pool fail with ErrClosed. It is safe to call more than once;
// later calls return the first result at once.
//
// Cost: it checks the pool every 10ms while it waits; a pool with no
// connection in use closes at once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		deadline := time.Now().Add(db.closeTimeout)
		replicasErr := db.closeReplicas(deadline)
		db.waitIdle(time.Until(deadline))
		// The ent client's Close closes the *sql.DB it was opened with.
		db.closeErr = errors.Join(db.client.Close(), replicasErr)
	})
	return db.closeErr
}

// waitIdle waits until no connection of the pool is in use, or bound has
// passed.
func (db *DB) waitIdle(bound time.Duration) {
	deadline := time.Now().Add(bound)
	for db.sql.Stats().InUse > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 10*time.Millisecond))
	}
}

// sqlState extracts a PostgreSQL SQLSTATE from either driver's error type.
func sqlState(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return string(pqErr.Code), true
	}
	return "", false
}
