package store

import (
	"context"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/ent/user"
)

// entBackend runs the hot operations through the ent client, under the privacy
// policies of package schema: the reference the hand-written statements are
// held to. It costs more round trips (an append is a transaction of eight) and
// is chosen by tests only (WithPolicyBackend).
type entBackend struct{ s *Store }

func (b *entBackend) client() *ent.Client { return b.s.client }

func (b *entBackend) getUser(ctx context.Context, _ actor, id uuid.UUID) (*User, error) {
	u, err := b.client().User.Query().Where(user.ID(id), user.DeletedAtIsNil()).Only(ctx)
	if err != nil {
		return nil, err
	}
	return userOf(u), nil
}

func (b *entBackend) appendMessage(ctx context.Context, _ actor, m NewMessage, _ bool, now time.Time) (*Message, error) {
	var out *Message
	err := b.s.db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
		// The chat's row lock serializes appends to the chat: retries of one ID
		// see each other's commits, and created_at follows commit order. SQLite
		// needs no row lock: chatdb's SQLite transactions take the database's
		// write lock when they begin.
		q := tx.Chat.Query().Where(chat.ID(m.ChatID), chat.DeletedAtIsNil())
		if b.s.db.Dialect() == database.Postgres {
			q = q.ForUpdate()
		}
		c, err := q.Only(ctx)
		if err != nil {
			return err
		}
		stored, err := tx.Message.Query().Where(message.ID(m.ID)).Only(ctx)
		switch {
		case err == nil:
			if !sameMessage(messageOf(stored), m) {
				return errStoredOther(m.ID)
			}
			out = messageOf(stored)
			return nil
		case !ent.IsNotFound(err):
			return err
		}
		at := nextTime(now, c.LastMessageAt)
		n, err := tx.Chat.Update().Where(chat.ID(c.ID)).SetLastMessageAt(at).SetUpdatedAt(now).Save(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return errCannotAppend()
		}
		mc := tx.Message.Create().
			SetID(m.ID).
			SetChatID(m.ChatID).
			SetRole(m.Role).
			SetContent(m.Content).
			SetCreatedAt(at)
		if !m.Metadata.IsZero() {
			mc.SetMetadata(m.Metadata)
		}
		if m.SenderID != uuid.Nil {
			mc.SetSenderID(m.SenderID)
		}
		if m.ReplyTo != uuid.Nil {
			mc.SetReplyToID(m.ReplyTo)
		}
		created, err := mc.Save(ctx)
		if err != nil {
			return err
		}
		// The append's rules have been decided by then: every membership of the
		// chat gets the new inbox order, not only the viewer's own.
		err = tx.Membership.Update().
			Where(membership.ChatID(c.ID)).
			SetChatLastMessageAt(at).
			Exec(privacy.DecisionContext(ctx, privacy.Allow))
		if err != nil {
			return err
		}
		out = messageOf(created)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (b *entBackend) history(ctx context.Context, _ actor, chatID uuid.UUID, r historyRange) ([]*Message, error) {
	mq := b.client().Message.Query().Where(message.ChatID(chatID))
	if r.before != nil {
		mq.Where(keyset(*r.before, true))
	}
	if r.after != nil {
		mq.Where(keyset(*r.after, false))
	}
	if r.oldest {
		mq.Order(message.ByCreatedAt(), message.ByID())
	} else {
		mq.Order(message.ByCreatedAt(sql.OrderDesc()), message.ByID(sql.OrderDesc()))
	}
	ms, err := mq.Limit(r.limit + 1).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Message, len(ms))
	for i, m := range ms {
		out[i] = messageOf(m)
	}
	return out, nil
}

// keyset selects the messages strictly before (or after) p in (created_at, id)
// order, as a row comparison that the index (chat_id, created_at, id) serves.
func keyset(p position, before bool) func(*sql.Selector) {
	return func(s *sql.Selector) {
		cols := []string{s.C(message.FieldCreatedAt), s.C(message.FieldID)}
		if before {
			s.Where(sql.CompositeLT(cols, p.at, p.id))
		} else {
			s.Where(sql.CompositeGT(cols, p.at, p.id))
		}
	}
}

func (b *entBackend) chatVisible(ctx context.Context, _ actor, chatID uuid.UUID) (bool, error) {
	return b.client().Chat.Query().Where(chat.ID(chatID)).Exist(ctx)
}

func (b *entBackend) markRead(ctx context.Context, me, chatID, messageID uuid.UUID) error {
	msg, err := b.client().Message.Query().Where(message.ID(messageID), message.ChatID(chatID)).Only(ctx)
	if err != nil {
		return err
	}
	at := msg.CreatedAt.UTC()
	return b.client().Membership.Update().
		Where(
			membership.ChatID(chatID),
			membership.UserID(me),
			// Forward only: a position already at or past the message stays.
			func(s *sql.Selector) {
				s.Where(sql.Or(
					sql.IsNull(s.C(membership.FieldLastReadAt)),
					sql.CompositeLT([]string{s.C(membership.FieldLastReadAt), s.C(membership.FieldLastReadMessageID)}, at, msg.ID),
				))
			},
		).
		SetLastReadAt(at).
		SetLastReadMessageID(msg.ID).
		Exec(ctx)
}

// inbox reads the page through the client: the viewer's memberships in inbox
// order (the membership read rule keeps those of live chats), then for each its
// chat, last message and unread count. It costs three queries per entry more
// than the statement; it is the reference, not the fast path.
func (b *entBackend) inbox(ctx context.Context, me uuid.UUID, before *position, limit int) ([]InboxEntry, error) {
	q := b.client().Membership.Query().
		Where(membership.UserID(me)).
		Order(membership.ByChatLastMessageAt(sql.OrderDesc()), membership.ByChatID(sql.OrderDesc())).
		Limit(limit)
	if before != nil {
		q.Where(func(s *sql.Selector) {
			s.Where(sql.CompositeLT([]string{s.C(membership.FieldChatLastMessageAt), s.C(membership.FieldChatID)}, before.at, before.id))
		})
	}
	ms, err := q.All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]InboxEntry, 0, len(ms))
	for _, mb := range ms {
		c, err := b.client().Chat.Get(ctx, mb.ChatID)
		if err != nil {
			return nil, err
		}
		e := InboxEntry{Chat: chatOf(c), Membership: membershipOf(mb), Activity: mb.ChatLastMessageAt.UTC()}
		last, err := b.client().Message.Query().Where(message.ChatID(c.ID)).
			Order(message.ByCreatedAt(sql.OrderDesc()), message.ByID(sql.OrderDesc())).First(ctx)
		switch {
		case err == nil:
			e.LastMessage = messageOf(last)
		case !ent.IsNotFound(err):
			return nil, err
		}
		unread := b.client().Message.Query().Where(
			message.ChatID(c.ID), message.DeletedAtIsNil(),
			message.Or(message.SenderIDIsNil(), message.SenderIDNEQ(me)))
		if mb.LastReadAt != nil && mb.LastReadMessageID != nil {
			unread.Where(keyset(position{at: mb.LastReadAt.UTC(), id: *mb.LastReadMessageID}, false))
		}
		if e.Unread, err = unread.Count(ctx); err != nil {
			return nil, err
		}
		e.Cursor = encodeCursor(cursorInboxV1, position{at: e.Activity, id: c.ID})
		out = append(out, e)
	}
	return out, nil
}
