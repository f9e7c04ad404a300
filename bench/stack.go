package bench

import (
	"context"
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
// Results are built as the stack naturally builds them (pgx scans into structs,
// ent returns *ent.Message, GORM fills its models). Methods that read take a
// digest pointer that is nil while timing; when it is not nil, the stack also
// copies what the correctness check compares into it, so that the timed path pays
// no conversion the stack would not pay in an application.
type Stack interface {
	// Name is the sub-benchmark name: "pgx", "pq", "chatdb", "chatdb-pq", "ent"
	// or "gorm".
	Name() string

	// GetUser reads one live (not soft-deleted) user by ID, every column, as
	// user as.
	GetUser(ctx context.Context, as, id uuid.UUID, got *User) error

	// AppendMessage appends m (ID, chat, sender, role, content and metadata are
	// set) as its sender, and moves the chat's last_message_at to the message's
	// creation time, atomically. The stack chooses the creation time and sets
	// m.CreatedAt to it.
	AppendMessage(ctx context.Context, m *Message) error

	// HistoryPage reads the limit messages of a chat that come just before the
	// cursor in (created_at, id) order, newest first, every column, as user as.
	HistoryPage(ctx context.Context, as, chatID uuid.UUID, before Cursor, limit int, got *[]uuid.UUID) error

	// Inbox reads user's limit chats with the newest last_message_at, each with
	// its last message and the number of messages after the user's read
	// position that are not deleted and not the user's own.
	Inbox(ctx context.Context, user uuid.UUID, limit int, got *[]InboxRow) error

	// MarkRead moves user's read position in the chat forward to the message.
	MarkRead(ctx context.Context, user, chatID, messageID uuid.UUID) error

	// Import inserts msgs, all in one chat that already exists, all or nothing,
	// by the stack's bulk path, as the system (an administrative import).
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
	SenderID  *uuid.UUID
	Role      string
	Content   string
	Metadata  *schematype.MessageMetadata
	ReplyToID *uuid.UUID
	CreatedAt time.Time
	EditedAt  *time.Time
	DeletedAt *time.Time
}

// Cursor is a position in a chat's history: the (created_at, id) of a message.
type Cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// InboxRow is one chat of an inbox as the correctness check compares it.
type InboxRow struct {
	ChatID        uuid.UUID
	LastMessageID uuid.UUID
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

// Open opens the stack called name.
func Open(ctx context.Context, name, url string) (Stack, error) {
	for _, s := range Stacks {
		if s.Name == name {
			return s.Open(ctx, url)
		}
	}
	if name == "pq-default" {
		return OpenPQDefault(ctx, url)
	}
	return nil, fmt.Errorf("bench: unknown stack %q", name)
}
