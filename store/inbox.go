package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/schema/schematype"
)

// Inbox page sizes.
const (
	defaultInboxLimit = 20
	maxInboxLimit     = 200
)

// InboxQuery selects a page of the viewer's inbox.
type InboxQuery struct {
	// Limit is the largest number of chats returned: 0 means 20, and more than 200
	// means 200.
	Limit int
	// Before, when set, continues after the entry it was taken from
	// (InboxEntry.Cursor).
	Before Cursor
}

// InboxEntry is one chat in an inbox. Its entities are read by one SQL query,
// not by ent: they carry no client, so query their edges through the Store (or
// an ent client) by ID rather than with methods such as Chat.QueryMessages.
type InboxEntry struct {
	// Chat is the chat.
	Chat *ent.Chat
	// Membership is the viewer's membership: role, muted, read position.
	Membership *ent.Membership
	// LastMessage is the chat's newest message, or nil when it has none. A deleted
	// one is blanked as in History.
	LastMessage *ent.Message
	// Unread counts the messages after the viewer's read position that the viewer
	// did not send and that are not deleted.
	Unread int
	// Cursor is the entry's position, for InboxQuery.Before.
	Cursor Cursor
}

// Inbox returns the viewer's chats, newest activity first, each with its last
// message, the viewer's membership and unread count. Activity is the chat's
// last_message_at, or the time the viewer joined when they joined after the
// last message (Membership.ChatLastMessageAt holds it). Deleted chats are left
// out; archived ones are included. The viewer must be a user.
//
// Cost: one query whatever the number of chats (LATERAL joins on PostgreSQL,
// correlated subqueries on SQLite), reading the page in order from the index
// memberships_user_inbox_idx: its time does not grow with the number of chats.
func (s *Store) Inbox(ctx context.Context, q InboxQuery) ([]InboxEntry, error) {
	const op = "inbox"
	me, err := viewerUser(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = defaultInboxLimit
	case limit > maxInboxLimit:
		limit = maxInboxLimit
	}
	var before *position
	if q.Before != "" {
		p, err := decodeCursor(cursorInboxV1, q.Before)
		if err != nil {
			return nil, fail(op, err)
		}
		before = &p
	}
	query, args := inboxSQL(s.db.Dialect(), s.idArg, me, before, limit)
	// Raw SQL skips ent's privacy policies; the query is the viewer's own by
	// construction: it starts from the viewer's memberships.
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fail(op, err)
	}
	defer rows.Close()
	entries := make([]InboxEntry, 0, limit)
	// One allocation for every row's entities and scan targets.
	slab := make([]inboxRow, limit)
	for rows.Next() {
		if len(entries) == limit {
			break
		}
		e, err := slab[len(entries)].scan(rows, me)
		if err != nil {
			return nil, fail(op, err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(op, err)
	}
	return entries, nil
}

// MarkRead moves the viewer's read position in chatID to messageID, a message of
// that chat. The position never moves backwards: marking an older message read
// changes nothing.
//
// Cost on PostgreSQL: one statement (a WITH query that reads the message and
// updates the membership), one round trip. On SQLite: one SELECT of the
// message and one conditional UPDATE, 2 round trips.
func (s *Store) MarkRead(ctx context.Context, chatID, messageID uuid.UUID) error {
	const op = "mark read"
	me, err := viewerUser(ctx)
	if err != nil {
		return fail(op, err)
	}
	if s.fast() {
		return fail(op, s.pgMarkRead(ctx, me, chatID, messageID))
	}
	msg, err := s.client.Message.Query().Where(message.ID(messageID), message.ChatID(chatID)).Only(ctx)
	if err != nil {
		return fail(op, err)
	}
	_, err = s.client.Membership.Update().
		Where(
			membership.ChatID(chatID),
			membership.UserID(me),
			// Forward only: a position already at or past the message stays.
			func(s *entsql.Selector) {
				s.Where(entsql.Or(
					entsql.IsNull(s.C(membership.FieldLastReadAt)),
					entsql.CompositeLT([]string{s.C(membership.FieldLastReadAt), s.C(membership.FieldLastReadMessageID)}, msg.CreatedAt.UTC(), msg.ID),
				))
			},
		).
		SetLastReadAt(msg.CreatedAt.UTC()).
		SetLastReadMessageID(msg.ID).
		Save(ctx)
	return fail(op, err)
}

// inboxChatColumns and inboxMessageColumns are the columns the inbox query
// returns, in scanInboxEntry's order: the chat and the viewer's membership, then
// the last message; the unread count follows them.
const inboxChatColumns = `p.id, p.created_at, p.updated_at, p.deleted_at, p.kind, p.title, p.created_by,
	p.last_message_at, p.archived_at, p.direct_key,
	p.mb_id, p.mb_role, p.mb_joined_at, p.mb_last_read_at, p.mb_last_read_message_id, p.mb_muted, p.mb_chat_last_message_at`

const inboxMessageColumns = `lm.id, lm.sender_id, lm.role, lm.content, lm.metadata, lm.reply_to_id,
	lm.created_at, lm.edited_at, lm.deleted_at`

// inboxSQL returns the inbox query for the dialect: one statement, whatever the
// number of chats. The page of chats is chosen first (the viewer's memberships
// in order from memberships_user_inbox_idx, joined to chats: no sort, so the
// cost does not grow with the number of the viewer's chats), and
// only its rows get a last message and an unread count, each a range over
// messages_chat_created_id_idx. PostgreSQL reads them with LATERAL joins;
// SQLite, which has none, with correlated subqueries. Parameters are $n on both:
// modernc.org/sqlite binds $NNN by position, so $1 (the viewer) is used twice.
func inboxSQL(dialect string, id func(uuid.UUID) any, me uuid.UUID, before *position, limit int) (string, []any) {
	// $3 and $4 stand for "before everything" where the viewer has read nothing:
	// COALESCE with them keeps the unread condition a single row comparison,
	// which the index serves as a range; an OR with IS NULL would not be.
	args := []any{id(me), limit, time.Time{}, id(uuid.Nil)}
	pageSQL := `SELECT c.id, c.created_at, c.updated_at, c.deleted_at, c.kind, c.title, c.created_by,
		c.last_message_at, c.archived_at, c.direct_key,
		mb.id AS mb_id, mb.role AS mb_role, mb.joined_at AS mb_joined_at, mb.last_read_at AS mb_last_read_at,
		mb.last_read_message_id AS mb_last_read_message_id, mb.muted AS mb_muted,
		mb.chat_last_message_at AS mb_chat_last_message_at%s
	FROM memberships mb
	JOIN chats c ON c.id = mb.chat_id
	WHERE mb.user_id = $1 AND c.deleted_at IS NULL%s
	ORDER BY mb.chat_last_message_at DESC, mb.chat_id DESC
	LIMIT $2`
	keyset := ""
	if before != nil {
		keyset = " AND (mb.chat_last_message_at, mb.chat_id) < ($5, $6)"
		args = append(args, before.at, id(before.id))
	}
	// Messages after the read position, not the viewer's, not deleted.
	const unread = `SELECT count(*) FROM messages m
		WHERE m.chat_id = p.id AND m.deleted_at IS NULL
		AND (m.sender_id IS NULL OR m.sender_id <> $1)
		AND (m.created_at, m.id) > (COALESCE(p.mb_last_read_at, $3), COALESCE(p.mb_last_read_message_id, $4))`
	if dialect == database.Postgres {
		return `WITH p AS (
	` + fmt.Sprintf(pageSQL, "", keyset) + `
)
SELECT ` + inboxChatColumns + `,
	` + inboxMessageColumns + `,
	u.n
FROM p
LEFT JOIN LATERAL (
	SELECT * FROM messages m WHERE m.chat_id = p.id ORDER BY m.created_at DESC, m.id DESC LIMIT 1
) lm ON true
CROSS JOIN LATERAL (` + unread + `) u(n)
ORDER BY p.mb_chat_last_message_at DESC, p.id DESC`, args
	}
	lastID := `,
		(SELECT m.id FROM messages m WHERE m.chat_id = c.id ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS last_id`
	return `SELECT ` + inboxChatColumns + `,
	` + inboxMessageColumns + `,
	(` + unread + `) AS unread
FROM (
	` + fmt.Sprintf(pageSQL, lastID, keyset) + `
) p
LEFT JOIN messages lm ON lm.id = p.last_id
ORDER BY p.mb_chat_last_message_at DESC, p.id DESC`, args
}

// inboxRow holds one row of the inbox query: the entities it becomes and the
// targets it is scanned into, so that a page costs one allocation for all of
// them rather than a few dozen per row.
type inboxRow struct {
	c  ent.Chat
	mb ent.Membership
	m  ent.Message

	kind, mbRole                                                   string
	title, key, msgRole, content                                   sql.NullString
	readID, msgID, sender, replyTo                                 uuid.NullUUID
	muted                                                          sql.NullBool
	metadata                                                       schematype.MessageMetadata
	unread                                                         int64
	chatDeleted, archived, readAt, order, msgCreated, edited, gone nullTime
	keyValue                                                       string
}

// scan reads one row of the inbox query into r and returns its entry, whose
// entities point into r.
func (r *inboxRow) scan(rows *sql.Rows, me uuid.UUID) (InboxEntry, error) {
	c, mb, m := &r.c, &r.mb, &r.m
	err := rows.Scan(
		&c.ID, (*timeScan)(&c.CreatedAt), (*timeScan)(&c.UpdatedAt), &r.chatDeleted, &r.kind, &r.title, &c.CreatedBy,
		(*timeScan)(&c.LastMessageAt), &r.archived, &r.key,
		&mb.ID, &r.mbRole, (*timeScan)(&mb.JoinedAt), &r.readAt, &r.readID, &r.muted, &r.order,
		&r.msgID, &r.sender, &r.msgRole, &r.content, &r.metadata, &r.replyTo, &r.msgCreated, &r.edited, &r.gone,
		&r.unread,
	)
	if err != nil {
		return InboxEntry{}, err
	}
	c.Kind = chat.Kind(r.kind)
	c.Title = r.title.String
	c.DeletedAt = r.chatDeleted.ptr()
	c.ArchivedAt = r.archived.ptr()
	if r.key.Valid {
		r.keyValue = r.key.String
		c.DirectKey = &r.keyValue
	}
	mb.UserID, mb.ChatID = me, c.ID
	mb.Role = membership.Role(r.mbRole)
	mb.LastReadAt = r.readAt.ptr()
	if r.readID.Valid {
		mb.LastReadMessageID = &r.readID.UUID
	}
	mb.Muted = r.muted.Bool
	// The inbox's order is the membership's copy of last_message_at, which is
	// the chat's, or the joining time for a member who joined after the last
	// message.
	at := c.LastMessageAt
	if r.order.Valid {
		mb.ChatLastMessageAt, at = r.order.Time, r.order.Time
	}
	e := InboxEntry{Chat: c, Membership: mb, Unread: int(r.unread), Cursor: encodeCursor(cursorInboxV1, position{at: at, id: c.ID})}
	if r.msgID.Valid {
		m.ID, m.ChatID = r.msgID.UUID, c.ID
		if r.sender.Valid {
			m.SenderID = &r.sender.UUID
		}
		m.Role = message.Role(r.msgRole.String)
		m.Content = r.content.String
		m.Metadata = r.metadata
		if r.replyTo.Valid {
			m.ReplyToID = &r.replyTo.UUID
		}
		if r.msgCreated.Valid {
			m.CreatedAt = r.msgCreated.Time
		}
		m.EditedAt = r.edited.ptr()
		m.DeletedAt = r.gone.ptr()
		e.LastMessage = present(m)
	}
	return e, nil
}

// timeScan scans a time whichever way the driver returns it: time.Time from
// pgx, lib/pq and modernc.org/sqlite for columns declared as times, text from
// SQLite where the declared type is lost (expressions, some subqueries).
type timeScan time.Time

func (t *timeScan) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*t = timeScan(v.UTC())
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	default:
		return fmt.Errorf("store: scan time from %T", src)
	}
}

// sqliteTimeLayouts are the layouts modernc.org/sqlite writes and reads.
var sqliteTimeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	time.RFC3339Nano,
}

func (t *timeScan) parse(s string) error {
	s = strings.TrimSuffix(s, "Z")
	for _, layout := range sqliteTimeLayouts {
		if v, err := time.Parse(layout, s); err == nil {
			*t = timeScan(v.UTC())
			return nil
		}
	}
	return fmt.Errorf("store: scan time: unrecognised format")
}

// nullTime is a nullable timeScan.
type nullTime struct {
	Time  time.Time
	Valid bool
}

func (n *nullTime) Scan(src any) error {
	if src == nil {
		*n = nullTime{}
		return nil
	}
	n.Valid = true
	return (*timeScan)(&n.Time).Scan(src)
}

// ptr returns a pointer to n's time, or nil for NULL. It points into n: scan
// into a fresh nullTime for every value that must outlive the next scan.
func (n *nullTime) ptr() *time.Time {
	if !n.Valid {
		return nil
	}
	return &n.Time
}
