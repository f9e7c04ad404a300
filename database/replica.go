package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/chatdb/chatdb/ent"
)

// Defaults of the replica settings of Config.
const (
	// DefaultMaxReplicaLag is how far behind the primary a replica may be and
	// still serve reads: a page that misses the last five seconds of a chat is
	// what a chat application can show for a moment (a user's own writes are
	// covered by tokens, not by this bound).
	DefaultMaxReplicaLag = 5 * time.Second
	// DefaultReplicaCheckInterval is how often each replica's health and lag
	// are checked.
	DefaultReplicaCheckInterval = time.Second
)

// ReplicaState says whether a replica serves reads, and why not.
type ReplicaState string

// The states of a replica.
const (
	// ReplicaHealthy: a standby in recovery, reachable, whose lag is within
	// MaxReplicaLag. Only healthy replicas serve reads.
	ReplicaHealthy ReplicaState = "healthy"
	// ReplicaLagging: reachable, but further behind than MaxReplicaLag, or by
	// an amount that cannot be bounded yet.
	ReplicaLagging ReplicaState = "lagging"
	// ReplicaDown: the check or a read failed to reach it.
	ReplicaDown ReplicaState = "down"
	// ReplicaPromoted: reachable but not in recovery: a standby that was
	// promoted, or a primary, so no longer a copy of this primary.
	ReplicaPromoted ReplicaState = "promoted"
	// ReplicaForeign: a standby, but of another cluster: its system
	// identifier (pg_control_system) is not the primary's, so its data and
	// its WAL positions mean nothing here. A URL mistake, never used.
	ReplicaForeign ReplicaState = "foreign"
)

// ReplicaStatus is what the last check of one replica found (see DB.Replicas).
type ReplicaStatus struct {
	// Name is "replica" and the replica's place in Config.ReplicaURLs, from 1:
	// "replica1". It labels the replica in metrics and in doctor.
	Name string
	// URL is the replica's URL with its password redacted.
	URL string
	// State says whether it serves reads.
	State ReplicaState
	// Err is why it is down (the password removed), nil otherwise.
	Err error
	// Lag bounds how old the oldest write it may be missing is: 0 when it
	// has replayed the primary's position of the last check, negative when it
	// is not known. It is the smaller of two bounds: the time since the last
	// check at which the primary's position was one the replica has replayed
	// since, and the age of the last transaction it replayed
	// (pg_last_xact_replay_timestamp, by the replica's clock). Either is
	// correct while the primary is idle, which a replay timestamp alone is
	// not.
	Lag time.Duration
	// LagBytes is the primary's WAL position at the last check minus the
	// replica's replay position, negative when not known.
	LagBytes int64
	// ReplayLSN is the replica's replay position (pg_last_wal_replay_lsn) at
	// the check, in PostgreSQL's form "0/3000148"; empty when not known.
	ReplayLSN string
	// ReplayPaused says whether replay is paused (pg_wal_replay_pause).
	ReplayPaused bool
	// CheckedAt is when the status was found.
	CheckedAt time.Time
	// Reads counts the reads routed to the replica since Open.
	Reads uint64
	// Fallbacks counts the reads that failed on the replica with a lost
	// connection or a recovery conflict and were run again on the primary.
	Fallbacks uint64

	replay uint64
}

// replicaSet is the replicas of a DB and the checker that watches them.
type replicaSet struct {
	db       *DB
	list     []*replica
	maxLag   time.Duration
	interval time.Duration
	timeout  time.Duration
	primary  *entsql.Driver

	next         atomic.Uint64
	primaryReads atomic.Uint64

	// samples are the primary's WAL positions at recent checks, oldest first;
	// only the checker touches them.
	samples []walSample
	// systemID is the primary's system identifier, 0 until a check has read
	// it; only the checker touches it.
	systemID int64

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

type walSample struct {
	at  time.Time
	lsn uint64
}

type replica struct {
	name     string
	redacted string
	secrets  []string
	sql      *sql.DB
	client   *ent.Client
	status   atomic.Pointer[ReplicaStatus]

	reads, fallbacks atomic.Uint64
}

// checkReplicaConfig parses the replica settings, before anything is
// opened. Its errors never hold a URL.
func checkReplicaConfig(t target, cfg Config) ([]target, error) {
	if len(cfg.ReplicaURLs) == 0 {
		return nil, nil
	}
	if t.dialect != Postgres {
		return nil, &ConfigError{Reason: "ReplicaURLs: read replicas need PostgreSQL; SQLite has none"}
	}
	if cfg.ReplicaCheckInterval < 0 {
		return nil, &ConfigError{Reason: "ReplicaCheckInterval must not be negative"}
	}
	out := make([]target, len(cfg.ReplicaURLs))
	for i, raw := range cfg.ReplicaURLs {
		rt, err := parseURL(raw)
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				return nil, &ConfigError{Reason: fmt.Sprintf("ReplicaURLs[%d]: %s", i, ce.Reason), Err: ce.Err}
			}
			return nil, &ConfigError{Reason: fmt.Sprintf("ReplicaURLs[%d]: not a URL chatdb can open", i)}
		}
		if rt.dialect != Postgres {
			return nil, &ConfigError{Reason: fmt.Sprintf("ReplicaURLs[%d]: a replica must be a PostgreSQL URL", i)}
		}
		out[i] = rt
	}
	return out, nil
}

