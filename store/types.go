package store

import (
	"time"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/schema/schematype"
)

// The store's values are plain data, owned by this package: they carry no
// database handle and have no method that queries, so a value behaves the same
// whichever way the store read it (its own SQL or the ent client) and on every
// dialect. Follow a relation through the Store, by ID, or through the ent
// client (db.Client()), which applies the same privacy rules.

// User is a user's public profile. A password hash is never part of it: see
// Store.PasswordHash.
type User struct {
	ID          uuid.UUID
	Email       string
	DisplayName string
	Status      user.Status
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Chat is a direct, group or assistant chat.
type Chat struct {
	ID   uuid.UUID
	Kind chat.Kind
	// Title is empty for direct chats and untitled groups.
	Title string
	// CreatedBy is the user who created the chat.
	CreatedBy uuid.UUID
	CreatedAt time.Time
	UpdatedAt time.Time
	// LastMessageAt is the time of the newest message, or of creation.
	LastMessageAt time.Time
	// LastSeq is the seq of the newest message, 0 while there is none: a
	// client that has every message up to seq n syncs by reading History after
	// CursorOf(&Message{ChatID: id, Seq: n}) while n < LastSeq.
	LastSeq int64
	// ArchivedAt is set when the chat was archived: readable, closed to appends.
	ArchivedAt *time.Time
}

// Membership is a user's place in a chat: role, read position, muted flag.
type Membership struct {
	ID       uuid.UUID
	ChatID   uuid.UUID
	UserID   uuid.UUID
	Role     membership.Role
	JoinedAt time.Time
	// ReadSeq is the read position: the seq of the last message read. It
	// starts at the chat's LastSeq when the member joins and moves forward only
	// (MarkRead, and each message the member sends); the unread count is the
	// chat's LastSeq minus it. LastReadMessageID is the message at ReadSeq, nil
	// while the member has read nothing since joining.
	ReadSeq           int64
	LastReadMessageID *uuid.UUID
	Muted             bool
}

// Member is a membership with its user's profile, as Members lists them.
type Member struct {
	Membership
	User User
}

// Message is a message of a chat. A deleted message keeps its place, times and
// sender, with DeletedAt set and Content and Metadata empty: deleting erases
// them from the database.
type Message struct {
	ID     uuid.UUID
	ChatID uuid.UUID
	// Seq is the message's place in its chat: 1, 2, 3, ... in commit order,
	// without gaps. History is in seq order.
	Seq int64
	// SenderID is the user who sent it; uuid.Nil for system, assistant and
	// tool messages.
	SenderID uuid.UUID
	Role     message.Role
	Content  string
	Metadata schematype.MessageMetadata
	// ReplyTo is the message of the same chat this one replies to, or uuid.Nil.
	ReplyTo   uuid.UUID
	CreatedAt time.Time
	EditedAt  *time.Time
	DeletedAt *time.Time
}

// userOf returns the store's copy of an entity read through ent.
func userOf(u *ent.User) *User {
	return &User{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, Status: u.Status,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC()}
}

func chatOf(c *ent.Chat) *Chat {
	return &Chat{ID: c.ID, Kind: c.Kind, Title: c.Title, CreatedBy: c.CreatedBy,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), LastMessageAt: c.LastMessageAt.UTC(),
		LastSeq: c.LastSeq, ArchivedAt: utcPtr(c.ArchivedAt)}
}

func membershipOf(m *ent.Membership) *Membership {
	return &Membership{ID: m.ID, ChatID: m.ChatID, UserID: m.UserID, Role: m.Role, JoinedAt: m.JoinedAt.UTC(),
		ReadSeq: m.ReadSeq, LastReadMessageID: m.LastReadMessageID, Muted: m.Muted}
}

func messageOf(m *ent.Message) *Message {
	return &Message{ID: m.ID, ChatID: m.ChatID, Seq: m.Seq, SenderID: derefID(m.SenderID), Role: m.Role,
		Content: m.Content, Metadata: m.Metadata, ReplyTo: derefID(m.ReplyToID),
		CreatedAt: m.CreatedAt.UTC(), EditedAt: utcPtr(m.EditedAt), DeletedAt: utcPtr(m.DeletedAt)}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func derefID(id *uuid.UUID) uuid.UUID {
	if id == nil {
		return uuid.Nil
	}
	return *id
}
