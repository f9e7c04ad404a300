package store

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema"
	"github.com/chatdb/chatdb/schema/schematype"
	"github.com/chatdb/chatdb/viewer"
)

// NewMessage is a message to append or import.
type NewMessage struct {
	// ID identifies the message. Zero means a new UUIDv7; a client that chooses it
	// before sending can retry the append safely.
	ID uuid.UUID
	// ChatID is the chat to append to. ImportMessages accepts zero for its chat.
	ChatID uuid.UUID
	// Role is the author's kind; empty means message.RoleUser.
	Role message.Role
	// Content is the text: 1 to 64 KiB of UTF-8 without NUL bytes.
	Content string
	// Metadata is optional: model name, token counts, attachments.
	Metadata schematype.MessageMetadata
	// ReplyTo is the message this one replies to, in the same chat; zero for none.
	ReplyTo uuid.UUID
	// SenderID is the sending user. Zero means the viewer for role user, and no
	// sender for the other roles. Only the system viewer may name another user.
	SenderID uuid.UUID
	// CreatedAt is honoured by ImportMessages only, for history brought in from
	// elsewhere; zero means now. AppendMessage always chooses the time itself.
	CreatedAt time.Time
}

// AppendMessage appends m to its chat and returns the stored message.
//
// It locks the chat's row (SELECT ... FOR UPDATE on PostgreSQL; a SQLite
// transaction holds the database's write lock) and inserts the message at the
// chat's next seq (last_seq + 1: seqs follow commit order, without gaps), with
// created_at = max(now, the chat's last message time): times never go back
// within a chat, though two messages may share one; history and its cursors
// are ordered by seq, so a reader never skips a message.
//
// It is idempotent by m.ID: appending an ID that is already stored with the same
// chat, role, sender, content, metadata and reply-to (everything the caller
// sends) returns the stored message and writes nothing, even when retries race;
// the same ID with anything else gives database.ErrConflict.
//
// Who may (rule.MayAppend, schema.AppendRole): an active member of the chat, as
// sender of user messages; assistant and tool messages (no sender) by any
// active member of an assistant chat; system messages, and any sender, by the
// system viewer only. Deleted or suspended users, and archived chats, get
// ErrForbidden; a chat that does not exist, is deleted, or does not have the
// viewer as a member, database.ErrNotFound. Invalid input is refused before any
// SQL with database.ErrInvalid.
//
// Cost on PostgreSQL: one statement, one round trip, its own transaction (the
// lock, the rules, the INSERT and the chat's bump are one WITH query); when it
// inserts nothing (a retry of a stored ID, a refusal), one SELECT more to say
// why. On SQLite: one transaction of a SELECT of the chat under the rules, a
// SELECT of the ID, the INSERT and the bumps of the chat and its members'
// inbox order, in process.
func (s *Store) AppendMessage(ctx context.Context, m NewMessage) (_ *Message, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.AppendMessage", m.ChatID)
	defer span.end(&err)
	const op = "append message"
	a, err := actorOf(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	m, err = prepareMessage(ctx, m)
	if err != nil {
		return nil, fail(op, err)
	}
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	// The part of the rule that depends on the message alone, asked first on
	// both backends: a role the viewer may not write is refused whatever the
	// chat.
	var assistantOnly bool
	if !a.system {
		if assistantOnly, err = schema.AppendRole(m.Role, m.SenderID, m.SenderID != uuid.Nil, a.id); err != nil {
			return nil, fail(op, err)
		}
	}
	out, err := s.b.appendMessage(ctx, a, m, assistantOnly, s.clock())
	if err != nil {
		return nil, fail(op, err)
	}
	return out, nil
}

// EditMessage replaces the content of messageID and sets its edited_at. Only the
// sender, while an active member of the chat, may edit, and deleted messages
// cannot be edited (database.ErrNotFound).
//
// Cost: one UPDATE, with the rule in its WHERE clause, and a SELECT of the
// result; when it updates nothing, a SELECT to say why instead.
func (s *Store) EditMessage(ctx context.Context, messageID uuid.UUID, content string) (_ *Message, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.EditMessage", uuid.Nil)
	defer span.end(&err)
	const op = "edit message"
	if err := ownTx(ctx); err != nil {
		return nil, fail(op, err)
	}
	if err := schema.ValidateContent(content); err != nil {
		return nil, fail(op, invalid("Message.content", err))
	}
	n, err := s.client.Message.Update().
		Where(message.ID(messageID), message.DeletedAtIsNil()).
		SetContent(content).
		SetEditedAt(s.clock()).
		Save(ctx)
	if err == nil && n == 0 {
		err = s.whyNoMessage(ctx, messageID)
	}
	if err != nil {
		return nil, fail(op, err)
	}
	msg, err := s.client.Message.Get(ctx, messageID)
	if err != nil {
		return nil, fail(op, err)
	}
	return messageOf(msg), nil
}

// DeleteMessage soft-deletes messageID: it sets deleted_at and erases the
// content and metadata (schema's eraseDeleted hook), keeping the row, so that
// replies and cursors stay valid. History then returns the message with
// DeletedAt set and Content and Metadata empty. The sender, while a member, may
// delete their message; the chat's owners and admins may delete anyone's. Only
// the system could restore one, with its content given again. Deleting a
// deleted message gives database.ErrNotFound.
//
// Cost: one UPDATE, with the rule in its WHERE clause; when it updates
// nothing, a SELECT more to tell ErrForbidden from database.ErrNotFound.
func (s *Store) DeleteMessage(ctx context.Context, messageID uuid.UUID) (err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.DeleteMessage", uuid.Nil)
	defer span.end(&err)
	const op = "delete message"
	if err := ownTx(ctx); err != nil {
		return fail(op, err)
	}
	n, err := s.client.Message.Update().
		Where(message.ID(messageID), message.DeletedAtIsNil()).
		SetDeletedAt(s.clock()).
		Save(ctx)
	if err == nil && n == 0 {
		err = s.whyNoMessage(ctx, messageID)
	}
	return fail(op, err)
}

// prepareMessage validates m and fills in its defaults: a new ID, role user,
// the viewer as sender of a user message. It sends no SQL.
func prepareMessage(ctx context.Context, m NewMessage) (NewMessage, error) {
	if m.ID == uuid.Nil {
		m.ID = schema.NewID()
	}
	if m.Role == "" {
		m.Role = message.RoleUser
	}
	if err := message.RoleValidator(m.Role); err != nil {
		return m, invalid("Message.role", err)
	}
	if err := schema.ValidateContent(m.Content); err != nil {
		return m, invalid("Message.content", err)
	}
	if err := schema.ValidateMetadata(m.Metadata); err != nil {
		return m, invalid("Message.metadata", err)
	}
	if m.SenderID == uuid.Nil && m.Role == message.RoleUser {
		if v, _ := viewer.FromContext(ctx); !v.IsSystem() {
			m.SenderID, _ = v.UserID()
		}
	}
	return m, nil
}

// sameMessage reports whether stored is what appending m would have stored: a
// retry of the same append, identical in everything the caller sent.
func sameMessage(stored *Message, m NewMessage) bool {
	return stored.ChatID == m.ChatID &&
		stored.Role == m.Role &&
		stored.Content == m.Content &&
		stored.SenderID == m.SenderID &&
		stored.ReplyTo == m.ReplyTo &&
		sameMetadata(stored.Metadata, m.Metadata)
}

// sameMetadata compares metadata as the database keeps it: the same JSON
// document (a retry's 1 and the stored 1.0 are the same number).
func sameMetadata(a, b schematype.MessageMetadata) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() && b.IsZero()
	}
	ja, errA := a.Value()
	jb, errB := b.Value()
	return errA == nil && errB == nil && ja == jb
}

// whyNoMessage explains an update of a live message that matched no row:
// ErrForbidden when the viewer can see the live message, so the privacy filter
// left it out, database.ErrNotFound otherwise.
//
// Cost: one SELECT, on the failure path only.
func (s *Store) whyNoMessage(ctx context.Context, id uuid.UUID) error {
	ok, err := s.client.Message.Query().Where(message.ID(id), message.DeletedAtIsNil()).Exist(ctx)
	switch {
	case err != nil:
		return err
	case ok:
		return forbidden("the viewer may not change this message")
	default:
		return notFound("message")
	}
}
