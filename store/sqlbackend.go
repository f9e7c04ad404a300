package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/rule"
)

// sqlBackend runs the hot operations as hand-written statements, one per
// operation where the dialect allows, on the pool without ent's query builder
// (which costs about a hundred allocations per operation and, for an append,
// seven round trips more). Each statement carries its access rule in its WHERE
// clause, rendered once per dialect from package rule, the builders the ent
// policies use: see statements.
//
// Values are scanned straight into the store's own types.
type sqlBackend struct {
	db     *database.DB
	client *ent.Client
	st     *statements
	// pgx is whether the driver is pgx, which takes UUID arguments as [16]byte.
	pgx bool
}

func newSQLBackend(db *database.DB) *sqlBackend {
	b := &sqlBackend{db: db, client: db.Client(), pgx: db.Driver() == database.DriverPgx}
	if db.Dialect() == database.Postgres {
		b.st = postgresStatements
	} else {
		b.st = sqliteStatements
	}
	return b
}

// statements are the hand-written statements of one dialect. Placeholders are
// $n on both: modernc.org/sqlite binds $NNN by position, so a statement may use
// one twice.
type statements struct {
	postgres bool
	// getUser reads a live user by $1; getUserAs also checks rule.CanReadUser
	// for the viewer $2.
	getUser, getUserAs string
	// history holds the history statements: index [before][after][oldest][user].
	history [2][2][2][2]string
	// chatVisible says whether chat $1 exists and may be read by the viewer $2
	// (rule.CanReadChat); chatExists, whether it exists (the system viewer).
	chatVisible, chatExists string
	// markRead moves the read position; see renderStatements.
	markRead, markReadFind string
	// append holds the append statements on PostgreSQL: [assistantOnly] for a
	// user viewer, and the system viewer's.
	appendUser   [2]string
	appendSystem string
	// appendChat is the first statement of an append on SQLite: the chat, and
	// whether the viewer may append to it; [assistantOnly] for a user viewer.
	appendChatUser   [2]string
	appendChatSystem string
	// inbox holds the inbox statements: [with a keyset].
	inbox [2]string
}

var (
	postgresStatements = renderStatements(database.Postgres)
	sqliteStatements   = renderStatements(database.SQLite)
)

// knownChat is the Row of table alias a in a statement whose chat is the
// parameter param: the rules read its chat ID from the parameter, so that
// their subqueries do not depend on the row and run once per statement.
func knownChat(a, idColumn, param string) rule.Row {
	row := rule.Alias(a)
	return func(c string) any {
		if c == idColumn {
			return rule.Ref(param)
		}
		return row(c)
	}
}

