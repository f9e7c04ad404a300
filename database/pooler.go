package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
)

// Poolers, the values of Config.Pooler: what stands between chatdb and
// PostgreSQL.
const (
	// PoolerNone is a direct connection to PostgreSQL. The empty string means
	// the same.
	PoolerNone = "none"
	// PoolerSession is a pooler in session mode (PgBouncer's pool_mode =
	// session): a client keeps one server connection from connecting to
	// disconnecting, so chatdb works as on a direct connection.
	PoolerSession = "session"
	// PoolerTransaction is a pooler in transaction mode (PgBouncer's
	// pool_mode = transaction): a client holds a server connection for one
	// transaction at a time, and a statement outside a transaction is one.
	// Nothing a session keeps between transactions survives: named prepared
	// statements, session settings, session advisory locks, temporary tables
	// that outlive their transaction, LISTEN. See Config.Pooler for what
	// chatdb does then.
	PoolerTransaction = "transaction"
)

// ErrPooler is returned by Migrate when the database is reached through a
// pooler in transaction mode, where the session advisory lock that keeps
// migrators apart does not hold: between two statements the pooler may hand
// the session's server connection, lock included, to another client, and
// the unlock may reach another server connection than the lock. The error
// is a *PoolerError. Nothing is applied.
var ErrPooler = errors.New("database: migrate: the URL goes through a transaction pooler")

// PoolerError is returned by Migrate behind a transaction pooler without
// Config.MigrationURL. errors.Is(err, ErrPooler) holds.
type PoolerError struct {
	// URL is the database's URL, redacted.
	URL string
	// Detected is true when Migrate found the pooler itself (see
	// DB.DetectPooler) although Config.Pooler did not name it, false when
	// Config.Pooler is PoolerTransaction.
	Detected bool
}

func (e *PoolerError) Error() string {
	why := `Config.Pooler (CHATDB_POOLER) is "transaction"`
	if e.Detected {
		why = "detected: two statements of one session ran on different server connections"
	}
	return fmt.Sprintf("%v (%s: %s), where the migration's session advisory lock does not hold; "+
		"set Config.MigrationURL (CHATDB_MIGRATION_URL), or pass chatdb migrate apply --url, to a direct connection to the database",
		ErrPooler, e.URL, why)
}

// Is reports whether target is ErrPooler.
func (e *PoolerError) Is(target error) bool { return target == ErrPooler }

// checkPooler returns Config.Pooler in its canonical form: "" for none (or a
// pooler in session mode, which is the same to chatdb), PoolerTransaction,
// or a *ConfigError.
func checkPooler(p string) (string, error) {
	switch p {
	case "", PoolerNone, PoolerSession:
		return "", nil
	case PoolerTransaction:
		return PoolerTransaction, nil
	case "statement":
		return "", &ConfigError{Reason: `Pooler "statement": chatdb runs transactions of several statements, which a pooler in statement mode refuses; use pool_mode = transaction`}
	default:
		return "", &ConfigError{Reason: fmt.Sprintf("unknown Pooler %.20q (use %q, %q or %q)", p, PoolerNone, PoolerSession, PoolerTransaction)}
	}
}

// pgxPoolerMode sets pc's query exec mode for a pooler in transaction mode:
// pgx's default, cache_statement, prepares a named statement on the server
// connection of one statement and runs it in the next round trip, which the
// pooler may send to another server connection ("prepared statement does not
// exist"), or where another client prepared one of the same name ("already
// exists"). cache_describe keeps what the default does for the types and
// formats of arguments and results, without naming a statement: it describes
// each statement once per connection, on the unnamed statement, then sends
// parse, bind and execute together (one round trip), which is whole on
// whichever server connection the pooler picks. exec and simple_protocol are
// one round trip too, but send arguments as text and let the server infer
// their types; they are accepted when the URL asks for them.
// describe_exec, whose two round trips bind a statement the first parsed,
// is refused, as is cache_statement.
func pgxPoolerMode(pc *pgx.ConnConfig, u *url.URL, pooler string) error {
	if pooler != PoolerTransaction {
		return nil
	}
	mode := u.Query().Get("default_query_exec_mode")
	switch mode {
	case "":
		pc.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		return nil
	case "cache_describe", "exec", "simple_protocol":
		return nil
	default:
		return &ConfigError{Reason: fmt.Sprintf("default_query_exec_mode=%.20s needs a server connection of its own between round trips, which a transaction pooler does not give; use cache_describe (chatdb's choice when the URL says none), exec or simple_protocol", mode)}
	}
}

// pqPoolerCheck refuses binary_parameters=no behind a pooler in transaction
// mode: lib/pq then parses each statement with arguments in one round trip
// and binds it in a second, which the pooler may send to another server
// connection. With binary_parameters=yes (Open's default) the statement goes
// in one round trip, on the unnamed statement, and lib/pq names no statement
// except for database/sql's Prepare, which chatdb does not call.
func pqPoolerCheck(q url.Values, pooler string) error {
	if pooler != PoolerTransaction || !q.Has("binary_parameters") || isTrue(q.Get("binary_parameters")) {
		return nil
	}
	return &ConfigError{Reason: "binary_parameters must be yes behind a transaction pooler: without it lib/pq parses a statement in one round trip and runs it in another, which the pooler may send to another server connection"}
}

