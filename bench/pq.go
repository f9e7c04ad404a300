package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// pqStack is hand-written database/sql code on lib/pq: the same statements as the
// pgx stack, through database/sql, and COPY for bulk loads.
type pqStack struct {
	name string
	db   *sql.DB
}

// OpenPQ opens the pq stack: lib/pq with binary_parameters=yes, which sends a
// parameterised statement in one round trip instead of two.
func OpenPQ(ctx context.Context, url string) (Stack, error) {
	return openPQ(ctx, "pq", url, true)
}

// OpenPQDefault opens lib/pq in its default mode (two round trips per
// parameterised statement). It is not a benchmark stack; the round-trip test
// uses it to show what binary_parameters saves.
func OpenPQDefault(ctx context.Context, url string) (Stack, error) {
	return openPQ(ctx, "pq-default", url, false)
}

func openPQ(ctx context.Context, name, raw string, binary bool) (Stack, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("bench: pq: malformed URL")
	}
	if binary {
		q := u.Query()
		q.Set("binary_parameters", "yes")
		u.RawQuery = q.Encode()
	}
	conn, err := pq.NewConnector(u.String())
	if err != nil {
		return nil, fmt.Errorf("bench: pq: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(MaxOpen)
	db.SetMaxIdleConns(MaxIdle)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("bench: pq: %w", err)
	}
	return &pqStack{name: name, db: db}, nil
}

func (s *pqStack) Name() string { return s.name }

func (s *pqStack) Close() error { return s.db.Close() }

func (s *pqStack) CloseIdle() { closeIdle(s.db) }

func (s *pqStack) GetUser(ctx context.Context, as, id uuid.UUID, got *User) error {
	var u User
	err := s.db.QueryRowContext(ctx, sqlGetUser, id, as).Scan(&u.ID, &u.CreatedAt, &u.UpdatedAt, &u.DeletedAt,
		&u.Email, &u.DisplayName, &u.Status)
	if err != nil {
		return err
	}
	if got != nil {
		*got = u
	}
	return nil
}

func (s *pqStack) AppendMessage(ctx context.Context, m *Message) error {
	return s.db.QueryRowContext(ctx, sqlAppend, m.ID, m.ChatID, m.SenderID, m.Role, m.Content, metadataArg(m.Metadata), Now()).
		Scan(&m.Seq, &m.CreatedAt)
}

func (s *pqStack) HistoryPage(ctx context.Context, as uuid.UUID, before Cursor, limit int, got *[]HistoryRow) error {
	rows, err := s.db.QueryContext(ctx, sqlHistory, before.ChatID, before.Seq, as, limit+1)
	if err != nil {
		return err
	}
	defer rows.Close()
	page := make([]Message, 0, limit+1)
	for rows.Next() {
		page = append(page, Message{})
		m := &page[len(page)-1]
		if err := rows.Scan(&m.ID, &m.ChatID, &m.Seq, &m.SenderID, &m.Role, &m.Content, &m.Metadata,
			&m.ReplyToID, &m.CreatedAt, &m.EditedAt, &m.DeletedAt); err != nil {
			return err
		}
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

func (s *pqStack) Inbox(ctx context.Context, user uuid.UUID, limit int, got *[]InboxRow) error {
	rows, err := s.db.QueryContext(ctx, sqlInbox, user, limit)
	if err != nil {
		return err
	}
	defer rows.Close()
	entries := make([]inboxEntry, 0, limit)
	for rows.Next() {
		entries = append(entries, inboxEntry{})
		if err := rows.Scan(entries[len(entries)-1].dest()...); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if got != nil {
		*got = inboxRows(entries)
	}
	return nil
}

func (s *pqStack) MarkRead(ctx context.Context, user, chatID, messageID uuid.UUID) error {
	_, err := s.db.ExecContext(ctx, sqlMarkRead, user, chatID, messageID)
	return err
}

// Import is a transaction (lib/pq allows COPY only in one): BEGIN, the chat's
// lock and last seq, the COPY statement prepared, one Exec per row (buffered,
// sent in 64 KiB chunks) and an empty one to finish, the bumps, COMMIT.
func (s *pqStack) Import(ctx context.Context, msgs []Message) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var last int64
	if err := tx.QueryRowContext(ctx, sqlImportLock, msgs[0].ChatID).Scan(&last); err != nil {
		return err
	}
	stmt, err := tx.PrepareContext(ctx, sqlCopyMessages)
	if err != nil {
		return err
	}
	for i := range msgs {
		m := &msgs[i]
		if _, err := stmt.ExecContext(ctx, m.ID, m.ChatID, last+int64(i)+1, m.SenderID, m.Role, m.Content,
			metadataArg(m.Metadata), m.CreatedAt); err != nil {
			stmt.Close()
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		stmt.Close()
		return err
	}
	if err := stmt.Close(); err != nil {
		return err
	}
	p := planImport(msgs, last)
	if _, err := tx.ExecContext(ctx, sqlImportBumps, msgs[0].ChatID, p.lastSeq, p.lastAt,
		pq.Array(p.senders), pq.Array(p.seqs), pq.Array(p.ids)); err != nil {
		return err
	}
	return tx.Commit()
}
