package schema

import (
	"context"
	"errors"
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/sql"

	gen "github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/hook"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/rule"
	"github.com/chatdb/chatdb/viewer"
)

// normalizeEmail stores every email address in its normalised form, so that the
// unique index on users.email is case-insensitive whichever client wrote the row.
func normalizeEmail(next ent.Mutator) ent.Mutator {
	return hook.UserFunc(func(ctx context.Context, m *gen.UserMutation) (ent.Value, error) {
		if e, ok := m.Email(); ok {
			m.SetEmail(NormalizeEmail(e))
		}
		return next.Mutate(ctx, m)
	})
}

// validateMetadata rejects bad message metadata before any SQL is sent; ent has no
// validators for JSON fields.
func validateMetadata(next ent.Mutator) ent.Mutator {
	return hook.MessageFunc(func(ctx context.Context, m *gen.MessageMutation) (ent.Value, error) {
		if md, ok := m.Metadata(); ok {
			if err := ValidateMetadata(md); err != nil {
				return nil, &FieldError{Field: "Message.metadata", Err: err}
			}
		}
		return next.Mutate(ctx, m)
	})
}

// eraseDeleted erases a message's content and metadata in the same statement
// that deletes it, whoever deletes it: a deleted message's text is gone, not
// hidden, so no query (a field predicate, an order, an aggregate) can recover
// it. The row stays, with its place in history, so replies and cursors keep
// pointing at it.
func eraseDeleted(next ent.Mutator) ent.Mutator {
	return hook.MessageFunc(func(ctx context.Context, m *gen.MessageMutation) (ent.Value, error) {
		if at, ok := m.DeletedAt(); ok && !at.IsZero() {
			m.ClearContent()
			m.ClearMetadata()
		}
		return next.Mutate(ctx, m)
	})
}

// replyInChat refuses a new message that replies to a message of another chat,
// whoever writes it (rule.ReplyInChat): a reader of a message may follow and
// filter by its reply, and must find only what the chat shows. It costs one
// query when the message is a reply.
func replyInChat(next ent.Mutator) ent.Mutator {
	return hook.MessageFunc(func(ctx context.Context, m *gen.MessageMutation) (ent.Value, error) {
		reply, ok := m.ReplyToID()
		chatID, _ := m.ChatID()
		if ok && m.Op().Is(ent.OpCreate) {
			found, err := m.Client().Chat.Query().
				Where(chat.ID(chatID), func(s *sql.Selector) { s.Where(rule.ReplyInChat(reply, rule.Of(s)(chat.FieldID))) }).
				Exist(privacy.DecisionContext(ctx, privacy.Allow))
			if err != nil {
				return nil, err
			}
			if !found {
				return nil, &FieldError{Field: "Message.reply_to_id", Err: ErrReplyOutside}
			}
		}
		return next.Mutate(ctx, m)
	})
}

// ErrNotInTx is returned when a message is created through the ent client
// outside a transaction: its seq, and the chat's and readers' state, commit
// with it or not at all. Use store.AppendMessage, or the client of db.WithTx.
var ErrNotInTx = errors.New("schema: a message is appended in a transaction (store.AppendMessage, or db.WithTx)")

