package schema

import (
	"context"

	"entgo.io/ent"

	"entgo.io/ent/dialect/sql"

	gen "github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/hook"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/rule"
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
