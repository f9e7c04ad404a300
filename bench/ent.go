package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	entdialect "entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/privacy"
	"github.com/chatdb/chatdb/ent/user"
	// The schema's defaults, validators and hooks, as any ent user registers them.
	_ "github.com/chatdb/chatdb/ent/runtime"
)

// entChunk is how many rows the ent stack's Import puts in one CreateBulk: one
// statement may carry at most 65,535 parameters, and an insert of all 100k
// messages fails with "extended protocol limited to 65535 parameters", so a
// user chunks; a round thousand is what one reaches for.
const entChunk = 1000

// entStack is stock ent used the obvious way: chatdb's generated client over
// pgx's database/sql driver, with builder queries only, eager loading where it
// helps, and a transaction where the operation must be atomic. Privacy policies,
// if the schema has any, are bypassed as a system caller would.
type entStack struct {
	db     *sql.DB
	client *ent.Client
}

// OpenEnt opens the ent stack.
func OpenEnt(ctx context.Context, url string) (Stack, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("bench: ent: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(MaxOpen)
	db.SetMaxIdleConns(MaxIdle)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("bench: ent: %w", err)
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(entdialect.Postgres, db)))
	return &entStack{db: db, client: client}, nil
}

func (s *entStack) Name() string { return "ent" }

func (s *entStack) Close() error { return s.client.Close() }

func allow(ctx context.Context) context.Context {
	return privacy.DecisionContext(ctx, privacy.Allow)
}

func (s *entStack) GetUser(ctx context.Context, as, id uuid.UUID, got *User) error {
	u, err := s.client.User.Query().Where(user.ID(id), user.DeletedAtIsNil()).Only(allow(ctx))
	if err != nil {
		return err
	}
	if got != nil {
		*got = User{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, Status: string(u.Status),
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, DeletedAt: u.DeletedAt}
	}
	return nil
}

func (s *entStack) AppendMessage(ctx context.Context, m *Message) error {
	ctx = allow(ctx)
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return err
	}
	m.CreatedAt = Now()
	create := tx.Message.Create().
		SetID(m.ID).
		SetChatID(m.ChatID).
		SetNillableSenderID(m.SenderID).
		SetRole(message.Role(m.Role)).
		SetContent(m.Content).
		SetCreatedAt(m.CreatedAt)
	if m.Metadata != nil {
		create.SetMetadata(*m.Metadata)
	}
	if _, err := create.Save(ctx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Chat.UpdateOneID(m.ChatID).SetLastMessageAt(m.CreatedAt).Exec(ctx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func (s *entStack) HistoryPage(ctx context.Context, as, chatID uuid.UUID, before Cursor, limit int, got *[]uuid.UUID) error {
	page, err := s.client.Message.Query().
		Where(
			message.ChatID(chatID),
			// The redundant bound lets PostgreSQL start the index range at the
			// cursor; the builder has no row comparison.
			message.CreatedAtLTE(before.CreatedAt),
			message.Or(
				message.CreatedAtLT(before.CreatedAt),
				message.And(message.CreatedAtEQ(before.CreatedAt), message.IDLT(before.ID)),
			),
		).
		Order(message.ByCreatedAt(entsql.OrderDesc()), message.ByID(entsql.OrderDesc())).
		Limit(limit + 1). // one more, to know whether another page follows
		All(allow(ctx))
	if err != nil {
		return err
	}
	page = page[:min(limit, len(page))]
	if got != nil {
		ids := make([]uuid.UUID, len(page))
		for i, m := range page {
			ids[i] = m.ID
		}
		*got = ids
	}
	return nil
}

// Inbox is what ent's builder can express: the memberships with their chats
// (eager-loaded) in inbox order, then per chat a query for its last message and
// one for its unread count. A one-query inbox needs a lateral join and a scalar
// subquery, which the builder does not have.
func (s *entStack) Inbox(ctx context.Context, userID uuid.UUID, limit int, got *[]InboxRow) error {
	ctx = allow(ctx)
	mbs, err := s.client.Membership.Query().
		Where(membership.UserID(userID), membership.HasChatWith(chat.DeletedAtIsNil())).
		WithChat().
		Order(
			membership.ByChatField(chat.FieldLastMessageAt, entsql.OrderDesc()),
			membership.ByChatID(entsql.OrderDesc()),
		).
		Limit(limit).
		All(ctx)
	if err != nil {
		return err
	}
	type entry struct {
		chat   *ent.Chat
		last   *ent.Message
		unread int
	}
	entries := make([]entry, len(mbs))
	for i, mb := range mbs {
		last, err := s.client.Message.Query().
			Where(message.ChatID(mb.ChatID)).
			Order(message.ByCreatedAt(entsql.OrderDesc()), message.ByID(entsql.OrderDesc())).
			First(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return err
		}
		unread := s.client.Message.Query().Where(
			message.ChatID(mb.ChatID),
			message.DeletedAtIsNil(),
			message.Or(message.SenderIDIsNil(), message.SenderIDNEQ(userID)),
		)
		if mb.LastReadAt != nil && mb.LastReadMessageID != nil {
			at, id := *mb.LastReadAt, *mb.LastReadMessageID
			unread.Where(
				message.CreatedAtGTE(at),
				message.Or(message.CreatedAtGT(at), message.And(message.CreatedAtEQ(at), message.IDGT(id))),
			)
		}
		n, err := unread.Count(ctx)
		if err != nil {
			return err
		}
		entries[i] = entry{chat: mb.Edges.Chat, last: last, unread: n}
	}
	if got != nil {
		out := make([]InboxRow, len(entries))
		for i, e := range entries {
			out[i] = InboxRow{ChatID: e.chat.ID, Unread: e.unread}
			if e.last != nil {
				out[i].LastMessageID = e.last.ID
			}
		}
		*got = out
	}
	return nil
}

func (s *entStack) MarkRead(ctx context.Context, userID, chatID, messageID uuid.UUID) error {
	ctx = allow(ctx)
	m, err := s.client.Message.Get(ctx, messageID)
	if err != nil {
		return err
	}
	if m.ChatID != chatID {
		return errors.New("bench: ent: mark read: message of another chat")
	}
	n, err := s.client.Membership.Update().
		Where(membership.UserID(userID), membership.ChatID(chatID)).
		SetLastReadAt(m.CreatedAt).
		SetLastReadMessageID(m.ID).
		Save(ctx)
	if err != nil {
		return err
	}
	if n != 1 {
		return errors.New("bench: ent: mark read: no membership")
	}
	return nil
}

func (s *entStack) Import(ctx context.Context, msgs []Message) error {
	ctx = allow(ctx)
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return err
	}
	builders := make([]*ent.MessageCreate, 0, entChunk)
	for start := 0; start < len(msgs); start += entChunk {
		builders = builders[:0]
		for i := start; i < min(start+entChunk, len(msgs)); i++ {
			m := &msgs[i]
			c := tx.Message.Create().
				SetID(m.ID).
				SetChatID(m.ChatID).
				SetNillableSenderID(m.SenderID).
				SetRole(message.Role(m.Role)).
				SetContent(m.Content).
				SetCreatedAt(m.CreatedAt)
			if m.Metadata != nil {
				c.SetMetadata(*m.Metadata)
			}
			builders = append(builders, c)
		}
		if err := tx.Message.CreateBulk(builders...).Exec(ctx); err != nil {
			return errors.Join(err, tx.Rollback())
		}
	}
	return tx.Commit()
}