// openReplicas opens a pool per replica, checks each once, and starts the
// checker. A replica that cannot be reached is not an error: it is down
// until a check reaches it.
func (db *DB) openReplicas(ctx context.Context, cfg Config, targets []target) error {
	rs := &replicaSet{
		db:       db,
		maxLag:   cfg.MaxReplicaLag,
		interval: cfg.ReplicaCheckInterval,
		timeout:  cfg.ConnectTimeout,
		primary:  entsql.OpenDB(Postgres, db.sql),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i, t := range targets {
		r, err := db.openReplica(i, t, cfg, rs)
		if err != nil {
			for _, r := range rs.list {
				r.sql.Close()
			}
			return err
		}
		rs.list = append(rs.list, r)
	}
	rs.check(ctx)
	db.replicas = rs
	go rs.run()
	return nil
}

func (db *DB) openReplica(i int, t target, cfg Config, rs *replicaSet) (*replica, error) {
	name := "replica" + strconv.Itoa(i+1)
	if err := checkTLS(t, cfg, db.logger); err != nil {
		return nil, err
	}
	if err := checkTLSFiles(t.pgURL); err != nil {
		return nil, err
	}
	conn, err := postgresConnector(t.pgURL, cfg)
	if err != nil {
		return nil, err
	}
	pool := sql.OpenDB(db.tracing.traced(conn, postgresAttributes(t)))
	applyPool(pool, t, cfg)
	r := &replica{name: name, redacted: t.redacted, secrets: urlSecrets(t.pgURL), sql: pool}
	r.status.Store(&ReplicaStatus{Name: name, URL: t.redacted, State: ReplicaDown, Err: errors.New("database: not checked yet"), Lag: -1, LagBytes: -1})
	r.client = db.newClient(db.tracedPool(&replicaDriver{Driver: entsql.OpenDB(Postgres, pool), r: r, rs: rs}))
	return r, nil
}

// run checks the replicas every interval until close.
func (rs *replicaSet) run() {
	defer close(rs.done)
	// A check in progress when close is called is cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-rs.stop
		cancel()
	}()
	t := time.NewTicker(rs.interval)
	defer t.Stop()
	for {
		select {
		case <-rs.stop:
			return
		case <-t.C:
		}
		rs.check(ctx)
	}
}

// close stops the checker, then closes each replica's pool once no
// connection of it is in use or deadline has passed.
func (rs *replicaSet) close(deadline time.Time) error {
	rs.stopOnce.Do(func() { close(rs.stop) })
	<-rs.done
	var errs []error
	for _, r := range rs.list {
		for r.sql.Stats().InUse > 0 && time.Now().Before(deadline) {
			time.Sleep(min(time.Until(deadline), 10*time.Millisecond))
		}
		errs = append(errs, r.sql.Close())
	}
	return errors.Join(errs...)
}

// check samples the primary's WAL position, then checks every replica at once.
//
// Cost: one query on the primary and one on each replica, each bounded by
// Config.ConnectTimeout.
func (rs *replicaSet) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, rs.timeout)
	defer cancel()
	start := time.Now()
	if rs.systemID == 0 {
		var id int64
		if err := rs.db.sql.QueryRowContext(ctx, systemIDSQL).Scan(&id); err == nil {
			rs.systemID = id
		}
	}
	if lsn, err := rs.db.insertPosition(ctx); err == nil {
		rs.addSample(start, lsn)
	} else if ctx.Err() == nil {
		rs.db.logger.Debug("database: replica check: the primary's WAL position could not be read",
			slog.String("url", rs.db.redacted), slog.Any("error", scrub(mapError(err), rs.db.secrets...)))
	}
	var wg sync.WaitGroup
	for _, r := range rs.list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs.checkOne(ctx, r)
		}()
	}
	wg.Wait()
}

// addSample keeps the primary's position at a check, and forgets samples
// older than a lag bound needs.
func (rs *replicaSet) addSample(at time.Time, lsn uint64) {
	rs.samples = append(rs.samples, walSample{at: at, lsn: lsn})
	window := 5 * time.Minute
	if rs.maxLag >= 0 {
		window = 2*rs.maxLag + 10*rs.interval
	}
	i := 0
	for i < len(rs.samples)-1 && at.Sub(rs.samples[i].at) > window {
		i++
	}
	rs.samples = rs.samples[i:]
}

