package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chatdb/chatdb/store"
)

// The result sizes of the benchmarks.
const (
	HistoryLimit = 50
	InboxLimit   = 20
)

// NewChat creates an empty chat for Import to fill, with the Sender as its
// owner and only member. Its time is the data set's start, before the
// messages ImportMessages makes: an import appends after a chat's history.
func (ds *Dataset) NewChat(ctx context.Context) (uuid.UUID, error) {
	id := uuid.Must(uuid.NewV7())
	_, err := ds.pool.Exec(ctx, `WITH c AS (
  INSERT INTO chats (id, created_at, updated_at, kind, title, last_message_at, last_seq, large, created_by)
  VALUES ($1, $2, $2, 'group', 'Import', $2, 0, false, $3) RETURNING id)
INSERT INTO memberships (id, role, joined_at, read_seq, muted, chat_last_message_at, large, user_id, chat_id)
SELECT $4, 'owner', $2, 0, false, $2, false, $3, c.id FROM c`, id, base, ds.Sender, uuid.Must(uuid.NewV7()))
	return id, err
}

// DeleteChat removes a chat and its messages.
func (ds *Dataset) DeleteChat(ctx context.Context, id uuid.UUID) error {
	return ds.deleteMessages(ctx, []uuid.UUID{id}, `DELETE FROM chats WHERE id = $1`, id)
}

// deleteMessages deletes the messages of chats, then runs then with args, in one
// transaction. The harness's messages reply to none, so it skips the foreign
// key triggers (a probe of messages_reply_to_idx per deleted message) where it
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
// moves those chats (last_seq, last_message_at) and their memberships (read
// position, inbox time) back to the data set's start.
func (ds *Dataset) ClearAppends(ctx context.Context) error {
	ids := append([]uuid.UUID{ds.AppendChat}, ds.MixedChats...)
	return ds.deleteMessages(ctx, ids, `WITH c AS (UPDATE chats SET last_seq = 0, last_message_at = $2, updated_at = $2 WHERE id = ANY($1))
UPDATE memberships SET chat_last_message_at = $2, read_seq = 0, last_read_message_id = NULL WHERE chat_id = ANY($1)`, ids, base)
}

// ResetRead clears the Reader's read position in the big chat.
func (ds *Dataset) ResetRead(ctx context.Context) error {
	_, err := ds.pool.Exec(ctx, `UPDATE memberships SET read_seq = 0, last_read_message_id = NULL
WHERE user_id = $1 AND chat_id = $2`, ds.Reader, ds.BigChat)
	return err
}

// HistoryPageRows returns the messages HistoryPage must return for the big
// chat before cursor c, from the generated data.
func (ds *Dataset) HistoryPageRows(c Cursor, limit int) []HistoryRow {
	var rows []HistoryRow
	// Seq n is BigChatMessages[n-1].
	for i := int(c.Seq) - 2; i >= 0 && len(rows) < limit; i-- {
		p := ds.BigChatMessages[i]
		rows = append(rows, HistoryRow{ID: p.ID, Seq: p.Seq})
	}
	return rows
}

// sqlReferenceInbox is the inbox computed the slow, plain way, from the
// messages themselves rather than the counters the stacks read (chats.last_seq,
// memberships.large and the inbox times), so that a wrong counter shows: the
// chat's last message is its highest seq, the unread count is the number of
// its messages after the read position, and a chat is large when it has more
// than $3 members. The order is chatdb's (see Stack.Inbox).
const sqlReferenceInbox = `SELECT c.id, lm.id, lm.seq,
  (SELECT count(*) FROM messages m WHERE m.chat_id = c.id AND m.seq > mb.read_seq)
FROM memberships mb
JOIN chats c ON c.id = mb.chat_id AND c.deleted_at IS NULL
LEFT JOIN LATERAL (SELECT id, seq FROM messages m WHERE m.chat_id = c.id ORDER BY seq DESC LIMIT 1) lm ON true
WHERE mb.user_id = $1
ORDER BY CASE WHEN (SELECT count(*) FROM memberships o WHERE o.chat_id = c.id) > $3
  THEN GREATEST(c.last_message_at, mb.chat_last_message_at) ELSE mb.chat_last_message_at END DESC, c.id DESC
LIMIT $2`

