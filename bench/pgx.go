package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatdb/chatdb/schema/schematype"
)

// pgxStack is hand-written pgxpool code: the floor every other stack is measured
// against. It uses pgx's native interface (no database/sql), its statement cache,
// and CopyFrom for bulk loads. UUIDs go to pgx as [16]byte and pgtype.UUID, as
// someone who measured would write: pgx encodes a uuid.UUID argument through its
// driver.Valuer (text, then parsed again), which costs 18 allocations per
// argument, and CopyFrom 49 per row of this table.
type pgxStack struct {
	pool *pgxpool.Pool
}

// OpenPgx opens the pgx stack.
func OpenPgx(ctx context.Context, url string) (Stack, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("bench: pgx: %w", err)
	}
	cfg.MaxConns = MaxOpen
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: pgx: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("bench: pgx: %w", err)
	}
	return &pgxStack{pool: pool}, nil
}

func (s *pgxStack) Name() string { return "pgx" }

// CloseIdle closes the pool's connections: those in use close when released.
func (s *pgxStack) CloseIdle() { s.pool.Reset() }

func (s *pgxStack) Close() error {
	s.pool.Close()
	return nil
}

func (s *pgxStack) GetUser(ctx context.Context, as, id uuid.UUID, got *User) error {
	var u User
	err := s.pool.QueryRow(ctx, sqlGetUser, [16]byte(id), [16]byte(as)).Scan((*[16]byte)(&u.ID), &u.CreatedAt, &u.UpdatedAt, &u.DeletedAt,
		&u.Email, &u.DisplayName, &u.Status)
	if err != nil {
		return err
	}
	if got != nil {
		*got = u
	}
	return nil
}

func (s *pgxStack) AppendMessage(ctx context.Context, m *Message) error {
	return s.pool.QueryRow(ctx, sqlAppend, [16]byte(m.ID), [16]byte(m.ChatID), pgUUID(m.SenderID), m.Role, m.Content,
		metadataArg(m.Metadata), Now()).Scan(&m.Seq, &m.CreatedAt)
}

