package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The result sizes of the benchmarks.
const (
	HistoryLimit = 50
	InboxLimit   = 20
)

// NewChat creates an empty chat owned by the Sender, for Import to fill.
func (ds *Dataset) NewChat(ctx context.Context) (uuid.UUID, error) {
	id := uuid.Must(uuid.NewV7())
	_, err := ds.pool.Exec(ctx, `INSERT INTO chats (id, created_at, updated_at, kind, title, last_message_at, created_by)
VALUES ($1, $2, $2, 'group', 'Import', $2, $3)`, id, Now(), ds.Sender)
	return id, err
}

// DeleteChat removes a chat and its messages.
func (ds *Dataset) DeleteChat(ctx context.Context, id uuid.UUID) error {
	return ds.deleteMessages(ctx, []uuid.UUID{id}, `DELETE FROM chats WHERE id = $1`, id)
}

// deleteMessages deletes the messages of chats, then runs then with args, in one
// transaction. The foreign key messages.reply_to_id has no index, so each
// deleted message would cost a scan of messages to find its replies; the
// harness's messages have none, and it skips the foreign key triggers where it
// may (as a superuser).
func (ds *Dataset) deleteMessages(ctx context.Context, chats []uuid.UUID, then string, args ...any) error {
	tx, err := ds.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SAVEPOINT fk"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT fk"); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM messages WHERE chat_id = ANY($1)`, chats); err != nil {
		return err
	}
	if then != "" {
		if _, err := tx.Exec(ctx, then, args...); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Vacuum vacuums the messages table, so that rows deleted between timed runs do
// not slow down the next one.
func (ds *Dataset) Vacuum(ctx context.Context) error {
	_, err := ds.pool.Exec(ctx, `VACUUM messages`)
	return err
}

// ClearAppends removes the messages appended to AppendChat and MixedChats, and
// moves those chats' last_message_at (and their memberships' copy of it) back
// to the data set's start.
func (ds *Dataset) ClearAppends(ctx context.Context) error {
	ids := append([]uuid.UUID{ds.AppendChat}, ds.MixedChats...)
	return ds.deleteMessages(ctx, ids, `WITH c AS (UPDATE chats SET last_message_at = $2 WHERE id = ANY($1))
UPDATE memberships SET chat_last_message_at = $2 WHERE chat_id = ANY($1)`, ids, base)
}

// ResetRead clears the Reader's read position in the big chat.
func (ds *Dataset) ResetRead(ctx context.Context) error {
	_, err := ds.pool.Exec(ctx, `UPDATE memberships SET last_read_at = NULL, last_read_message_id = NULL
WHERE user_id = $1 AND chat_id = $2`, ds.Reader, ds.BigChat)
	return err
}

// HistoryPageIDs returns the IDs HistoryPage must return for the big chat before
// cursor c, from the generated data.
func (ds *Dataset) HistoryPageIDs(c Cursor, limit int) []uuid.UUID {
	at := slices.IndexFunc(ds.BigChatMessages, func(p Cursor) bool { return p.ID == c.ID })
	var ids []uuid.UUID
	for i := at - 1; i >= 0 && len(ids) < limit; i-- {
		ids = append(ids, ds.BigChatMessages[i].ID)
	}
	return ids
}

// ReferenceInbox returns the inbox of user as the pgx stack's statement computes
// it, on the harness's own connection.
func (ds *Dataset) ReferenceInbox(ctx context.Context, user uuid.UUID, limit int) ([]InboxRow, error) {
	rows, err := ds.pool.Query(ctx, sqlInbox, user, limit)
	if err != nil {
		return nil, err
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (inboxEntry, error) {
		var e inboxEntry
		err := r.Scan(e.dest()...)
		return e, err
	})
	if err != nil {
		return nil, err
	}
	return inboxRows(entries), nil
}

// Operations are the operations a Stack implements, as Check names them.
var Operations = []string{"GetUser", "AppendMessage", "HistoryPage", "Inbox", "MarkRead", "Import"}

// Check runs each operation once on s and compares what it read and wrote with
// the data set: the same user, the same 50 message IDs, the same inbox (chats,
// last messages, unread counts) as the reference statement, an appended message
// and its chat bump, a read position, importRows imported rows. It returns an
// error per operation (nil when it passed), keyed by its name in Operations, and
// leaves the data set as it found it.
func Check(ctx context.Context, s Stack, ds *Dataset, importRows int) map[string]error {
	checks := map[string]func() error{
		"GetUser":       func() error { return checkGetUser(ctx, s, ds) },
		"HistoryPage":   func() error { return checkHistoryPage(ctx, s, ds) },
		"Inbox":         func() error { return checkInbox(ctx, s, ds) },
		"AppendMessage": func() error { return checkAppend(ctx, s, ds) },
		"MarkRead":      func() error { return checkMarkRead(ctx, s, ds) },
		"Import":        func() error { return checkImport(ctx, s, ds, importRows) },
	}
	errs := map[string]error{}
	for _, op := range Operations {
		if err := checks[op](); err != nil {
			errs[op] = fmt.Errorf("bench: %s: %s: %w", s.Name(), op, err)
		} else {
			errs[op] = nil
		}
	}
	return errs
}

func checkGetUser(ctx context.Context, s Stack, ds *Dataset) error {
	var u User
	if err := s.GetUser(ctx, ds.Reader, ds.Users[5], &u); err != nil {
		return err
	}
	created := base.Add(-24 * time.Hour)
	if u.ID != ds.Users[5] || u.Email != "user00005@bench.example" || u.DisplayName != "User 5" ||
		u.Status != "active" || !u.CreatedAt.Equal(created) || !u.UpdatedAt.Equal(created) || u.DeletedAt != nil {
		return fmt.Errorf("got %+v", u)
	}
	return nil
}

func checkHistoryPage(ctx context.Context, s Stack, ds *Dataset) error {
	for _, c := range []Cursor{ds.Cursors[0], ds.Cursors[len(ds.Cursors)-1]} {
		var ids []uuid.UUID
		if err := s.HistoryPage(ctx, ds.Reader, ds.BigChat, c, HistoryLimit, &ids); err != nil {
			return err
		}
		if want := ds.HistoryPageIDs(c, HistoryLimit); len(want) != HistoryLimit || !slices.Equal(ids, want) {
			return fmt.Errorf("got %d IDs %v, want %d %v", len(ids), ids, len(want), want)
		}
	}
	return nil
}

func checkInbox(ctx context.Context, s Stack, ds *Dataset) error {
	want, err := ds.ReferenceInbox(ctx, ds.InboxUser, InboxLimit)
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	if len(want) != min(InboxLimit, ds.Size.InboxChats) {
		return fmt.Errorf("reference has %d chats", len(want))
	}
	var got []InboxRow
	if err := s.Inbox(ctx, ds.InboxUser, InboxLimit, &got); err != nil {
		return err
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("got %+v, want %+v", got, want)
	}
	return nil
}

func checkAppend(ctx context.Context, s Stack, ds *Dataset) error {
	defer ds.ClearAppends(context.WithoutCancel(ctx))
	m := Message{ID: uuid.Must(uuid.NewV7()), ChatID: ds.AppendChat, SenderID: &ds.Sender, Role: "user", Content: "check"}
	if err := s.AppendMessage(ctx, &m); err != nil {
		return err
	}
	var content string
	var sender uuid.UUID
	var createdAt, last time.Time
	err := ds.pool.QueryRow(ctx, `SELECT m.content, m.sender_id, m.created_at, c.last_message_at
FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.id = $1`, m.ID).Scan(&content, &sender, &createdAt, &last)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if content != "check" || sender != ds.Sender || !createdAt.Equal(last) || !createdAt.Equal(m.CreatedAt) {
		return fmt.Errorf("content %q from %v, created_at %v (reported %v), chat last_message_at %v",
			content, sender, createdAt, m.CreatedAt, last)
	}
	return nil
}

func checkMarkRead(ctx context.Context, s Stack, ds *Dataset) error {
	defer ds.ResetRead(context.WithoutCancel(ctx))
	if err := ds.ResetRead(ctx); err != nil {
		return err
	}
	target := ds.BigChatMessages[len(ds.BigChatMessages)/3]
	if err := s.MarkRead(ctx, ds.Reader, ds.BigChat, target.ID); err != nil {
		return err
	}
	var readAt *time.Time
	var readID *uuid.UUID
	err := ds.pool.QueryRow(ctx, `SELECT last_read_at, last_read_message_id FROM memberships
WHERE user_id = $1 AND chat_id = $2`, ds.Reader, ds.BigChat).Scan(&readAt, &readID)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if readAt == nil || readID == nil || !readAt.Equal(target.CreatedAt) || *readID != target.ID {
		return fmt.Errorf("position %v %v, want %v %v", readAt, readID, target.CreatedAt, target.ID)
	}
	return nil
}

func checkImport(ctx context.Context, s Stack, ds *Dataset, rows int) error {
	chat, err := ds.NewChat(ctx)
	if err != nil {
		return err
	}
	defer ds.DeleteChat(context.WithoutCancel(ctx), chat)
	msgs := ImportMessages(chat, ds.Sender, rows)
	if err := s.Import(ctx, msgs); err != nil {
		return err
	}
	var n, withMetadata int
	err = ds.pool.QueryRow(ctx, `SELECT count(*), count(metadata) FROM messages WHERE chat_id = $1`, chat).Scan(&n, &withMetadata)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	wantMD := 0
	for i := range msgs {
		if msgs[i].Metadata != nil {
			wantMD++
		}
	}
	if n != rows || withMetadata != wantMD {
		return fmt.Errorf("%d rows (%d with metadata), want %d (%d)", n, withMetadata, rows, wantMD)
	}
	last := msgs[len(msgs)-1]
	var content string
	var created time.Time
	if err := ds.pool.QueryRow(ctx, `SELECT content, created_at FROM messages WHERE id = $1`, last.ID).Scan(&content, &created); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if content != last.Content || !created.Equal(last.CreatedAt) {
		return fmt.Errorf("last row %q at %v, want %q at %v", content, created, last.Content, last.CreatedAt)
	}
	return nil
}