// ReferenceInbox returns the inbox of user by sqlReferenceInbox, on the
// harness's own connection.
func (ds *Dataset) ReferenceInbox(ctx context.Context, user uuid.UUID, limit int) ([]InboxRow, error) {
	rows, err := ds.pool.Query(ctx, sqlReferenceInbox, user, limit, store.DefaultFanOutLimit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (InboxRow, error) {
		var row InboxRow
		var last *uuid.UUID
		var seq *int64
		err := r.Scan(&row.ChatID, &last, &seq, &row.Unread)
		if last != nil {
			row.LastMessageID, row.LastSeq = *last, *seq
		}
		return row, err
	})
}

// Operations are the operations a Stack implements, as Check names them.
var Operations = []string{"GetUser", "AppendMessage", "HistoryPage", "Inbox", "MarkRead", "Import"}

// Check runs each operation once on s and compares what it read and wrote with
// the data set: the same user; the same 50 messages (IDs and seqs, in order);
// the same inbox as the reference statement (chats in order, last messages and
// their seqs, unread counts); an appended message at the chat's next seq with
// its bumps (chat, sender's read position, the other member's inbox time); a
// read position that moves forward and not back; importRows imported rows at
// the seqs after the chat's, with their bumps. It returns an
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
		var rows []HistoryRow
		if err := s.HistoryPage(ctx, ds.Reader, c, HistoryLimit, &rows); err != nil {
			return err
		}
		if want := ds.HistoryPageRows(c, HistoryLimit); len(want) != HistoryLimit || !slices.Equal(rows, want) {
			return fmt.Errorf("got %d messages %v, want %d %v", len(rows), rows, len(want), want)
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

// chatState is what an append or an import leaves in a chat and its
// memberships, as the checks read it back.
type chatState struct {
	lastSeq int64
	last    time.Time
	// readSeq, readID and inbox are each member's read position and inbox
	// time.
	readSeq map[uuid.UUID]int64
	readID  map[uuid.UUID]*uuid.UUID
	inbox   map[uuid.UUID]*time.Time
}

func (ds *Dataset) chatState(ctx context.Context, chatID uuid.UUID) (chatState, error) {
	st := chatState{readSeq: map[uuid.UUID]int64{}, readID: map[uuid.UUID]*uuid.UUID{}, inbox: map[uuid.UUID]*time.Time{}}
	if err := ds.pool.QueryRow(ctx, `SELECT last_seq, last_message_at FROM chats WHERE id = $1`, chatID).Scan(&st.lastSeq, &st.last); err != nil {
		return st, err
	}
	rows, err := ds.pool.Query(ctx, `SELECT user_id, read_seq, last_read_message_id, chat_last_message_at FROM memberships WHERE chat_id = $1`, chatID)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var u uuid.UUID
		var seq int64
		var id *uuid.UUID
		var at *time.Time
		if err := rows.Scan(&u, &seq, &id, &at); err != nil {
			return st, err
		}
		st.readSeq[u], st.readID[u], st.inbox[u] = seq, id, at
	}
	return st, rows.Err()
}

// checkBumps checks the state an append or an import of messages up to seq
// (the last at time at) leaves in chatID: the chat's sequence and time, the
// sender's read position at their newest message (seq sent, ID sentID), and
// every member's inbox time (the chat is not large).
func (ds *Dataset) checkBumps(ctx context.Context, chatID uuid.UUID, seq int64, at time.Time, sender uuid.UUID, sent int64, sentID uuid.UUID) error {
	st, err := ds.chatState(ctx, chatID)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if st.lastSeq != seq || !st.last.Equal(at) {
		return fmt.Errorf("chat at seq %d, %v; want %d, %v", st.lastSeq, st.last, seq, at)
	}
	if id := st.readID[sender]; st.readSeq[sender] != sent || id == nil || *id != sentID {
		return fmt.Errorf("sender's read position %d (%v), want %d (%v)", st.readSeq[sender], st.readID[sender], sent, sentID)
	}
	for u, t := range st.inbox {
		if t == nil || !t.Equal(at) {
			return fmt.Errorf("member %v's inbox time %v, want %v", u, t, at)
		}
	}
	return nil
}