func renderStatements(dialect string) *statements {
	pg := dialect == database.Postgres
	st := &statements{postgres: pg}
	render := func(p *entsql.Predicate) string { return rule.Render(dialect, p) }

	st.getUser = `SELECT u.id, u.created_at, u.updated_at, u.email, u.display_name, u.status
FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL`
	st.getUserAs = st.getUser + ` AND ` + render(rule.CanReadUser(rule.Alias("u"), rule.Ref("$2")))

	for b := range 2 {
		for a := range 2 {
			for o := range 2 {
				for u := range 2 {
					st.history[b][a][o][u] = renderHistory(render, b == 1, a == 1, o == 1, u == 1)
				}
			}
		}
	}

	st.chatExists = `SELECT EXISTS (SELECT 1 FROM chats c WHERE c.id = $1)`
	st.chatVisible = `SELECT EXISTS (SELECT 1 FROM chats c WHERE c.id = $1 AND ` +
		render(rule.CanReadChat(knownChat("c", "id", "$1"), rule.Ref("$2"))) + `)`

	// MarkRead: viewer $1, chat $2, message $3. The message must be one the
	// viewer may read (rule.CanReadMessage, which is rule.Member of its chat),
	// and the membership written one the viewer may write
	// (rule.CanUpdateOwnMembership: rule.Own, and the same rule.Member, which
	// the message's check has established for the chat); the position only
	// moves forward.
	readable := render(rule.CanReadMessage(knownChat("m", "chat_id", "$2"), rule.Ref("$1")))
	ownRow := render(rule.Own(rule.Alias("memberships"), rule.Ref("$1")))
	if pg {
		// One statement: it answers one row when the message is found, whether
		// or not the position moved.
		st.markRead = `WITH m AS (
  SELECT m.id, m.seq FROM messages m
  WHERE m.id = $3 AND m.chat_id = $2 AND ` + readable + `),
u AS (
  UPDATE memberships SET read_seq = m.seq, last_read_message_id = m.id
  FROM m
  WHERE memberships.chat_id = $2 AND ` + ownRow + ` AND memberships.read_seq < m.seq)
SELECT 1 FROM m`
	} else {
		// Two statements: the message's seq, then the conditional UPDATE with
		// it as $4, both in one transaction so that the membership rule the
		// first established still holds for the second.
		st.markReadFind = `SELECT m.seq FROM messages m WHERE m.id = $3 AND m.chat_id = $2 AND ` + readable
		st.markRead = `UPDATE memberships SET read_seq = $4, last_read_message_id = $3
WHERE memberships.chat_id = $2 AND ` + ownRow + ` AND memberships.read_seq < $4`
	}

	chatRow := knownChat("c", "id", "$2")
	if pg {
		// rule.MayAppend is rule.CanReadChat, which decides whether the chat is
		// there at all, and rule.Appendable, which decides may.
		for ao := range 2 {
			st.appendUser[ao] = fmt.Sprintf(pgAppendTemplate,
				render(rule.Appendable(chatRow, rule.Ref("$9"), ao == 1)),
				" AND "+render(rule.CanReadChat(chatRow, rule.Ref("$9"))),
				render(rule.ReplyInChat(rule.Ref("$7"), rule.Ref("$2"))))
		}
		st.appendSystem = fmt.Sprintf(pgAppendTemplate, "true", "",
			render(rule.ReplyInChat(rule.Ref("$7"), rule.Ref("$2"))))
	} else {
		chatRow := knownChat("c", "id", "$1")
		for ao := range 2 {
			st.appendChatUser[ao] = `SELECT c.last_seq, c.last_message_at, c.large, ` +
				render(rule.Appendable(chatRow, rule.Ref("$2"), ao == 1)) +
				` FROM chats c WHERE c.id = $1 AND ` + render(rule.CanReadChat(chatRow, rule.Ref("$2")))
		}
		st.appendChatSystem = `SELECT c.last_seq, c.last_message_at, c.large, 1 FROM chats c WHERE c.id = $1 AND c.deleted_at IS NULL`
	}

	own := render(rule.OwnMembership(rule.Alias("mb"), rule.Alias("c"), rule.Ref("$1")))
	st.inbox[0] = inboxSQL(pg, own, false)
	st.inbox[1] = inboxSQL(pg, own, true)
	return st
}

// pgAppendTemplate is the append on PostgreSQL: one statement, its own
// transaction, no BEGIN or COMMIT. Parameters: $1 the message ID, $2 the chat,
// $3 the sender, $4 the role, $5 the content, $6 the metadata, $7 the message
// replied to, $8 now, and $9 the user viewer. c locks the chat's row when the
// viewer may read it (the second verb: rule.CanReadChat, or nothing for the
// system) and says in may whether the viewer may append to it (the first:
// rule.Appendable); ins inserts the message at the chat's next seq, created no
// earlier than the chat's last message, unless its ID is stored already (a
// retry: the chat's lock makes racing retries wait for each other's commit,
// and ON CONFLICT sees it) or the reply is outside the chat (the third:
// rule.ReplyInChat). bump moves the chat's sequence and time to the message;
// sender moves the sender's read position to it (a member's own messages are
// never unread); fanout moves the other members' copy of the chat's time (the
// inbox's order), in chats that are not large only: an append writes one row
// per member up to the store's fan-out limit, and none beyond. The answer is
// one row when the chat is visible: may, and the new seq and created_at when a
// row was inserted.
const pgAppendTemplate = `WITH c AS (
  SELECT c.id, c.last_seq, c.last_message_at, c.large, %s AS may
  FROM chats c
  WHERE c.id = $2::uuid AND c.deleted_at IS NULL%s
  FOR UPDATE OF c),
ins AS (
  INSERT INTO messages (id, chat_id, seq, sender_id, role, content, metadata, reply_to_id, created_at)
  SELECT $1::uuid, c.id, c.last_seq + 1, $3::uuid, $4::varchar, $5::text, $6::jsonb, $7::uuid,
    GREATEST($8::timestamptz, c.last_message_at)
  FROM c
  WHERE c.may AND ($7::uuid IS NULL OR %s)
  ON CONFLICT (id) DO NOTHING
  RETURNING chat_id, seq, created_at),
bump AS (
  UPDATE chats SET last_seq = ins.seq, last_message_at = ins.created_at, updated_at = ins.created_at
  FROM ins WHERE chats.id = ins.chat_id),
sender AS (
  UPDATE memberships SET read_seq = ins.seq, last_read_message_id = $1::uuid,
    chat_last_message_at = CASE WHEN memberships.large THEN memberships.chat_last_message_at ELSE ins.created_at END
  FROM ins WHERE memberships.chat_id = ins.chat_id AND memberships.user_id = $3::uuid),
fanout AS (
  UPDATE memberships SET chat_last_message_at = ins.created_at
  FROM ins, c
  WHERE NOT c.large AND memberships.chat_id = ins.chat_id AND NOT memberships.large
    AND memberships.user_id IS DISTINCT FROM $3::uuid)
SELECT c.may, ins.seq, ins.created_at FROM c LEFT JOIN ins ON true`