func (s *pgxStack) HistoryPage(ctx context.Context, as uuid.UUID, before Cursor, limit int, got *[]HistoryRow) error {
	rows, err := s.pool.Query(ctx, sqlHistory, [16]byte(before.ChatID), before.Seq, [16]byte(as), limit+1)
	if err != nil {
		return err
	}
	page := make([]Message, 0, limit+1)
	var sender, replyTo pgtype.UUID
	for rows.Next() {
		page = append(page, Message{})
		m := &page[len(page)-1]
		if err := rows.Scan((*[16]byte)(&m.ID), (*[16]byte)(&m.ChatID), &m.Seq, &sender, &m.Role, &m.Content, &m.Metadata,
			&replyTo, &m.CreatedAt, &m.EditedAt, &m.DeletedAt); err != nil {
			rows.Close()
			return err
		}
		m.SenderID, m.ReplyToID = uuidPtr(sender), uuidPtr(replyTo)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	page = page[:min(limit, len(page))]
	if got != nil {
		*got = historyRows(page)
	}
	return nil
}

// inboxEntry is a chat of an inbox as the hand-written stacks scan it.
type inboxEntry struct {
	Chat struct {
		ID            uuid.UUID
		CreatedAt     time.Time
		UpdatedAt     time.Time
		DeletedAt     *time.Time
		Kind          string
		Title         *string
		CreatedBy     uuid.UUID
		LastMessageAt time.Time
		LastSeq       int64
		ArchivedAt    *time.Time
		DirectKey     *string
	}
	Membership struct {
		ID                uuid.UUID
		Role              string
		JoinedAt          time.Time
		ReadSeq           int64
		LastReadMessageID *uuid.UUID
		Muted             bool
	}
	// Last is the chat's newest message; its ID is nil when the chat has none.
	Last struct {
		ID        *uuid.UUID
		Seq       *int64
		SenderID  *uuid.UUID
		Role      *string
		Content   *string
		Metadata  *schematype.MessageMetadata
		ReplyToID *uuid.UUID
		CreatedAt *time.Time
		EditedAt  *time.Time
		DeletedAt *time.Time
	}
	Unread int64
}

// dest returns the scan destinations of an inbox row, in sqlInbox's order, for
// database/sql.
func (e *inboxEntry) dest() []any {
	c, mb, m := &e.Chat, &e.Membership, &e.Last
	return []any{&c.ID, &c.CreatedAt, &c.UpdatedAt, &c.DeletedAt, &c.Kind, &c.Title, &c.CreatedBy,
		&c.LastMessageAt, &c.LastSeq, &c.ArchivedAt, &c.DirectKey,
		&mb.ID, &mb.Role, &mb.JoinedAt, &mb.ReadSeq, &mb.LastReadMessageID, &mb.Muted,
		&m.ID, &m.Seq, &m.SenderID, &m.Role, &m.Content, &m.Metadata, &m.ReplyToID, &m.CreatedAt, &m.EditedAt, &m.DeletedAt,
		&e.Unread}
}

func (s *pgxStack) Inbox(ctx context.Context, user uuid.UUID, limit int, got *[]InboxRow) error {
	rows, err := s.pool.Query(ctx, sqlInbox, [16]byte(user), limit)
	if err != nil {
		return err
	}
	entries := make([]inboxEntry, 0, limit)
	var readID, lastID, sender, replyTo pgtype.UUID
	for rows.Next() {
		entries = append(entries, inboxEntry{})
		e := &entries[len(entries)-1]
		c, mb, m := &e.Chat, &e.Membership, &e.Last
		if err := rows.Scan((*[16]byte)(&c.ID), &c.CreatedAt, &c.UpdatedAt, &c.DeletedAt, &c.Kind, &c.Title,
			(*[16]byte)(&c.CreatedBy), &c.LastMessageAt, &c.LastSeq, &c.ArchivedAt, &c.DirectKey,
			(*[16]byte)(&mb.ID), &mb.Role, &mb.JoinedAt, &mb.ReadSeq, &readID, &mb.Muted,
			&lastID, &m.Seq, &sender, &m.Role, &m.Content, &m.Metadata, &replyTo, &m.CreatedAt, &m.EditedAt, &m.DeletedAt,
			&e.Unread); err != nil {
			rows.Close()
			return err
		}
		mb.LastReadMessageID, m.ID, m.SenderID, m.ReplyToID = uuidPtr(readID), uuidPtr(lastID), uuidPtr(sender), uuidPtr(replyTo)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if got != nil {
		*got = inboxRows(entries)
	}
	return nil
}

func (s *pgxStack) MarkRead(ctx context.Context, user, chatID, messageID uuid.UUID) error {
	_, err := s.pool.Exec(ctx, sqlMarkRead, [16]byte(user), [16]byte(chatID), [16]byte(messageID))
	return err
}

// Import is a transaction of four round trips and the COPY's two: BEGIN, the
// chat's lock and last seq, the COPY of the rows at the seqs after it, the
// bumps, COMMIT.
func (s *pgxStack) Import(ctx context.Context, msgs []Message) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var last int64
		if err := tx.QueryRow(ctx, sqlImportLock, [16]byte(msgs[0].ChatID)).Scan(&last); err != nil {
			return err
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"}, importColumns, pgx.CopyFromSlice(len(msgs), func(i int) ([]any, error) {
			m := &msgs[i]
			return []any{[16]byte(m.ID), [16]byte(m.ChatID), last + int64(i) + 1, pgUUID(m.SenderID), m.Role, m.Content,
				metadataArg(m.Metadata), m.CreatedAt}, nil
		}))
		if err != nil {
			return err
		}
		if n != int64(len(msgs)) {
			return fmt.Errorf("bench: pgx: import: %d of %d rows", n, len(msgs))
		}
		p := planImport(msgs, last)
		_, err = tx.Exec(ctx, sqlImportBumps, [16]byte(msgs[0].ChatID), p.lastSeq, p.lastAt,
			byteIDs(p.senders), p.seqs, byteIDs(p.ids))
		return err
	})
}

// byteIDs returns ids as pgx encodes a uuid[] natively.
func byteIDs(ids []uuid.UUID) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// pgUUID returns id as pgx encodes it natively: NULL for nil.
func pgUUID(id *uuid.UUID) pgtype.UUID {
	if id == nil {
		return pgtype.UUID{}
	}
	return pgtype.UUID{Bytes: *id, Valid: true}
}

// uuidPtr returns a pointer to u's bytes, or nil for NULL.
func uuidPtr(u pgtype.UUID) *uuid.UUID {
	if !u.Valid {
		return nil
	}
	id := uuid.UUID(u.Bytes)
	return &id
}

func historyRows(page []Message) []HistoryRow {
	out := make([]HistoryRow, len(page))
	for i := range page {
		out[i] = HistoryRow{ID: page[i].ID, Seq: page[i].Seq}
	}
	return out
}

func inboxRows(entries []inboxEntry) []InboxRow {
	out := make([]InboxRow, len(entries))
	for i, e := range entries {
		out[i] = InboxRow{ChatID: e.Chat.ID, Unread: int(e.Unread)}
		if e.Last.ID != nil {
			out[i].LastMessageID, out[i].LastSeq = *e.Last.ID, *e.Last.Seq
		}
	}
	return out
}