// sequence gives a new message its place in its chat, whoever appends through
// the ent client, in the transaction that inserts it: it bumps the chat's
// last_seq (the UPDATE takes the chat's row lock until the transaction ends,
// so seqs follow commit order and have no gaps), gives the message that seq
// and a created_at no earlier than the chat's last message, moves the sender's
// read position to it (a member's own messages are never unread), and, in a
// chat that is not large, moves every member's copy of the chat's time (the
// inbox's order). The store's own statements do the same work in SQL
// (store/sqlbackend.go), and its tests hold the two to the same answers.
//
// It refuses a message created outside a transaction: the seq and the bumps
// must commit or roll back with the row. Cost: three statements more than the
// INSERT, whatever the size of the chat (the copies are written only in chats
// of a bounded size). CreateBulk gets the same answers, but each of its
// messages updates the chat's row again, and PostgreSQL walks that row's chain
// of versions in one transaction, so its cost grows faster than its size:
// bulk loads go through store.ImportMessages (COPY).
func sequence(next ent.Mutator) ent.Mutator {
	return hook.MessageFunc(func(ctx context.Context, m *gen.MessageMutation) (ent.Value, error) {
		tx, err := m.Tx()
		if err != nil {
			return nil, ErrNotInTx
		}
		c := tx.Client()
		chatID, _ := m.ChatID()
		at, ok := m.CreatedAt()
		if !ok {
			at = Now()
		} else if err := userTime(ctx, "Message.created_at", at); err != nil {
			return nil, err
		}
		var (
			seq   int64
			last  time.Time
			large bool
		)
		// The chat was last changed by this message, at its time.
		rows, err := c.QueryContext(ctx, `UPDATE chats SET last_seq = last_seq + 1,
  last_message_at = CASE WHEN last_message_at > $2 THEN last_message_at ELSE $2 END,
  updated_at = CASE WHEN last_message_at > $2 THEN last_message_at ELSE $2 END
WHERE id = $1 RETURNING last_seq, last_message_at, large`, chatID, at.UTC())
		if err != nil {
			return nil, err
		}
		found := rows.Next()
		if found {
			err = rows.Scan(&seq, &last, &large)
		}
		err = errors.Join(err, rows.Err(), rows.Close())
		if err != nil {
			return nil, err
		}
		if !found {
			// The policy let it through, so only the system gets here: the
			// foreign key will say the chat is not there.
			return next.Mutate(ctx, m)
		}
		m.SetSeq(seq)
		m.SetCreatedAt(last.UTC())
		v, err := next.Mutate(ctx, m)
		if err != nil {
			return nil, err
		}
		if sender, ok := m.SenderID(); ok {
			id, _ := m.ID()
			if _, err := c.ExecContext(ctx, `UPDATE memberships SET read_seq = $3, last_read_message_id = $4
WHERE chat_id = $1 AND user_id = $2 AND read_seq < $3`, chatID, sender, seq, id); err != nil {
				return nil, err
			}
		}
		// Forward only, as the sender's read position above: CreateBulk runs
		// these steps from its last message back to its first.
		if !large {
			if _, err := c.ExecContext(ctx, `UPDATE memberships SET chat_last_message_at = $2
WHERE chat_id = $1 AND NOT large AND chat_last_message_at < $2`, chatID, last.UTC()); err != nil {
				return nil, err
			}
		}
		return v, nil
	})
}

// joinState starts a new membership where the rules of unread counts and of
// the inbox want it, whoever adds the member through the ent client: read up to
// the chat's last message (what came before joining is not unread), the chat's
// large flag, and an inbox time no earlier than the chat's last message.
// Cost: one SELECT of the chat.
func joinState(next ent.Mutator) ent.Mutator {
	return hook.MembershipFunc(func(ctx context.Context, m *gen.MembershipMutation) (ent.Value, error) {
		chatID, ok := m.ChatID()
		if !ok {
			return next.Mutate(ctx, m)
		}
		var rows []struct {
			LastSeq       int64     `sql:"last_seq"`
			LastMessageAt time.Time `sql:"last_message_at"`
			Large         bool      `sql:"large"`
		}
		err := m.Client().Chat.Query().Where(chat.ID(chatID)).
			Select(chat.FieldLastSeq, chat.FieldLastMessageAt, chat.FieldLarge).
			Scan(privacy.DecisionContext(ctx, privacy.Allow), &rows)
		if err != nil {
			return nil, err
		}
		if len(rows) == 1 {
			r := rows[0]
			m.SetReadSeq(r.LastSeq)
			m.ClearLastReadMessageID()
			m.SetLarge(r.Large)
			joined, ok := m.JoinedAt()
			if !ok {
				joined = Now()
				m.SetJoinedAt(joined)
			} else if err := userTime(ctx, "Membership.joined_at", joined); err != nil {
				return nil, err
			}
			if r.LastMessageAt.After(joined) {
				joined = r.LastMessageAt
			}
			m.SetChatLastMessageAt(joined.UTC())
		}
		return next.Mutate(ctx, m)
	})
}

// chatStart starts a new chat as the store's appends expect it, whoever
// creates it through the ent client: no messages yet (last_seq 0, its time its
// creation), not large (the store marks it so when members take it over the
// fan-out limit), and, for a user, not created in the future.
func chatStart(next ent.Mutator) ent.Mutator {
	return hook.ChatFunc(func(ctx context.Context, m *gen.ChatMutation) (ent.Value, error) {
		at, ok := m.CreatedAt()
		if !ok {
			at = Now()
			m.SetCreatedAt(at)
		} else if err := userTime(ctx, "Chat.created_at", at); err != nil {
			return nil, err
		}
		m.SetLastMessageAt(at)
		m.SetLastSeq(0)
		m.SetLarge(false)
		return next.Mutate(ctx, m)
	})
}

// userTime checks a time a user viewer gave for field: not in the future. The
// system, which imports history and restores backups, is trusted with its
// clock.
func userTime(ctx context.Context, field string, t time.Time) error {
	if v, _ := viewer.FromContext(ctx); v.IsSystem() {
		return nil
	}
	if err := ValidateNotFuture(t); err != nil {
		return &FieldError{Field: field, Err: err}
	}
	return nil
}