// messageColumns are the columns messageRow.scan reads, in its order, for
// table alias m.
const messageColumns = `m.id, m.seq, m.sender_id, m.role, m.content, m.metadata, m.reply_to_id, m.created_at, m.edited_at, m.deleted_at`

// storedMessage reads a message by ID whatever the viewer: the failure path of
// an append, to tell a retry (the same message, in the chat the caller named
// and may read) from a conflict.
const storedMessage = `SELECT ` + messageColumns + `, m.chat_id FROM messages m WHERE m.id = $1`

// renderHistory returns a history statement: chat $1, then the cursors' seqs,
// then the user viewer, then the limit. The read rule is given the chat as the
// parameter, so PostgreSQL runs it once, before the range scan of
// messages_chat_seq_key.
func renderHistory(render func(*entsql.Predicate) string, before, after, oldest, asUser bool) string {
	var b strings.Builder
	n := 1
	next := func() string {
		n++
		return "$" + strconv.Itoa(n)
	}
	b.WriteString("SELECT " + messageColumns + " FROM messages m WHERE m.chat_id = $1")
	if before {
		b.WriteString(" AND m.seq < " + next())
	}
	if after {
		b.WriteString(" AND m.seq > " + next())
	}
	if asUser {
		b.WriteString(" AND " + render(rule.CanReadMessage(knownChat("m", message.FieldChatID, "$1"), rule.Ref(next()))))
	}
	if oldest {
		b.WriteString(" ORDER BY m.seq")
	} else {
		b.WriteString(" ORDER BY m.seq DESC")
	}
	b.WriteString(" LIMIT " + next())
	return b.String()
}

// inboxMembershipColumns, inboxChatColumns and inboxMessageColumns are the
// columns the inbox statement returns, in inboxRow.scan's order: the viewer's
// membership and the entry's time, the chat, the last message; the unread
// count follows them.
const (
	inboxMembershipColumns = `p.mb_id, p.role, p.joined_at, p.read_seq, p.last_read_message_id, p.muted, p.activity`
	inboxChatColumns       = `c.id, c.created_at, c.updated_at, c.kind, c.title, c.created_by, c.last_message_at, c.last_seq, c.archived_at`
	inboxMessageColumns    = `lm.id, lm.seq, lm.sender_id, lm.role, lm.content, lm.metadata, lm.reply_to_id, lm.created_at, lm.edited_at, lm.deleted_at`
)

