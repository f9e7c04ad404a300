package bench

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// chatdbStack is chatdb's store, as an application uses it: database.Open with
// its defaults (the driver aside), store.New, and every call made as the user it
// is made for (viewer.NewContext), so that chatdb's privacy policies apply;
// imports as the system (viewer.SystemContext).
type chatdbStack struct {
	name  string
	db    *database.DB
	store *store.Store

	// cursors holds the opaque store cursor of each position paged from: an
	// application passes back the string History gave it, so making one is not
	// part of an operation.
	mu      sync.RWMutex
	cursors map[Cursor]store.Cursor
}

// OpenChatdb opens the chatdb stack: the store on pgx, chatdb's default driver.
func OpenChatdb(ctx context.Context, url string) (Stack, error) {
	return openChatdb(ctx, "chatdb", url, database.DriverPgx)
}

// OpenChatdbPQ opens the chatdb-pq stack: the store on lib/pq.
func OpenChatdbPQ(ctx context.Context, url string) (Stack, error) {
	return openChatdb(ctx, "chatdb-pq", url, database.DriverPQ)
}

// OpenChatdbPooled opens a chatdb stack called name on driver through a
// PgBouncer in transaction mode: url is PgBouncer's, and Config.Pooler says
// so (pgx then runs in cache_describe mode).
func OpenChatdbPooled(ctx context.Context, name, url, driver string) (Stack, error) {
	return openChatdbConfig(ctx, name, database.Config{URL: url, Driver: driver, Pooler: database.PoolerTransaction})
}

func openChatdb(ctx context.Context, name, url, driver string) (Stack, error) {
	return openChatdbConfig(ctx, name, database.Config{URL: url, Driver: driver})
}

func openChatdbConfig(ctx context.Context, name string, cfg database.Config) (Stack, error) {
	cfg.MaxOpenConns, cfg.MaxIdleConns = MaxOpen, MaxIdle
	db, err := database.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	return &chatdbStack{name: name, db: db, store: store.New(db), cursors: map[Cursor]store.Cursor{}}, nil
}

func (s *chatdbStack) Name() string { return s.name }

func (s *chatdbStack) Close() error { return s.db.Close() }

func (s *chatdbStack) CloseIdle() { closeIdle(s.db.SQL()) }

func (s *chatdbStack) GetUser(ctx context.Context, as, id uuid.UUID, got *User) error {
	u, err := s.store.GetUser(viewer.NewContext(ctx, as), id)
	if err != nil {
		return err
	}
	if got != nil {
		*got = User{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, Status: string(u.Status),
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
	}
	return nil
}

func (s *chatdbStack) AppendMessage(ctx context.Context, m *Message) error {
	nm := store.NewMessage{ID: m.ID, ChatID: m.ChatID, Role: message.Role(m.Role), Content: m.Content}
	if m.Metadata != nil {
		nm.Metadata = *m.Metadata
	}
	if m.SenderID != nil {
		nm.SenderID = *m.SenderID
	}
	out, err := s.store.AppendMessage(viewer.NewContext(ctx, nm.SenderID), nm)
	if err != nil {
		return err
	}
	m.Seq, m.CreatedAt = out.Seq, out.CreatedAt
	return nil
}

// cursor returns the store's cursor at c.
func (s *chatdbStack) cursor(c Cursor) store.Cursor {
	s.mu.RLock()
	sc, ok := s.cursors[c]
	s.mu.RUnlock()
	if ok {
		return sc
	}
	sc = store.CursorOf(&store.Message{ChatID: c.ChatID, Seq: c.Seq})
	s.mu.Lock()
	s.cursors[c] = sc
	s.mu.Unlock()
	return sc
}

func (s *chatdbStack) HistoryPage(ctx context.Context, as uuid.UUID, before Cursor, limit int, got *[]HistoryRow) error {
	page, err := s.store.History(viewer.NewContext(ctx, as), before.ChatID, store.HistoryQuery{Before: s.cursor(before), Limit: limit})
	if err != nil {
		return err
	}
	if got != nil {
		rows := make([]HistoryRow, len(page.Messages))
		for i, m := range page.Messages {
			rows[i] = HistoryRow{ID: m.ID, Seq: m.Seq}
		}
		*got = rows
	}
	return nil
}

func (s *chatdbStack) Inbox(ctx context.Context, user uuid.UUID, limit int, got *[]InboxRow) error {
	entries, err := s.store.Inbox(viewer.NewContext(ctx, user), store.InboxQuery{Limit: limit})
	if err != nil {
		return err
	}
	if got != nil {
		out := make([]InboxRow, len(entries))
		for i, e := range entries {
			out[i] = InboxRow{ChatID: e.Chat.ID, Unread: e.Unread}
			if e.LastMessage != nil {
				out[i].LastMessageID, out[i].LastSeq = e.LastMessage.ID, e.LastMessage.Seq
			}
		}
		*got = out
	}
	return nil
}

func (s *chatdbStack) MarkRead(ctx context.Context, user, chatID, messageID uuid.UUID) error {
	return s.store.MarkRead(viewer.NewContext(ctx, user), chatID, messageID)
}

func (s *chatdbStack) Import(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	in := make([]store.NewMessage, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		in[i] = store.NewMessage{ID: m.ID, ChatID: m.ChatID, Role: message.Role(m.Role), Content: m.Content, CreatedAt: m.CreatedAt}
		if m.Metadata != nil {
			in[i].Metadata = *m.Metadata
		}
		if m.SenderID != nil {
			in[i].SenderID = *m.SenderID
		}
	}
	n, err := s.store.ImportMessages(viewer.SystemContext(ctx), msgs[0].ChatID, in)
	if err != nil {
		return err
	}
	if n != len(msgs) {
		return fmt.Errorf("bench: %s: import: %d of %d rows", s.name, n, len(msgs))
	}
	return nil
}
