package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/viewer"
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
	// fanOut is the number of members above which a chat is large (see
	// DefaultFanOutLimit).
	fanOut int
	// policy forces the ent-policy backend (see WithPolicyBackend in the tests).
	policy bool
	// tracer starts the operations' spans (trace.go), while the
	// database's tracing is on.
	tracer trace.Tracer
	// b runs the operations that have a hand-written statement of their own:
	// chosen once, by New.
	b backend
}

// backend is the part of the store that exists twice: as hand-written
// statements (sqlBackend, what New chooses) and as queries of the ent client
// under its privacy policies (entBackend, the reference the privacy suite
// holds the statements to). Both take their access rules from package rule,
// and return the same values and errors. The other operations are written once,
// over the ent client.
type backend interface {
	// getUser reads a live user's profile.
	getUser(ctx context.Context, a actor, id uuid.UUID) (*User, error)
	// appendMessage appends m, prepared and allowed by schema.AppendRole (which
	// said whether only an assistant chat takes it), at the chat's next time
	// after now.
	appendMessage(ctx context.Context, a actor, m NewMessage, assistantOnly bool, now time.Time) (*Message, error)
	// history reads up to r.limit+1 messages of chatID in r's order.
	history(ctx context.Context, a actor, chatID uuid.UUID, r historyRange) ([]*Message, error)
	// chatVisible reports whether chatID exists and a may read it.
	chatVisible(ctx context.Context, a actor, chatID uuid.UUID) (bool, error)
	// markRead moves user me's read position in chatID forward to messageID.
	markRead(ctx context.Context, me, chatID, messageID uuid.UUID) error
	// inbox reads a page of user me's inbox.
	inbox(ctx context.Context, me uuid.UUID, before *position, limit int) ([]InboxEntry, error)
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
//
// It chooses here, once, how the operations with hand-written statements run:
// as those statements, rendered for db's dialect with the rules of package
// rule folded in.
func New(db *database.DB, opts ...Option) *Store {
	s := &Store{db: db, client: db.Client(), now: schema.Now, fanOut: DefaultFanOutLimit}
	s.tracer = db.TracerProvider().Tracer(tracerName)
	for _, opt := range opts {
		opt(s)
	}
	if s.policy {
		s.b = &entBackend{s: s}
	} else {
		s.b = newSQLBackend(db)
	}
	return s
}

// DB returns the database the store runs on.
func (s *Store) DB() *database.DB { return s.db }

// clock returns the current time as the database keeps it: UTC, microseconds.
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// ownTx refuses a write called with a context that carries a transaction
// (database.WithTxContext): every write of the store is a transaction of its
// own, or one statement, and would otherwise commit apart from the caller's
// (PostgreSQL) or wait for its lock until the busy timeout (SQLite). The same
// answer on both dialects: database.ErrNestedTx.
//
// Every write calls it first, so it also notes the write in ctx's
// consistency session (database.NoteWrite): the session's reads go to the
// primary after it, and database.DB.Token covers it.
func ownTx(ctx context.Context) error {
	if database.InTx(ctx) {
		return database.ErrNestedTx
	}
	database.NoteWrite(ctx)
	return nil
}

// reader returns the client for a read that tolerates staleness: a replica's
// when the database has replicas and ctx allows it (database.DB.ReadClient).
// Writes, and the reads they depend on, use s.client, the primary's.
func (s *Store) reader(ctx context.Context) *ent.Client { return s.db.ReadClient(ctx) }

// actor is who a backend acts for: the system, or the user id.
type actor struct {
	system bool
	id     uuid.UUID
}

// actorOf returns the viewer of ctx: ErrForbidden when it has none.
func actorOf(ctx context.Context) (actor, error) {
	v, ok := viewer.FromContext(ctx)
	if !ok {
		return actor{}, forbidden("no viewer in context")
	}
	if v.IsSystem() {
		return actor{system: true}, nil
	}
	id, _ := v.UserID()
	return actor{id: id}, nil
}

// viewerUser returns the signed-in user's ID, or ErrForbidden when the viewer is
// missing or is the system: operations done as a member of chats need a user.
func viewerUser(ctx context.Context) (uuid.UUID, error) {
	v, ok := viewer.FromContext(ctx)
	if !ok {
		return uuid.Nil, forbidden("no viewer in context")
	}
	id, ok := v.UserID()
	if !ok {
		return uuid.Nil, forbidden("the " + strings.ToLower(v.String()) + " viewer is not a user")
	}
	return id, nil
}

// actsAs checks that the viewer may act for user id: it is that user, or the
// system. The privacy policy enforces the same; checking first gives
// ErrForbidden instead of an update that matches no row.
func actsAs(ctx context.Context, id uuid.UUID) error {
	a, err := actorOf(ctx)
	if err != nil {
		return err
	}
	if !a.system && a.id != id {
		return forbidden("a user changes only their own profile")
	}
	return nil
}