// inboxSQL returns the inbox statement: one statement, whose cost grows
// neither with the number of the viewer's chats nor with their backlogs. The
// page is the merge of two parts, each of the viewer's memberships of live
// chats (rule.OwnMembership): those of chats that are not large, read in
// order from memberships_user_inbox_idx (their copy of the chat's time is
// current), and those of large chats, whose times are read from chats, one
// probe each (memberships_user_large_idx). Each part stops at the page size;
// only the page's rows get a last message (one probe of messages_chat_seq_key
// at the chat's last_seq) and an unread count (the chat's last_seq minus the
// member's read_seq: no message is read). Parameters: $1 the viewer, $2 the
// limit, and the keyset's $3 and $4.
func inboxSQL(pg bool, own string, keyset bool) string {
	greatest := "max"
	if pg {
		greatest = "GREATEST"
	}
	part := func(large bool) string {
		activity := "mb.chat_last_message_at"
		cond := " AND NOT mb.large"
		if large {
			activity = greatest + "(c.last_message_at, mb.chat_last_message_at)"
			cond = " AND mb.large"
		}
		q := `SELECT mb.id AS mb_id, mb.chat_id, mb.role, mb.joined_at, mb.read_seq, mb.last_read_message_id, mb.muted,
    ` + activity + ` AS activity
  FROM memberships mb JOIN chats c ON c.id = mb.chat_id
  WHERE ` + own + cond
		if keyset {
			q += ` AND (` + activity + `, mb.chat_id) < ($3, $4)`
		}
		return q + `
  ORDER BY activity DESC, mb.chat_id DESC
  LIMIT $2`
	}
	return `WITH small AS (
  ` + part(false) + `),
large AS (
  ` + part(true) + `),
p AS (
  SELECT * FROM small UNION ALL SELECT * FROM large
  ORDER BY activity DESC, chat_id DESC
  LIMIT $2)
SELECT ` + inboxMembershipColumns + `,
  ` + inboxChatColumns + `,
  ` + inboxMessageColumns + `,
  ` + greatest + `(c.last_seq - p.read_seq, 0)
FROM p
JOIN chats c ON c.id = p.chat_id
LEFT JOIN messages lm ON lm.chat_id = c.id AND lm.seq = c.last_seq
ORDER BY p.activity DESC, p.chat_id DESC`
}

// read runs a read of the store's own that tolerates staleness, on a replica
// when ctx allows it (database.DB.ReadClient), through the ent client's
// driver rather than the pool directly, so that Config.LogQueries logs it
// like every other.
func (b *sqlBackend) read(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return b.db.ReadClient(ctx).QueryContext(ctx, q, args...)
}

// queryRow runs q and scans its first row into dest: sql.ErrNoRows when it has
// none.
func queryRow(ctx context.Context, c interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args []any, dest ...any) error {
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// id returns id as the driver takes it best (see idValue).
func (b *sqlBackend) id(id uuid.UUID) any { return idValue(b.pgx, id) }

// idValue returns id as the driver takes it best: pgx encodes a [16]byte as a
// uuid directly, while a uuid.UUID goes through its driver.Valuer (a string,
// parsed again); lib/pq and SQLite take the string.
func idValue(pgx bool, id uuid.UUID) any {
	if pgx {
		return [16]byte(id)
	}
	return id
}

// nullID is id with NULL for the zero UUID.
func (b *sqlBackend) nullID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return b.id(id)
}

func (b *sqlBackend) getUser(ctx context.Context, a actor, id uuid.UUID) (*User, error) {
	q, args := b.st.getUserAs, []any{b.id(id), b.id(a.id)}
	if a.system {
		q, args = b.st.getUser, args[:1]
	}
	u := new(User)
	var status string
	err := queryRow(ctx, b.db.ReadClient(ctx), q, args, &u.ID, (*timeScan)(&u.CreatedAt), (*timeScan)(&u.UpdatedAt), &u.Email, &u.DisplayName, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user")
	}
	if err != nil {
		return nil, err
	}
	u.Status = user.Status(status)
	return u, nil
}

func (b *sqlBackend) appendMessage(ctx context.Context, a actor, m NewMessage, assistantOnly bool, now time.Time) (*Message, error) {
	var metadata any
	if !m.Metadata.IsZero() {
		var err error
		if metadata, err = m.Metadata.Value(); err != nil {
			return nil, invalid("Message.metadata", err)
		}
	}
	if b.st.postgres {
		return b.pgAppend(ctx, a, m, metadata, assistantOnly, now)
	}
	return b.sqliteAppend(ctx, a, m, metadata, assistantOnly, now)
}

