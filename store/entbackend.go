package store

import (
	"bytes"
	"context"
	"sort"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/user"
)

// entBackend runs the hot operations through the ent client, under the privacy
// policies of package schema: the reference the hand-written statements are
// held to. It costs more round trips (an append is a transaction of eight) and
// is chosen by tests only (WithPolicyBackend).
type entBackend struct{ s *Store }

func (b *entBackend) client() *ent.Client { return b.s.client }

func (b *entBackend) getUser(ctx context.Context, _ actor, id uuid.UUID) (*User, error) {
	u, err := b.s.reader(ctx).User.Query().Where(user.ID(id), user.DeletedAtIsNil()).Only(ctx)
	if err != nil {
		return nil, err
	}
	return userOf(u), nil
}

func (b *entBackend) appendMessage(ctx context.Context, _ actor, m NewMessage, _ bool, now time.Time) (*Message, error) {
	var out *Message
	err := b.s.db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
		// The chat's row lock serializes appends to the chat: retries of one ID
		// see each other's commits. SQLite needs no row lock: chatdb's SQLite
		// transactions take the database's write lock when they begin.
		q := tx.Chat.Query().Where(chat.ID(m.ChatID), chat.DeletedAtIsNil())
		if b.s.db.Dialect() == database.Postgres {
			q = q.ForUpdate()
		}
		if _, err := q.Only(ctx); err != nil {
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
		// The message's policy decides; schema's hooks keep the reply in the
		// chat and give the message its seq, bumping the chat, the sender's
		// read position and the members' inbox order.
		mc := tx.Message.Create().
			SetID(m.ID).
			SetChatID(m.ChatID).
			SetRole(m.Role).
			SetContent(m.Content).
			SetCreatedAt(now)
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
		out = messageOf(created)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (b *entBackend) history(ctx context.Context, _ actor, chatID uuid.UUID, r historyRange) ([]*Message, error) {
	mq := b.s.reader(ctx).Message.Query().Where(message.ChatID(chatID))
	if r.before != nil {
		mq.Where(message.SeqLT(r.before.seq))
	}
	if r.after != nil {
		mq.Where(message.SeqGT(r.after.seq))
	}
	if r.oldest {
		mq.Order(message.BySeq())
	} else {
		mq.Order(message.BySeq(sql.OrderDesc()))
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

func (b *entBackend) chatVisible(ctx context.Context, _ actor, chatID uuid.UUID) (bool, error) {
	return b.s.reader(ctx).Chat.Query().Where(chat.ID(chatID)).Exist(ctx)
}

func (b *entBackend) markRead(ctx context.Context, me, chatID, messageID uuid.UUID) error {
	msg, err := b.client().Message.Query().Where(message.ID(messageID), message.ChatID(chatID)).Only(ctx)
	if err != nil {
		return err
	}
	// Forward only: a position already at or past the message stays.
	return b.client().Membership.Update().
		Where(membership.ChatID(chatID), membership.UserID(me), membership.ReadSeqLT(msg.Seq)).
		SetReadSeq(msg.Seq).
		SetLastReadMessageID(msg.ID).
		Exec(ctx)
}

// inbox reads the page through the client: every membership of the viewer
// (the membership read rule keeps those of live chats) with its chat, ordered
// in Go by the entry's time (the copy on the membership, or for a large chat
// the chat's time when later), then for each entry of the page its last
// message. It reads every chat of the viewer: it is the reference, not the
// fast path.
func (b *entBackend) inbox(ctx context.Context, me uuid.UUID, before *position, limit int) ([]InboxEntry, error) {
	ms, err := b.s.reader(ctx).Membership.Query().Where(membership.UserID(me)).WithChat().All(ctx)
	if err != nil {
		return nil, err
	}
	entries := make([]InboxEntry, 0, len(ms))
	for _, mb := range ms {
		c := mb.Edges.Chat
		if c == nil {
			continue
		}
		at := mb.ChatLastMessageAt.UTC()
		if mb.Large && c.LastMessageAt.After(at) {
			at = c.LastMessageAt.UTC()
		}
		if before != nil && !(at.Before(before.at) || at.Equal(before.at) && bytes.Compare(c.ID[:], before.id[:]) < 0) {
			continue
		}
		entries = append(entries, InboxEntry{Chat: chatOf(c), Membership: membershipOf(mb), Activity: at,
			Unread: int(max(c.LastSeq-mb.ReadSeq, 0)), Cursor: encodeCursor(cursorInboxV1, position{at: at, id: c.ID})})
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if !a.Activity.Equal(b.Activity) {
			return a.Activity.After(b.Activity)
		}
		return bytes.Compare(a.Chat.ID[:], b.Chat.ID[:]) > 0
	})
	entries = entries[:min(limit, len(entries))]
	for i := range entries {
		e := &entries[i]
		last, err := b.client().Message.Query().Where(message.ChatID(e.Chat.ID), message.Seq(e.Chat.LastSeq)).Only(ctx)
		switch {
		case err == nil:
			e.LastMessage = messageOf(last)
		case !ent.IsNotFound(err):
			return nil, err
		}
	}
	return entries, nil
}
