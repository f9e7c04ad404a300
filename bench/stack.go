package bench

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/schema/schematype"
)

// Stack is one way of doing chatdb's operations: a driver or an ORM used as its
// users would use it. All stacks do the same logical work per operation: the same
// rows read or written, the same result sizes. The hand-written stacks and
// chatdb also check that the acting user may do it (a member reads a chat's
// history and appends to it); stock ent and GORM, used the obvious way, do not.
//
// The work is chatdb's, as its schema defines it: a message has a seq, its
// place in its chat (1, 2, 3, ... in commit order); a chat keeps the seq and
// time of its newest message (last_seq, last_message_at) and whether it is
// large (more than store.DefaultFanOutLimit members); a membership keeps its
// read position as a seq (read_seq), and, while its chat is not large, a copy
// of the chat's time (chat_last_message_at), the inbox's order. An unread
// count is last_seq − read_seq.
//
// Results are built as the stack naturally builds them (pgx scans into structs,
// ent returns *ent.Message, GORM fills its models). Methods that read take a
// digest pointer that is nil while timing; when it is not nil, the stack also
// copies what the correctness check compares into it, so that the timed path pays
// no conversion the stack would not pay in an application.
type Stack interface {
	// Name is the sub-benchmark name: "pgx", "pq", "chatdb", "chatdb-pq", "ent"
	// or "gorm"; in BenchmarkMixed also "chatdb-untraced" and "chatdb-traced"
	// (see TracingStacks).
	Name() string

	// GetUser reads one live (not soft-deleted) user by ID, every column, as
	// user as.
	GetUser(ctx context.Context, as, id uuid.UUID, got *User) error

	// AppendMessage appends m (ID, chat, sender, role, content and metadata are
	// set) as its sender, atomically: under the chat's row lock, at the chat's
	// next seq, created no earlier than the chat's last message; the chat's
	// last_seq and last_message_at move to it, the sender's read position
	// moves to it, and in a chat that is not large every other member's
	// chat_last_message_at does (in a large chat no other membership is
	// written). The stack sets m.Seq and m.CreatedAt to what it stored.
	AppendMessage(ctx context.Context, m *Message) error

	// HistoryPage reads the limit messages of the cursor's chat that come just
	// before it in seq order, newest first, every column, as user as.
	HistoryPage(ctx context.Context, as uuid.UUID, before Cursor, limit int, got *[]HistoryRow) error

	// Inbox reads user's limit chats of the newest activity (the membership's
	// chat_last_message_at, or for a large chat the later of it and the chat's
	// last_message_at; then the chat's ID, both descending), each with its
	// last message (the one at the chat's last_seq) and its unread count
	// (last_seq − read_seq).
	Inbox(ctx context.Context, user uuid.UUID, limit int, got *[]InboxRow) error

	// MarkRead moves user's read position in the chat forward to the message's
	// seq; never backwards.
	MarkRead(ctx context.Context, user, chatID, messageID uuid.UUID) error

	// Import appends msgs, all in one chat that already exists and in time
	// order, after the chat's history, all or nothing, by the stack's bulk path,
	// as the system (an administrative import): they take the seqs after the
	// chat's last_seq, the chat's last_seq and last_message_at move to the
	// last of them, each sender's read position to their newest one, and in a
	// chat that is not large the members' chat_last_message_at to its time.
	Import(ctx context.Context, msgs []Message) error

	// Close releases the stack's connections.
	Close() error
}

// User is a row of users as the correctness check compares it.
type User struct {
	ID          uuid.UUID
	Email       string
	DisplayName string
	Status      string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   *time.Time
}

// Message is a row of messages: the input of AppendMessage and Import, and what
// hand-written stacks scan a history page into.
type Message struct {
	ID        uuid.UUID
	ChatID    uuid.UUID
	Seq       int64
	SenderID  *uuid.UUID
	Role      string
	Content   string
	Metadata  *schematype.MessageMetadata
	ReplyToID *uuid.UUID
	CreatedAt time.Time
	EditedAt  *time.Time
	DeletedAt *time.Time
}

// Cursor is a position in a chat's history: a chat and the seq of one of its
// messages, as chatdb's history cursors name them.
type Cursor struct {
	ChatID uuid.UUID
	Seq    int64
}

// HistoryRow is one message of a history page as the correctness check
// compares it.
type HistoryRow struct {
	ID  uuid.UUID
	Seq int64
}

// InboxRow is one chat of an inbox as the correctness check compares it: the
// chat, its last message and that message's seq (zero when it has none), and
// the unread count. A page's rows are compared in order.
type InboxRow struct {
	ChatID        uuid.UUID
	LastMessageID uuid.UUID
	LastSeq       int64
	Unread        int
}

// Now is the creation time stacks give appended messages: UTC, truncated to the
// microsecond PostgreSQL keeps, as chatdb's schema does.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// metadataArg returns md as a driver argument: nil for no metadata (NULL), so that
// a nil pointer never reaches its value-receiver Value method.
func metadataArg(md *schematype.MessageMetadata) any {
	if md == nil {
		return nil
	}
	return md
}

// Pool sizes every stack uses, chatdb's defaults (database.DefaultMaxOpenConns and
// DefaultMaxIdleConns): stacks differ in code, not in how many connections they
// may open. pgxpool has no idle cap; its MaxConns is MaxOpen.
const (
	MaxOpen = 30
	MaxIdle = 20
)

// IdleCloser is a stack whose pool can close its idle connections. Every
// stack implements it. BenchmarkMixed has each stack close them once its
// slice is over: each of its stacks opens mixedGoroutines (16) connections,
// and eight stacks holding theirs between their turns would pass
// PostgreSQL's default max_connections (100).
type IdleCloser interface {
	// CloseIdle closes the pool's connections that are not in use; the pool
	// opens new ones when it is next asked.
	CloseIdle()
}

var _ = []IdleCloser{(*pgxStack)(nil), (*pqStack)(nil), (*chatdbStack)(nil), (*tracedStack)(nil),
	(*entStack)(nil), (*gormStack)(nil)}

// closeIdle closes db's idle connections and lets it keep MaxIdle again.
func closeIdle(db *sql.DB) {
	db.SetMaxIdleConns(0)
	db.SetMaxIdleConns(MaxIdle)
}

// Opener opens a stack on the database that url names.
type Opener func(ctx context.Context, url string) (Stack, error)

// Stacks lists the stacks the benchmarks run, in the order they run.
var Stacks = []struct {
	Name string
	Open Opener
}{
	{"pgx", OpenPgx},
	{"pq", OpenPQ},
	{"chatdb", OpenChatdb},
	{"chatdb-pq", OpenChatdbPQ},
	{"ent", OpenEnt},
	{"gorm", OpenGorm},
}

// Open opens the stack called name: one of Stacks, of TracingStacks, or
// pq-default.
func Open(ctx context.Context, name, url string) (Stack, error) {
	for _, s := range Stacks {
		if s.Name == name {
			return s.Open(ctx, url)
		}
	}
	for _, s := range TracingStacks {
		if s.Name == name {
			return s.Open(ctx, url)
		}
	}
	if name == "pq-default" {
		return OpenPQDefault(ctx, url)
	}
	return nil, fmt.Errorf("bench: unknown stack %q", name)
}