// migrationConfig returns the Config of the pool Migrate opens on
// cfg.MigrationURL, or nil when cfg has none; t is cfg.URL parsed. The
// dialects must agree.
func migrationConfig(cfg Config, t target) (*Config, error) {
	if cfg.MigrationURL == "" {
		return nil, nil
	}
	mt, err := parseURL(cfg.MigrationURL)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return nil, &ConfigError{Reason: "MigrationURL: " + ce.Reason, Err: ce.Err}
		}
		return nil, err
	}
	if mt.dialect != t.dialect {
		return nil, &ConfigError{Reason: fmt.Sprintf("MigrationURL is %s but URL is %s: they must name the same database", mt.dialect, t.dialect)}
	}
	mc := cfg.ForMigration()
	// Migrate uses one connection throughout; a second serves its reads.
	mc.MaxOpenConns, mc.MaxIdleConns = 2, 1
	return &mc, nil
}

// ForMigration returns the Config that migrations run with: when
// MigrationURL is set, c with URL set to it, and Pooler and MigrationURL
// cleared (the migration URL is a direct connection); otherwise c itself.
// Migrate does this by itself; tools that open the migration database
// themselves, as chatdb migrate apply does, call it.
func (c Config) ForMigration() Config {
	if c.MigrationURL == "" {
		return c
	}
	c.URL, c.Pooler, c.MigrationURL = c.MigrationURL, "", ""
	return c
}

// Pooler returns Config.Pooler as Open took it: PoolerTransaction, or
// PoolerNone for a direct connection or a pooler in session mode.
func (db *DB) Pooler() string {
	if db.pooler == "" {
		return PoolerNone
	}
	return db.pooler
}

// migrateElsewhere runs Migrate on a pool of its own on Config.MigrationURL,
// and closes it again.
func (db *DB) migrateElsewhere(ctx context.Context, opts []MigrateOption) (err error) {
	direct, err := Open(ctx, *db.migration)
	if err != nil {
		return fmt.Errorf("database: migrate: MigrationURL: %w", err)
	}
	defer func() { err = errors.Join(err, direct.Close()) }()
	return Migrate(ctx, direct, opts...)
}

// checkSessionLock returns a *PoolerError when Migrate's session advisory
// lock would not hold on db: Config.Pooler names a transaction pooler, or
// DetectPooler finds one.
func (db *DB) checkSessionLock(ctx context.Context) error {
	if db.dialect != Postgres {
		return nil
	}
	if db.pooler == PoolerTransaction {
		return &PoolerError{URL: db.redacted}
	}
	pooled, err := db.DetectPooler(ctx)
	if err != nil {
		return fmt.Errorf("database: migrate: %w", err)
	}
	if pooled {
		return &PoolerError{URL: db.redacted, Detected: true}
	}
	return nil
}

// unclosable hides a connector's Close: the pool DetectPooler opens over
// db's connector must not close it (pgdriver's connectors break every
// connection they made when closed).
type unclosable struct{ driver.Connector }

// DetectPooler reports whether db reaches PostgreSQL through a pooler in
// transaction (or statement) mode: one that may run two statements of one
// client session on different server connections. It opens two connections
// of its own, outside the pool, and asks for the server process of each:
// the first outside a transaction, the second inside one, then the first
// again. On a direct connection (or through a pooler in session mode) the
// first session's process never changes and the two differ. Through a
// transaction pooler, the second session takes the server connection the
// first just gave back (PgBouncer hands out the most recently used one), or
// the first moves to another while the second holds its own. A pooler
// under load may hand out server connections so that neither shows, so a
// false answer is not proof; a true one is. It returns false on SQLite.
//
// Cost: two new connections, three one-row statements outside a pooled
// statement cache (the simple protocol), and an empty transaction.
func (db *DB) DetectPooler(ctx context.Context) (bool, error) {
	if db.dialect != Postgres || db.connector == nil {
		return false, nil
	}
	p := sql.OpenDB(unclosable{db.connector})
	defer p.Close()
	p.SetMaxIdleConns(2)
	// pgx's default mode would prepare a named statement for the query,
	// which a transaction pooler breaks; lib/pq sends a query without
	// arguments in the simple protocol by itself.
	var args []any
	if db.driver == DriverPgx {
		args = []any{pgx.QueryExecModeSimpleProtocol}
	}
	type querier interface {
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
	backend := func(q querier) (pid int64, err error) {
		err = q.QueryRowContext(ctx, "SELECT pg_backend_pid()", args...).Scan(&pid)
		return pid, err
	}
	detect := func() (bool, error) {
		first, err := p.Conn(ctx)
		if err != nil {
			return false, err
		}
		defer first.Close()
		p1, err := backend(first)
		if err != nil {
			return false, err
		}
		second, err := p.Conn(ctx)
		if err != nil {
			return false, err
		}
		defer second.Close()
		tx, err := second.BeginTx(ctx, nil)
		if err != nil {
			return false, err
		}
		defer tx.Rollback()
		p2, err := backend(tx)
		if err != nil {
			return false, err
		}
		if p2 == p1 {
			return true, nil
		}
		again, err := backend(first)
		if err != nil {
			return false, err
		}
		return again != p1, nil
	}
	pooled, err := detect()
	if err != nil {
		return false, fmt.Errorf("detect a pooler: %w", scrub(mapError(err), db.secrets...))
	}
	return pooled, nil
}