func checkAppend(ctx context.Context, s Stack, ds *Dataset) error {
	defer ds.ClearAppends(context.WithoutCancel(ctx))
	if err := ds.ClearAppends(ctx); err != nil {
		return err
	}
	var prev Message
	for i, content := range []string{"check", "check again"} {
		m := Message{ID: uuid.Must(uuid.NewV7()), ChatID: ds.AppendChat, SenderID: &ds.Sender, Role: "user", Content: content}
		if err := s.AppendMessage(ctx, &m); err != nil {
			return err
		}
		var got Message
		err := ds.pool.QueryRow(ctx, `SELECT seq, content, sender_id, created_at FROM messages WHERE id = $1`, m.ID).
			Scan(&got.Seq, &got.Content, &got.SenderID, &got.CreatedAt)
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		switch {
		case got.Seq != int64(i)+1 || got.Seq != m.Seq:
			return fmt.Errorf("seq %d (reported %d), want %d", got.Seq, m.Seq, i+1)
		case got.Content != content || got.SenderID == nil || *got.SenderID != ds.Sender:
			return fmt.Errorf("content %q from %v", got.Content, got.SenderID)
		case !got.CreatedAt.Equal(m.CreatedAt) || got.CreatedAt.Before(prev.CreatedAt):
			return fmt.Errorf("created_at %v (reported %v), the one before at %v", got.CreatedAt, m.CreatedAt, prev.CreatedAt)
		}
		if err := ds.checkBumps(ctx, ds.AppendChat, m.Seq, m.CreatedAt, ds.Sender, m.Seq, m.ID); err != nil {
			return err
		}
		prev = m
	}
	return nil
}

func checkMarkRead(ctx context.Context, s Stack, ds *Dataset) error {
	defer ds.ResetRead(context.WithoutCancel(ctx))
	if err := ds.ResetRead(ctx); err != nil {
		return err
	}
	// Forward to the target; then an older message moves nothing back.
	target := ds.BigChatMessages[len(ds.BigChatMessages)/3]
	for _, p := range []Position{target, ds.BigChatMessages[len(ds.BigChatMessages)/4]} {
		if err := s.MarkRead(ctx, ds.Reader, ds.BigChat, p.ID); err != nil {
			return err
		}
		var seq int64
		var id *uuid.UUID
		err := ds.pool.QueryRow(ctx, `SELECT read_seq, last_read_message_id FROM memberships
WHERE user_id = $1 AND chat_id = $2`, ds.Reader, ds.BigChat).Scan(&seq, &id)
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		if seq != target.Seq || id == nil || *id != target.ID {
			return fmt.Errorf("after marking seq %d: position %d %v, want %d %v", p.Seq, seq, id, target.Seq, target.ID)
		}
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
	var minSeq, maxSeq int64
	err = ds.pool.QueryRow(ctx, `SELECT count(*), count(metadata), min(seq), max(seq) FROM messages WHERE chat_id = $1`, chat).
		Scan(&n, &withMetadata, &minSeq, &maxSeq)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	wantMD := 0
	for i := range msgs {
		if msgs[i].Metadata != nil {
			wantMD++
		}
	}
	if n != rows || withMetadata != wantMD || minSeq != 1 || maxSeq != int64(rows) {
		return fmt.Errorf("%d rows (%d with metadata) at seqs %d to %d, want %d (%d) at 1 to %d",
			n, withMetadata, minSeq, maxSeq, rows, wantMD, rows)
	}
	// Seqs follow the slice, which is in time order.
	for _, i := range []int{0, rows / 2, rows - 1} {
		m := msgs[i]
		var content string
		var seq int64
		var created time.Time
		if err := ds.pool.QueryRow(ctx, `SELECT content, seq, created_at FROM messages WHERE id = $1`, m.ID).Scan(&content, &seq, &created); err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		if content != m.Content || seq != int64(i)+1 || !created.Equal(m.CreatedAt) {
			return fmt.Errorf("row %d: %q at seq %d, %v; want %q at %d, %v", i, content, seq, created, m.Content, i+1, m.CreatedAt)
		}
	}
	// The Sender's newest message is the one they have read up to.
	sent := len(msgs) - 1
	for msgs[sent].SenderID == nil {
		sent--
	}
	return ds.checkBumps(ctx, chat, int64(rows), msgs[rows-1].CreatedAt, ds.Sender, int64(sent)+1, msgs[sent].ID)
}
