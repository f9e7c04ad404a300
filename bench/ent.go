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

func (s *entStack) CloseIdle() { closeIdle(s.db) }

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

// AppendMessage creates the message in a transaction, as chatdb's schema
// requires of the ent client: its sequence hook takes the chat's row lock by
// bumping the chat's last_seq and time, gives the message that seq and time,
// and after the INSERT moves the sender's read position and, in a chat that is
// not large, the members' inbox time. So the obvious code is a Create in a
// transaction; the stored seq and time are read from what Save returns.
func (s *entStack) AppendMessage(ctx context.Context, m *Message) error {
	ctx = allow(ctx)
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return err
	}
	create := tx.Message.Create().
		SetID(m.ID).
		SetChatID(m.ChatID).
		SetNillableSenderID(m.SenderID).
		SetRole(message.Role(m.Role)).
		SetContent(m.Content).
		SetCreatedAt(Now())
	if m.Metadata != nil {
		create.SetMetadata(*m.Metadata)
	}
	saved, err := create.Save(ctx)
	if err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	m.Seq, m.CreatedAt = saved.Seq, saved.CreatedAt
	return nil
}

func (s *entStack) HistoryPage(ctx context.Context, as uuid.UUID, before Cursor, limit int, got *[]HistoryRow) error {
	page, err := s.client.Message.Query().
		Where(message.ChatID(before.ChatID), message.SeqLT(before.Seq)).
		Order(message.BySeq(entsql.OrderDesc())).
		Limit(limit + 1). // one more, to know whether another page follows
		All(allow(ctx))
	if err != nil {
		return err
	}
	page = page[:min(limit, len(page))]
	if got != nil {
		rows := make([]HistoryRow, len(page))
		for i, m := range page {
			rows[i] = HistoryRow{ID: m.ID, Seq: m.Seq}
		}
		*got = rows
	}
	return nil
}

// Inbox is what ent's builder can express: the memberships with their chats
// (eager-loaded) in order of the chats' activity, then per chat a query for
// its last message, the one at the chat's last_seq. The unread count is
// arithmetic on the two rows (last_seq − read_seq). A one-query inbox needs a
// join with an expression in its ORDER BY and a LEFT JOIN on two columns,
// which the builder does not have; ordering by the chat's own time is what
// its edge ordering offers, and gives chatdb's order where each membership's
// copy of that time is current.
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
		unread int64
	}
	entries := make([]entry, len(mbs))
	for i, mb := range mbs {
		c := mb.Edges.Chat
		last, err := s.client.Message.Query().
			Where(message.ChatID(c.ID), message.Seq(c.LastSeq)).
			Only(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return err
		}
		entries[i] = entry{chat: c, last: last, unread: max(c.LastSeq-mb.ReadSeq, 0)}
	}
	if got != nil {
		out := make([]InboxRow, len(entries))
		for i, e := range entries {
			out[i] = InboxRow{ChatID: e.chat.ID, Unread: int(e.unread)}
			if e.last != nil {
				out[i].LastMessageID, out[i].LastSeq = e.last.ID, e.last.Seq
			}
		}
		*got = out
	}
	return nil
}

// MarkRead reads the message for its seq, then moves the membership's
// position forward only; a position already past it updates nothing.
func (s *entStack) MarkRead(ctx context.Context, userID, chatID, messageID uuid.UUID) error {
	ctx = allow(ctx)
	m, err := s.client.Message.Get(ctx, messageID)
	if err != nil {
		return err
	}
	if m.ChatID != chatID {
		return errors.New("bench: ent: mark read: message of another chat")
	}
	return s.client.Membership.Update().
		Where(membership.UserID(userID), membership.ChatID(chatID), membership.ReadSeqLT(m.Seq)).
		SetReadSeq(m.Seq).
		SetLastReadMessageID(m.ID).
		Exec(ctx)
}

// EntImportLimit is the largest Import the ent stack is checked and timed at.
// chatdb's sequence hook makes an import through the ent client cost more
// than linearly in its size (measured: 1,000 messages in 1.9 s, 2,000 in 6.0
// s, 4,000 in 17.4 s): it updates the chat's row and its memberships once per
// message, and in one transaction each update walks the versions of those
// rows the transaction made before it. The Import benchmark, of 100,000
// messages, skips the ent stack rather than run for hours.
const EntImportLimit = 2_500

// Import creates the messages in chunks of CreateBulk in one transaction. The
// schema's sequence hook runs for each message of a bulk as for a single one
// (a chat UPDATE before the INSERT, and after it the sender's read position
// and, in a chat that is not large, the members' inbox time): a stock ent
// user has no bulk path that skips it. Within a bulk the hooks' steps after
// the INSERT run from the last message to the first, which leaves the
// members' inbox time at the first message of the last chunk; one UPDATE
// after the chunks moves it to the newest, as an append would.
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
	last := msgs[len(msgs)-1]
	err = tx.Membership.Update().
		Where(membership.ChatID(last.ChatID), membership.Large(false), membership.ChatLastMessageAtLT(last.CreatedAt)).
		SetChatLastMessageAt(last.CreatedAt).
		Exec(ctx)
	if err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}
