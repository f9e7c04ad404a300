package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema"
)

// importColumns are the columns ImportMessages writes, in importRows order.
var importColumns = []string{
	message.FieldID, message.FieldChatID, message.FieldSeq, message.FieldSenderID, message.FieldRole,
	message.FieldContent, message.FieldMetadata, message.FieldReplyToID, message.FieldCreatedAt,
}

// ImportMessages writes msgs to chatID in one transaction and returns how many it
// wrote. Every message is validated first, as AppendMessage would: one bad
// message gives database.ErrInvalid (or ErrForbidden) and writes nothing. IDs
// that are zero get new UUIDv7s; an ID already stored, or given twice, gives
// database.ErrConflict and writes nothing, so an import is not idempotent: retry
// one only after it failed. ReplyTo must name a message of the chat or of msgs.
//
// An import appends to the chat's history, as appends do: its messages take
// the seqs after the chat's last one, ordered by CreatedAt (slice order among
// equal times), so History (in seq order) shows them in time order and a client
// syncing "everything after seq n" never misses one. So a message may not be
// older than the chat's newest message (database.ErrInvalid): to bring in
// history from elsewhere, import it into the chat before anything newer is
// appended. Messages without CreatedAt get the time of the import (UTC,
// microseconds, never before the chat's last message). As with appends, each
// sender's read position moves to their newest imported message, and the
// other members have the import unread.
//
// Only the system viewer imports (ErrForbidden otherwise): an import is an
// administrative operation, such as moving a chat's history in from
// elsewhere, seeding or restoring, and it may name any sender. A time later
// than now by more than schema.MaxClockSkew is refused (database.ErrInvalid):
// a message dated in the future would stay at the top of every member's
// inbox, and its time could be one no cursor can carry.
//
// Cost: on PostgreSQL, a COPY of all rows (pgx CopyFrom or lib/pq CopyIn), a few
// round trips whatever their number; on SQLite, one multi-row INSERT per
// 3,640 rows (9 columns in 32,766 parameters) or per WithImportBatchSize rows.
// Around them: BEGIN, the chat's lock, one SELECT when replies point outside
// msgs, the chat UPDATE, one
// UPDATE per distinct sender (their read position), one of the members'
// inbox order when the chat is not large, and COMMIT.
func (s *Store) ImportMessages(ctx context.Context, chatID uuid.UUID, msgs []NewMessage) (_ int, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.ImportMessages", chatID)
	defer span.end(&err)
	const op = "import messages"
	if err := ownTx(ctx); err != nil {
		return 0, fail(op, err)
	}
	// Importing is an administrative operation: moving a chat's history in
	// from elsewhere, seeding, restoring. Members append.
	if a, err := actorOf(ctx); err != nil || !a.system {
		if err == nil {
			err = forbidden("only the system imports messages")
		}
		return 0, fail(op, err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	prepared, outside, err := prepareImport(ctx, chatID, msgs)
	if err != nil {
		return 0, fail(op, err)
	}
	var n int
	err = s.db.WithConnTx(ctx, func(ctx context.Context, conn *sql.Conn, client *ent.Client) (err error) {
		n, err = s.importInTx(ctx, conn, client, chatID, prepared, outside)
		return err
	})
	if err != nil {
		return 0, fail(op, err)
	}
	return n, nil
}

// importInTx is ImportMessages inside its transaction.
func (s *Store) importInTx(ctx context.Context, conn *sql.Conn, client *ent.Client, chatID uuid.UUID, prepared []NewMessage, outside []uuid.UUID) (int, error) {
	q := client.Chat.Query().Where(chat.ID(chatID), chat.DeletedAtIsNil())
	if s.db.Dialect() == database.Postgres {
		q = q.ForUpdate()
	}
	c, err := q.Only(ctx)
	if err != nil {
		return 0, err
	}
	if len(outside) > 0 {
		k, err := client.Message.Query().Where(message.IDIn(outside...), message.ChatID(chatID)).Count(ctx)
		if err != nil {
			return 0, err
		}
		if k != len(outside) {
			return 0, errReplyOutside()
		}
	}
	// The import appends to the chat's history: a message older than the
	// chat's newest would take a seq after messages it predates, and History,
	// in seq order, would show it out of time order.
	now := laterOf(s.clock(), c.LastMessageAt)
	for i, m := range prepared {
		switch {
		case m.CreatedAt.IsZero():
			prepared[i].CreatedAt = now
		case m.CreatedAt.Before(c.LastMessageAt):
			return 0, fmt.Errorf("%w: message %d predates the chat's newest message: an import appends after the chat's history", database.ErrInvalid, i)
		}
	}
	// Seqs follow time, and slice order among equal times.
	slices.SortStableFunc(prepared, func(a, b NewMessage) int { return a.CreatedAt.Compare(b.CreatedAt) })
	rows := importRows(prepared, c.LastSeq, func(id uuid.UUID) any { return idValue(s.db.Driver() == database.DriverPgx, id) })
	batch := len(rows)
	if s.batch > 0 {
		batch = s.batch
	}
	var written int64
	for start := 0; start < len(rows); start += batch {
		k, err := s.db.CopyFrom(ctx, conn, message.Table, importColumns, rows[start:min(start+batch, len(rows))])
		written += k
		if err != nil {
			return int(written), err
		}
	}
	if err := s.importBumps(ctx, client, c, prepared); err != nil {
		return int(written), err
	}
	return int(written), nil
}

// importBumps does after an import what each append does: the chat's sequence
// and time move to the newest imported message, each sender's read position to
// their newest one, and, in a chat that is not large, the members' inbox order.
// The import's rules have been decided by then, so it writes as the store.
//
// Cost: one UPDATE of the chat, one per distinct sender, and one of the
// members' copies when the chat is not large.
func (s *Store) importBumps(ctx context.Context, client *ent.Client, c *ent.Chat, imported []NewMessage) error {
	id := func(id uuid.UUID) any { return idValue(s.db.Driver() == database.DriverPgx, id) }
	lastSeq := c.LastSeq + int64(len(imported))
	newest := imported[len(imported)-1].CreatedAt
	if _, err := client.ExecContext(ctx, `UPDATE chats SET last_seq = $2, last_message_at = $3, updated_at = $3 WHERE id = $1`,
		id(c.ID), lastSeq, newest); err != nil {
		return err
	}
	type read struct {
		seq int64
		id  uuid.UUID
		at  time.Time
	}
	reads := map[uuid.UUID]read{}
	var senders []uuid.UUID
	for i, m := range imported {
		if m.SenderID == uuid.Nil {
			continue
		}
		if _, ok := reads[m.SenderID]; !ok {
			senders = append(senders, m.SenderID)
		}
		reads[m.SenderID] = read{seq: c.LastSeq + int64(i) + 1, id: m.ID, at: m.CreatedAt}
	}
	for _, sender := range senders {
		r := reads[sender]
		if _, err := client.ExecContext(ctx, `UPDATE memberships SET read_seq = $3, last_read_message_id = $4,
  chat_last_message_at = CASE WHEN large THEN chat_last_message_at ELSE $5 END
WHERE chat_id = $1 AND user_id = $2 AND read_seq < $3`, id(c.ID), id(sender), r.seq, id(r.id), newest); err != nil {
			return err
		}
	}
	if !c.Large {
		if _, err := client.ExecContext(ctx, `UPDATE memberships SET chat_last_message_at = $2
WHERE chat_id = $1 AND NOT large AND chat_last_message_at < $2`, id(c.ID), newest); err != nil {
			return err
		}
	}
	return nil
}

// prepareImport validates msgs for chatID and fills in their defaults. It
// returns the IDs that replies point to outside msgs.
func prepareImport(ctx context.Context, chatID uuid.UUID, msgs []NewMessage) ([]NewMessage, []uuid.UUID, error) {
	out := make([]NewMessage, len(msgs))
	ids := make(map[uuid.UUID]bool, len(msgs))
	for i, m := range msgs {
		if m.ChatID != uuid.Nil && m.ChatID != chatID {
			return nil, nil, fmt.Errorf("%w: message %d is for another chat", database.ErrInvalid, i)
		}
		m.ChatID = chatID
		m, err := prepareMessage(ctx, m)
		if err != nil {
			return nil, nil, fmt.Errorf("message %d: %w", i, err)
		}
		if ids[m.ID] {
			return nil, nil, fmt.Errorf("%w: message %d repeats ID %s", database.ErrConflict, i, m.ID)
		}
		ids[m.ID] = true
		if !m.CreatedAt.IsZero() {
			m.CreatedAt = m.CreatedAt.UTC().Truncate(time.Microsecond)
			if err := schema.ValidateNotFuture(m.CreatedAt); err != nil {
				return nil, nil, fmt.Errorf("message %d: %w", i, invalid("Message.created_at", err))
			}
		}
		out[i] = m
	}
	var outside []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, m := range out {
		if m.ReplyTo != uuid.Nil && !ids[m.ReplyTo] && !seen[m.ReplyTo] {
			seen[m.ReplyTo] = true
			outside = append(outside, m.ReplyTo)
		}
	}
	return out, outside, nil
}

// importRows returns msgs, in order and with their times, as rows of
// importColumns at the seqs after lastSeq.
func importRows(msgs []NewMessage, lastSeq int64, id func(uuid.UUID) any) [][]any {
	rows := make([][]any, len(msgs))
	// One backing array for every row's values.
	vals := make([]any, len(importColumns)*len(msgs))
	for i, m := range msgs {
		var sender, replyTo, metadata any
		if m.SenderID != uuid.Nil {
			sender = id(m.SenderID)
		}
		if m.ReplyTo != uuid.Nil {
			replyTo = id(m.ReplyTo)
		}
		if !m.Metadata.IsZero() {
			// Validated by prepareImport, so it encodes.
			metadata, _ = m.Metadata.Value()
		}
		row := vals[len(importColumns)*i : len(importColumns)*(i+1) : len(importColumns)*(i+1)]
		row[0], row[1], row[2], row[3] = id(m.ID), id(m.ChatID), lastSeq+int64(i)+1, sender
		row[4], row[5], row[6], row[7], row[8] = string(m.Role), m.Content, metadata, replyTo, m.CreatedAt
		rows[i] = row
	}
	return rows
}
