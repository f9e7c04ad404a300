package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/privacy"
)

// importColumns are the columns ImportMessages writes, in importRows order.
var importColumns = []string{
	message.FieldID, message.FieldChatID, message.FieldSenderID, message.FieldRole,
	message.FieldContent, message.FieldMetadata, message.FieldReplyToID, message.FieldCreatedAt,
}

// ImportMessages writes msgs to chatID in one transaction and returns how many it
// wrote. Every message is validated first, as AppendMessage would: one bad
// message gives database.ErrInvalid (or ErrForbidden) and writes nothing. IDs
// that are zero get new UUIDv7s; an ID already stored, or given twice, gives
// database.ErrConflict and writes nothing, so an import is not idempotent: retry
// one only after it failed. ReplyTo must name a message of the chat or of msgs.
//
// Messages without CreatedAt get increasing times after the chat's last message,
// in slice order; the chat's last_message_at is bumped once, at the end, to the
// newest time written. Messages with a CreatedAt keep it (UTC, microseconds): a
// backfill of older history lands before messages that readers may have paged
// past already, which is what a backfill means.
//
// The privacy policy for appending is asked once per distinct (role, sender) in
// msgs; the system viewer may import for any sender.
//
// Cost: on PostgreSQL, a COPY of all rows (pgx CopyFrom or lib/pq CopyIn), a few
// round trips whatever their number; on SQLite, one multi-row INSERT per
// 4,095 rows (8 columns in 32,766 parameters) or per WithImportBatchSize rows.
// Around them: BEGIN, the chat's lock, one policy query per distinct (role,
// sender), one SELECT when replies point outside msgs, the chat UPDATE and
// the memberships' (their inbox order), and COMMIT.
func (s *Store) ImportMessages(ctx context.Context, chatID uuid.UUID, msgs []NewMessage) (int, error) {
	const op = "import messages"
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
	if err := checkImportPolicy(ctx, client, prepared); err != nil {
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
	rows, newest := importRows(prepared, nextTime(s.clock(), c.LastMessageAt), func(id uuid.UUID) any { return idValue(s.db.Driver() == database.DriverPgx, id) })
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
	if newest.After(c.LastMessageAt) {
		k, err := client.Chat.Update().Where(chat.ID(c.ID)).SetLastMessageAt(newest).SetUpdatedAt(s.clock()).Save(ctx)
		if err != nil {
			return int(written), err
		}
		if k == 0 {
			return 0, errCannotAppend()
		}
		// The import's rules have been decided: every membership of the chat
		// gets the new inbox order, not only the viewer's own.
		err = client.Membership.Update().
			Where(membership.ChatID(c.ID)).
			SetChatLastMessageAt(newest).
			Exec(privacy.DecisionContext(ctx, privacy.Allow))
		if err != nil {
			return int(written), err
		}
	}
	return int(written), nil
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

// checkImportPolicy asks the message privacy policy about each distinct (role,
// sender) of msgs, through client, in the import's transaction: the rule
// depends on the chat, the viewer, the role and the sender only, and the rows
// themselves are written by COPY, which ent does not see.
func checkImportPolicy(ctx context.Context, client *ent.Client, msgs []NewMessage) error {
	type key struct {
		role   message.Role
		sender uuid.UUID
	}
	asked := map[key]bool{}
	for _, m := range msgs {
		k := key{m.Role, m.SenderID}
		if asked[k] {
			continue
		}
		asked[k] = true
		mc := client.Message.Create().SetChatID(m.ChatID).SetRole(m.Role).SetContent(m.Content)
		if m.SenderID != uuid.Nil {
			mc.SetSenderID(m.SenderID)
		}
		if err := message.Policy.EvalMutation(ctx, mc.Mutation()); err != nil {
			return err
		}
	}
	return nil
}

// importRows returns msgs as rows of messageColumns, giving those without a
// time increasing times from next on, and the newest time of all.
func importRows(msgs []NewMessage, next time.Time, id func(uuid.UUID) any) ([][]any, time.Time) {
	rows := make([][]any, len(msgs))
	// One backing array for every row's values.
	vals := make([]any, len(importColumns)*len(msgs))
	var newest time.Time
	for i, m := range msgs {
		at := m.CreatedAt
		if at.IsZero() {
			at = next
			next = next.Add(time.Microsecond)
		}
		if at.After(newest) {
			newest = at
		}
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
		row[0], row[1], row[2], row[3] = id(m.ID), id(m.ChatID), sender, string(m.Role)
		row[4], row[5], row[6], row[7] = m.Content, metadata, replyTo, at
		rows[i] = row
	}
	return rows, newest
}
