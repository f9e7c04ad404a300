package store

import (
	"errors"
	"time"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/schema"
)

// Errors of this package, besides the database package's sentinels.
var (
	// ErrForbidden is returned when the viewer in the context may not do what was
	// asked, including when the context has no viewer at all. ent privacy denials
	// are reported as ErrForbidden.
	ErrForbidden = errors.New("store: forbidden")
	// ErrInvalidCursor is returned when a history or inbox cursor is malformed,
	// was tampered with, or belongs to another kind of listing.
	ErrInvalidCursor = errors.New("store: invalid cursor")
)

// Store runs chat operations against a database. It is safe for concurrent use.
type Store struct {
	db     *database.DB
	client *ent.Client
	now    func() time.Time
	batch  int
	// pgx is whether the database is PostgreSQL through pgx, which takes UUID
	// arguments as [16]byte.
	pgx bool
}

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store take the current time from now instead of
// schema.Now. The store truncates what now returns to microseconds, in UTC, as
// the database keeps it.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithImportBatchSize sets how many messages ImportMessages writes per bulk
// statement: per COPY on PostgreSQL, per multi-row INSERT on SQLite. The default,
// 0, means all of them in one COPY, and as many per INSERT as SQLite's parameter
// limit allows; an INSERT never exceeds that limit whatever n is.
func WithImportBatchSize(n int) Option {
	return func(s *Store) { s.batch = n }
}

// New returns a Store over db. The Store does not own db: close db yourself.
func New(db *database.DB, opts ...Option) *Store {
	s := &Store{db: db, client: db.Client(), now: schema.Now,
		pgx: db.Dialect() == database.Postgres && db.Driver() == database.DriverPgx}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// DB returns the database the store runs on.
func (s *Store) DB() *database.DB { return s.db }

// clock returns the current time as the database keeps it: UTC, microseconds.
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}