// pgAppend is the append on PostgreSQL: one statement, and on its failure path
// one SELECT more to say why nothing was inserted.
func (b *sqlBackend) pgAppend(ctx context.Context, a actor, m NewMessage, metadata any, assistantOnly bool, now time.Time) (*Message, error) {
	args := make([]any, 8, 9)
	args[0], args[1], args[2] = b.id(m.ID), b.id(m.ChatID), b.nullID(m.SenderID)
	args[3], args[4], args[5], args[6], args[7] = string(m.Role), m.Content, metadata, b.nullID(m.ReplyTo), now
	q := b.st.appendSystem
	if !a.system {
		q = b.st.appendUser[boolIndex(assistantOnly)]
		args = append(args, b.id(a.id))
	}
	var (
		may bool
		seq sql.NullInt64
		at  sql.NullTime
	)
	err := queryRow(ctx, b.client, q, args, &may, &seq, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, notFound("chat")
	case err != nil:
		return nil, err
	case seq.Valid:
		return appended(m, seq.Int64, at.Time), nil
	}
	// Nothing inserted: the ID is stored (a retry, or a conflict), the viewer may
	// not append, or the reply points outside the chat. Answered in that order,
	// as the ent backend's transaction does.
	return b.whyNotAppended(ctx, b.client, m, may)
}