const (
	systemIDSQL     = `SELECT system_identifier FROM pg_control_system()`
	replicaCheckSQL = `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
  EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8,
  (` + systemIDSQL + `)`
)

// checkOne checks one replica and stores its status.
func (rs *replicaSet) checkOne(ctx context.Context, r *replica) {
	now := time.Now()
	st := ReplicaStatus{Name: r.name, URL: r.redacted, CheckedAt: now, Lag: -1, LagBytes: -1}
	var (
		inRecovery, paused bool
		replay             sql.NullString
		age                sql.NullFloat64
		systemID           int64
	)
	err := r.sql.QueryRowContext(ctx, replicaCheckSQL).Scan(&inRecovery, &replay, &paused, &age, &systemID)
	switch {
	case err != nil:
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			return // closing
		}
		st.State, st.Err = ReplicaDown, scrub(mapError(err), r.secrets...)
	case !inRecovery:
		st.State = ReplicaPromoted
	case rs.systemID != 0 && systemID != rs.systemID:
		st.State = ReplicaForeign
	default:
		st.ReplayPaused = paused
		if lsn, ok := parseLSN(replay.String); replay.Valid && ok {
			st.replay, st.ReplayLSN = lsn, formatLSN(lsn)
			st.Lag, st.LagBytes = rs.lag(now, lsn, age)
		}
		st.State = ReplicaLagging
		if st.Lag >= 0 && (rs.maxLag < 0 || st.Lag <= rs.maxLag) {
			st.State = ReplicaHealthy
		}
	}
	prev := r.status.Swap(&st)
	if prev.State != st.State || prev.CheckedAt.IsZero() {
		rs.logTransition(r, prev, &st)
	}
}

// lag bounds a replica's lag from its replay position and the age of the
// transaction it replayed last (see ReplicaStatus.Lag).
func (rs *replicaSet) lag(now time.Time, replay uint64, age sql.NullFloat64) (time.Duration, int64) {
	if len(rs.samples) == 0 {
		return -1, -1
	}
	latest := rs.samples[len(rs.samples)-1]
	if replay >= latest.lsn {
		return 0, 0
	}
	bytes := int64(latest.lsn - replay)
	bound := time.Duration(-1)
	for i := len(rs.samples) - 1; i >= 0; i-- {
		if rs.samples[i].lsn <= replay {
			bound = now.Sub(rs.samples[i].at)
			break
		}
	}
	if age.Valid {
		a := max(time.Duration(age.Float64*float64(time.Second)), 0)
		if bound < 0 || a < bound {
			bound = a
		}
	}
	return bound, bytes
}

func (rs *replicaSet) logTransition(r *replica, prev, st *ReplicaStatus) {
	attrs := []any{slog.String("replica", r.name), slog.String("url", r.redacted)}
	if !prev.CheckedAt.IsZero() {
		attrs = append(attrs, slog.String("was", string(prev.State)))
	}
	switch st.State {
	case ReplicaHealthy:
		rs.db.logger.Info("database: replica serves reads", attrs...)
	case ReplicaLagging:
		rs.db.logger.Warn("database: replica lags; reads skip it", append(attrs, slog.Duration("lag", st.Lag), slog.Int64("lag_bytes", st.LagBytes))...)
	case ReplicaPromoted:
		rs.db.logger.Warn("database: replica is not in recovery (promoted?); reads skip it", attrs...)
	case ReplicaForeign:
		rs.db.logger.Warn("database: replica is a standby of another cluster; reads skip it", attrs...)
	case ReplicaDown:
		rs.db.logger.Warn("database: replica is down; reads skip it", append(attrs, slog.Any("error", st.Err))...)
	}
}

// pick returns a healthy replica that has replayed need, in turn, or nil.
func (rs *replicaSet) pick(need uint64) *replica {
	n := uint64(len(rs.list))
	start := rs.next.Add(1)
	for i := range n {
		r := rs.list[(start+i)%n]
		if st := r.status.Load(); st.State == ReplicaHealthy && st.replay >= need {
			return r
		}
	}
	return nil
}

// markDown takes r out of the reads after a read lost its connection, until
// a check reaches it again.
func (r *replica) markDown(rs *replicaSet, err error) {
	prev := r.status.Load()
	if prev.State != ReplicaHealthy {
		return
	}
	st := *prev
	st.State, st.Err, st.CheckedAt = ReplicaDown, scrub(mapError(err), r.secrets...), time.Now()
	if r.status.CompareAndSwap(prev, &st) {
		rs.logTransition(r, prev, &st)
	}
}

// replicaDriver is the ent driver of a replica's client: a read that fails
// on the replica because the connection broke, the replica went away or a
// recovery conflict cancelled it runs again on the primary. Reads are safe to
// run twice; this client is only handed out for them (ReadClient).
type replicaDriver struct {
	*entsql.Driver
	r  *replica
	rs *replicaSet
}