// sqliteAppend is the append on SQLite: a transaction (BEGIN IMMEDIATE, so it
// holds the database's write lock from the start) of the chat's SELECT under
// the rules, the ID's, the INSERT at the chat's next seq, and the bumps of the
// chat, the sender's read position and, in a chat that is not large, the
// members' copies of its time: what the PostgreSQL statement does.
func (b *sqlBackend) sqliteAppend(ctx context.Context, a actor, m NewMessage, metadata any, assistantOnly bool, now time.Time) (*Message, error) {
	var out *Message
	err := b.db.WithTxContext(ctx, func(ctx context.Context, etx *ent.Tx) error {
		tx := etx.Client()
		q, args := b.st.appendChatSystem, []any{b.id(m.ChatID)}
		if !a.system {
			q, args = b.st.appendChatUser[boolIndex(assistantOnly)], append(args, b.id(a.id))
		}
		var (
			lastSeq    int64
			last       timeScan
			large, may bool
		)
		err := queryRow(ctx, tx, q, args, &lastSeq, &last, &large, &may)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("chat")
		}
		if err != nil {
			return err
		}
		var stored bool
		if err := queryRow(ctx, tx, `SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1)`, []any{b.id(m.ID)}, &stored); err != nil {
			return err
		}
		if stored || !may {
			out, err = b.whyNotAppended(ctx, tx, m, may)
			return err
		}
		if m.ReplyTo != uuid.Nil {
			var ok bool
			if err := queryRow(ctx, tx, `SELECT `+rule.Render(database.SQLite, rule.ReplyInChat(rule.Ref("$1"), rule.Ref("$2"))),
				[]any{b.id(m.ReplyTo), b.id(m.ChatID)}, &ok); err != nil {
				return err
			}
			if !ok {
				return errReplyOutside()
			}
		}
		seq, at := lastSeq+1, laterOf(now, time.Time(last))
		if _, err := tx.ExecContext(ctx, `INSERT INTO messages (id, chat_id, seq, sender_id, role, content, metadata, reply_to_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			b.id(m.ID), b.id(m.ChatID), seq, b.nullID(m.SenderID), string(m.Role), m.Content, metadata, b.nullID(m.ReplyTo), at); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE chats SET last_seq = $2, last_message_at = $3, updated_at = $3 WHERE id = $1`,
			b.id(m.ChatID), seq, at); err != nil {
			return err
		}
		if m.SenderID != uuid.Nil {
			if _, err := tx.ExecContext(ctx, `UPDATE memberships SET read_seq = $3, last_read_message_id = $4,
  chat_last_message_at = CASE WHEN large THEN chat_last_message_at ELSE $5 END
WHERE chat_id = $1 AND user_id = $2`, b.id(m.ChatID), b.id(m.SenderID), seq, b.id(m.ID), at); err != nil {
				return err
			}
		}
		if !large {
			if _, err := tx.ExecContext(ctx, `UPDATE memberships SET chat_last_message_at = $2
WHERE chat_id = $1 AND NOT large AND user_id IS NOT $3`, b.id(m.ChatID), at, b.nullID(m.SenderID)); err != nil {
				return err
			}
		}
		out = appended(m, seq, at)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// whyNotAppended answers an append that inserted nothing into a chat the viewer
// may read: the stored message when its ID holds the same message (a retry),
// ErrConflict when it holds another, ErrForbidden when the viewer may not
// append, and a reply outside the chat otherwise.
func (b *sqlBackend) whyNotAppended(ctx context.Context, c interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, m NewMessage, may bool) (*Message, error) {
	rows, err := c.QueryContext(ctx, storedMessage, b.id(m.ID))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if rows.Next() {
		r := new(messageRow)
		if err := r.scan(rows, true); err != nil {
			return nil, err
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if !sameMessage(&r.m, m) {
			return nil, errStoredOther(m.ID)
		}
		return &r.m, nil
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !may {
		return nil, errCannotAppend()
	}
	return nil, errReplyOutside()
}

// appended is the message an append of m stored at seq and at.
func appended(m NewMessage, seq int64, at time.Time) *Message {
	return &Message{ID: m.ID, ChatID: m.ChatID, Seq: seq, SenderID: m.SenderID, Role: m.Role, Content: m.Content,
		Metadata: m.Metadata, ReplyTo: m.ReplyTo, CreatedAt: at.UTC()}
}

// laterOf returns the later of now and last, in UTC to the microsecond: the
// created_at of a chat's next message, never before the chat's last.
func laterOf(now, last time.Time) time.Time {
	if last.After(now) {
		now = last
	}
	return now.UTC().Truncate(time.Microsecond)
}

func (b *sqlBackend) history(ctx context.Context, a actor, chatID uuid.UUID, r historyRange) ([]*Message, error) {
	args := make([]any, 1, 7)
	args[0] = b.id(chatID)
	var bi, ai, oi, ui int
	if r.before != nil {
		bi = 1
		args = append(args, r.before.seq)
	}
	if r.after != nil {
		ai = 1
		args = append(args, r.after.seq)
	}
	if r.oldest {
		oi = 1
	}
	if !a.system {
		ui = 1
		args = append(args, b.id(a.id))
	}
	args = append(args, r.limit+1)
	rows, err := b.read(ctx, b.st.history[bi][ai][oi][ui], args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// One allocation for the page's messages and their scan targets, instead
	// of a few per message.
	slab := make([]messageRow, r.limit+1)
	msgs := make([]*Message, 0, r.limit+1)
	for rows.Next() {
		i := len(msgs)
		if i == len(slab) {
			break
		}
		row := &slab[i]
		if err := row.scan(rows, false); err != nil {
			return nil, err
		}
		row.m.ChatID = chatID
		msgs = append(msgs, &row.m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return msgs, nil
}

func (b *sqlBackend) chatVisible(ctx context.Context, a actor, chatID uuid.UUID) (bool, error) {
	var ok bool
	var err error
	if a.system {
		err = queryRow(ctx, b.db.ReadClient(ctx), b.st.chatExists, []any{b.id(chatID)}, &ok)
	} else {
		err = queryRow(ctx, b.db.ReadClient(ctx), b.st.chatVisible, []any{b.id(chatID), b.id(a.id)}, &ok)
	}
	return ok, err
}

func (b *sqlBackend) markRead(ctx context.Context, me, chatID, messageID uuid.UUID) error {
	args := []any{b.id(me), b.id(chatID), b.id(messageID)}
	if b.st.postgres {
		// Sent as an exec: the command tag of its SELECT counts the rows found,
		// and no result set needs reading.
		res, err := b.client.ExecContext(ctx, b.st.markRead, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("message")
		}
		return nil
	}
	return b.db.WithTxContext(ctx, func(ctx context.Context, tx *ent.Tx) error {
		var seq int64
		err := queryRow(ctx, tx.Client(), b.st.markReadFind, args, &seq)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("message")
		}
		if err != nil {
			return err
		}
		_, err = tx.Client().ExecContext(ctx, b.st.markRead, append(args, seq)...)
		return err
	})
}

func (b *sqlBackend) inbox(ctx context.Context, me uuid.UUID, before *position, limit int) ([]InboxEntry, error) {
	args := []any{b.id(me), limit}
	q := b.st.inbox[0]
	if before != nil {
		q = b.st.inbox[1]
		args = append(args, before.at, b.id(before.id))
	}
	rows, err := b.read(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	entries := make([]InboxEntry, 0, limit)
	// One allocation for every row's values and scan targets.
	slab := make([]inboxRow, limit)
	for rows.Next() {
		if len(entries) == limit {
			break
		}
		e, err := slab[len(entries)].scan(rows, me)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return entries, nil
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// messageRow holds one message read by messageColumns and the targets it is
// scanned into, so that a page of them is one allocation.
type messageRow struct {
	m               Message
	sender, replyTo uuid.NullUUID
	role            string
	content         sql.NullString
	created         timeScan
	edited, deleted nullTime
}

// scan reads messageColumns, and the chat's ID after them when withChat, into
// r.m.
func (r *messageRow) scan(rows *sql.Rows, withChat bool) error {
	m := &r.m
	dest := [11]any{&m.ID, &m.Seq, &r.sender, &r.role, &r.content, &m.Metadata, &r.replyTo, &r.created, &r.edited, &r.deleted, &m.ChatID}
	n := 10
	if withChat {
		n = 11
	}
	if err := rows.Scan(dest[:n]...); err != nil {
		return err
	}
	m.Role = message.Role(r.role)
	m.SenderID, m.ReplyTo = r.sender.UUID, r.replyTo.UUID
	m.Content = r.content.String
	m.CreatedAt = time.Time(r.created)
	m.EditedAt, m.DeletedAt = r.edited.ptr(), r.deleted.ptr()
	return nil
}

// inboxRow holds one row of the inbox statement: the values it becomes and the
// targets it is scanned into, so that a page costs one allocation for all of
// them rather than a few dozen per row.
type inboxRow struct {
	c  Chat
	mb Membership
	m  Message

	kind, mbRole                   string
	title, msgRole, content        sql.NullString
	readID, msgID, sender, replyTo uuid.NullUUID
	msgSeq                         sql.NullInt64
	unread                         int64
	activity                       timeScan
	archived, msgCreated           nullTime
	edited, gone                   nullTime
}

// scan reads one row of the inbox statement into r and returns its entry, whose
// values point into r.
func (r *inboxRow) scan(rows *sql.Rows, me uuid.UUID) (InboxEntry, error) {
	c, mb, m := &r.c, &r.mb, &r.m
	err := rows.Scan(
		&mb.ID, &r.mbRole, (*timeScan)(&mb.JoinedAt), &mb.ReadSeq, &r.readID, &mb.Muted, &r.activity,
		&c.ID, (*timeScan)(&c.CreatedAt), (*timeScan)(&c.UpdatedAt), &r.kind, &r.title, &c.CreatedBy,
		(*timeScan)(&c.LastMessageAt), &c.LastSeq, &r.archived,
		&r.msgID, &r.msgSeq, &r.sender, &r.msgRole, &r.content, &m.Metadata, &r.replyTo, &r.msgCreated, &r.edited, &r.gone,
		&r.unread,
	)
	if err != nil {
		return InboxEntry{}, err
	}
	c.Kind = chat.Kind(r.kind)
	c.Title = r.title.String
	c.ArchivedAt = r.archived.ptr()
	mb.UserID, mb.ChatID = me, c.ID
	mb.Role = membership.Role(r.mbRole)
	if r.readID.Valid {
		mb.LastReadMessageID = &r.readID.UUID
	}
	at := time.Time(r.activity)
	e := InboxEntry{Chat: c, Membership: mb, Unread: int(r.unread), Activity: at,
		Cursor: encodeCursor(cursorInboxV1, position{at: at, id: c.ID})}
	if r.msgID.Valid {
		m.ID, m.ChatID, m.Seq = r.msgID.UUID, c.ID, r.msgSeq.Int64
		m.SenderID, m.ReplyTo = r.sender.UUID, r.replyTo.UUID
		m.Role = message.Role(r.msgRole.String)
		m.Content = r.content.String
		if r.msgCreated.Valid {
			m.CreatedAt = r.msgCreated.Time
		}
		m.EditedAt = r.edited.ptr()
		m.DeletedAt = r.gone.ptr()
		e.LastMessage = m
	}
	return e, nil
}