func (d *replicaDriver) Query(ctx context.Context, query string, args, v any) error {
	err := d.Driver.Query(ctx, query, args, v)
	if err != nil && d.fallBack(ctx, err) {
		return d.rs.primary.Query(ctx, query, args, v)
	}
	return err
}

func (d *replicaDriver) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := d.Driver.QueryContext(ctx, query, args...)
	if err != nil && d.fallBack(ctx, err) {
		return d.rs.primary.QueryContext(ctx, query, args...)
	}
	return rows, err
}

// fallBack reports whether a read that failed with err on the replica should
// run on the primary, and takes the replica out of the reads when it looks
// gone.
func (d *replicaDriver) fallBack(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	m := mapError(err)
	switch {
	case errors.Is(m, ErrBadConn):
		d.r.markDown(d.rs, err)
	case errors.Is(m, ErrSerialization):
		// A standby cancels a query whose rows replay must remove
		// ("conflict with recovery", 40001): the replica is fine.
	default:
		return false
	}
	d.r.fallbacks.Add(1)
	return true
}

// ReadClient returns the ent client for a read that tolerates staleness: a
// healthy replica's, in turn, when ctx allows it, and the primary's (Client)
// otherwise. ctx allows a replica unless it carries a transaction, was made
// by Primary, or carries a session (WithToken) that wrote and has no token
// yet; a session's token admits only replicas whose replay position, at their
// last check, had reached it. Without ReplicaURLs it is Client.
//
// A replica's client is for reads only: a standby refuses writes
// (ErrReadOnly). A read that fails on a replica because its connection broke
// runs again on the primary, and the replica is left out until a check
// reaches it again; a read whose rows were already arriving fails with
// ErrBadConn.
//
// The replay position a token is held to is the one the replica's last check
// saw, which only grows while the standby runs; a standby that crashed and
// came back between two checks may serve, until the next one, from an
// earlier position (crash recovery starts over from its last restartpoint).
//
// Cost: no round trip; atomic loads of each replica's last status.
func (db *DB) ReadClient(ctx context.Context) *ent.Client {
	rs := db.replicas
	if rs == nil {
		return db.client
	}
	if InTx(ctx) || forcedPrimary(ctx) {
		rs.primaryReads.Add(1)
		return db.client
	}
	var need uint64
	if s := sessionFrom(ctx); s != nil {
		lsn, pending := s.state()
		if pending {
			rs.primaryReads.Add(1)
			return db.client
		}
		need = lsn
	}
	if r := rs.pick(need); r != nil {
		r.reads.Add(1)
		return r.client
	}
	rs.primaryReads.Add(1)
	return db.client
}

// Replicas returns the status of each replica of Config.ReplicaURLs, in that
// order, as the last check or read found it; nil without replicas. It costs
// no round trip.
func (db *DB) Replicas() []ReplicaStatus {
	if db.replicas == nil {
		return nil
	}
	out := make([]ReplicaStatus, len(db.replicas.list))
	for i, r := range db.replicas.list {
		out[i] = *r.status.Load()
		out[i].Reads, out[i].Fallbacks = r.reads.Load(), r.fallbacks.Load()
	}
	return out
}

// PrimaryReads counts the reads ReadClient sent to the primary since Open,
// while replicas were configured: forced, in a transaction, for a session
// token no replica had reached, or for want of a healthy replica. Zero
// without replicas.
func (db *DB) PrimaryReads() uint64 {
	if db.replicas == nil {
		return 0
	}
	return db.replicas.primaryReads.Load()
}

// closeReplicas stops the checker and closes the replicas' pools.
func (db *DB) closeReplicas(deadline time.Time) error {
	if db.replicas == nil {
		return nil
	}
	return db.replicas.close(deadline)
}

// splitReplicaURLs splits CHATDB_REPLICA_URLS at its commas. A piece that
// starts neither with a PostgreSQL scheme nor with a key=value pair
// continues the entry before it, so that the commas of a multi-host URL
// ("postgres://h1:5432,h2:5432/db") stay inside it.
func splitReplicaURLs(s string) []string {
	var out []string
	for _, piece := range strings.Split(s, ",") {
		p := strings.TrimSpace(piece)
		if p == "" {
			continue
		}
		_, scheme := cutPostgresScheme(p)
		if len(out) > 0 && !scheme && !startsWithKeyword(p) {
			out[len(out)-1] += "," + p
			continue
		}
		out = append(out, p)
	}
	return out
}

// startsWithKeyword reports whether s starts with a libpq keyword and "=".
func startsWithKeyword(s string) bool {
	k, _, ok := strings.Cut(s, "=")
	return ok && isKeyword(strings.TrimSpace(k))
}
