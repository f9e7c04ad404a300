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
	// markRead moves the read position; see renderMarkRead.
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
					st.history[b][a][o][u] = renderHistory(pg, render, b == 1, a == 1, o == 1, u == 1)
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
  SELECT m.id, m.created_at FROM messages m
  WHERE m.id = $3 AND m.chat_id = $2 AND ` + readable + `),
u AS (
  UPDATE memberships SET last_read_at = m.created_at, last_read_message_id = m.id
  FROM m
  WHERE memberships.chat_id = $2 AND ` + ownRow + `
    AND (memberships.last_read_at IS NULL OR (memberships.last_read_at, memberships.last_read_message_id) < (m.created_at, m.id)))
SELECT 1 FROM m`
	} else {
		// Two statements: the message's position, then the conditional UPDATE
		// with it as $4, both in one transaction so that the membership rule
		// the first established still holds for the second.
		st.markReadFind = `SELECT m.created_at FROM messages m WHERE m.id = $3 AND m.chat_id = $2 AND ` + readable
		st.markRead = `UPDATE memberships SET last_read_at = $4, last_read_message_id = $3
WHERE memberships.chat_id = $2 AND ` + ownRow + `
  AND (memberships.last_read_at IS NULL OR (memberships.last_read_at, memberships.last_read_message_id) < ($4, $3))`
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
			st.appendChatUser[ao] = `SELECT c.last_message_at, ` +
				render(rule.Appendable(chatRow, rule.Ref("$2"), ao == 1)) +
				` FROM chats c WHERE c.id = $1 AND ` + render(rule.CanReadChat(chatRow, rule.Ref("$2")))
		}
		st.appendChatSystem = `SELECT c.last_message_at, 1 FROM chats c WHERE c.id = $1 AND c.deleted_at IS NULL`
	}

	own := render(rule.OwnMembership(rule.Alias("mb"), rule.Alias("c"), rule.Ref("$1")))
	st.inbox[0] = inboxSQL(pg, own, "")
	st.inbox[1] = inboxSQL(pg, own, " AND (mb.chat_last_message_at, mb.chat_id) < ($5, $6)")
	return st
}

// pgAppendTemplate is the append on PostgreSQL: one statement, its own
// transaction, no BEGIN or COMMIT. Parameters: $1 the message ID, $2 the chat,
// $3 the sender, $4 the role, $5 the content, $6 the metadata, $7 the message
// replied to, $8 now, and $9 the user viewer. c locks the chat's row when the
// viewer may read it (the second verb: rule.CanReadChat, or nothing for the
// system) and says in may whether the viewer may append to it (the first:
// rule.MayAppend); ins inserts the message 1µs after the chat's last message if
// the clock has not passed it, unless its ID is stored already (a retry: the
// chat's lock makes racing retries wait for each other's commit, and ON
// CONFLICT sees it) or the reply is outside the chat (the third:
// rule.ReplyInChat). bump moves the chat's last_message_at to the new message,
// and bump_members the copy of it each membership keeps for the inbox. The
// answer is one row when the chat is visible: may, and the new created_at when
// a row was inserted.
const pgAppendTemplate = `WITH c AS (
  SELECT c.id, c.last_message_at, %s AS may
  FROM chats c
  WHERE c.id = $2::uuid AND c.deleted_at IS NULL%s
  FOR UPDATE OF c),
ins AS (
  INSERT INTO messages (id, chat_id, sender_id, role, content, metadata, reply_to_id, created_at)
  SELECT $1::uuid, c.id, $3::uuid, $4::varchar, $5::text, $6::jsonb, $7::uuid,
    GREATEST($8::timestamptz, c.last_message_at + interval '1 microsecond')
  FROM c
  WHERE c.may AND ($7::uuid IS NULL OR %s)
  ON CONFLICT (id) DO NOTHING
  RETURNING chat_id, created_at),
bump AS (
  UPDATE chats SET last_message_at = ins.created_at, updated_at = $8::timestamptz
  FROM ins WHERE chats.id = ins.chat_id),
bump_members AS (
  UPDATE memberships SET chat_last_message_at = ins.created_at
  FROM ins WHERE memberships.chat_id = ins.chat_id)
SELECT c.may, ins.created_at FROM c LEFT JOIN ins ON true`

// messageColumns are the columns messageRow.scan reads, in its order, for
// table alias m.
const messageColumns = `m.id, m.sender_id, m.role, m.content, m.metadata, m.reply_to_id, m.created_at, m.edited_at, m.deleted_at`

// storedMessage reads a message by ID whatever the viewer: the failure path of
// an append, to tell a retry (the same message, in the chat the caller named
// and may read) from a conflict.
const storedMessage = `SELECT ` + messageColumns + `, m.chat_id FROM messages m WHERE m.id = $1`

// renderHistory returns a history statement: chat $1, then the cursors' (at,
// id) pairs, then the user viewer, then the limit. The read rule is given the
// chat as the parameter, so PostgreSQL runs it once, before the range scan of
// messages_chat_created_id_idx.
func renderHistory(pg bool, render func(*entsql.Predicate) string, before, after, oldest, asUser bool) string {
	var b strings.Builder
	n := 1
	next := func(cast string) string {
		n++
		if pg {
			return "$" + strconv.Itoa(n) + cast
		}
		return "$" + strconv.Itoa(n)
	}
	b.WriteString("SELECT " + messageColumns + " FROM messages m WHERE m.chat_id = $1")
	if before {
		b.WriteString(" AND (m.created_at, m.id) < (" + next("::timestamptz") + ", " + next("::uuid") + ")")
	}
	if after {
		b.WriteString(" AND (m.created_at, m.id) > (" + next("::timestamptz") + ", " + next("::uuid") + ")")
	}
	if asUser {
		b.WriteString(" AND " + render(rule.CanReadMessage(knownChat("m", message.FieldChatID, "$1"), rule.Ref(next("")))))
	}
	if oldest {
		b.WriteString(" ORDER BY m.created_at, m.id")
	} else {
		b.WriteString(" ORDER BY m.created_at DESC, m.id DESC")
	}
	b.WriteString(" LIMIT " + next(""))
	return b.String()
}

// inboxChatColumns and inboxMessageColumns are the columns the inbox query
// returns, in inboxRow.scan's order: the chat and the viewer's membership, then
// the last message; the unread count follows them.
const inboxChatColumns = `p.id, p.created_at, p.updated_at, p.kind, p.title, p.created_by,
	p.last_message_at, p.archived_at,
	p.mb_id, p.mb_role, p.mb_joined_at, p.mb_last_read_at, p.mb_last_read_message_id, p.mb_muted, p.mb_chat_last_message_at`

const inboxMessageColumns = `lm.id, lm.sender_id, lm.role, lm.content, lm.metadata, lm.reply_to_id,
	lm.created_at, lm.edited_at, lm.deleted_at`

// inboxSQL returns the inbox statement: one statement, whatever the number of
// chats. The page of chats is chosen first (the viewer's memberships of live
// chats, rule.OwnMembership, in order from memberships_user_inbox_idx, joined to
// chats: no sort, so the cost does not grow with the number of the viewer's
// chats), and only its rows get a last message and an unread count, each a
// range over messages_chat_created_id_idx. PostgreSQL reads them with LATERAL
// joins; SQLite, which has none, with correlated subqueries. Parameters: $1
// the viewer, $2 the limit, $3 and $4 "before everything" (see below), and
// the keyset's $5 and $6.
func inboxSQL(pg bool, own, keyset string) string {
	pageSQL := `SELECT c.id, c.created_at, c.updated_at, c.kind, c.title, c.created_by,
		c.last_message_at, c.archived_at,
		mb.id AS mb_id, mb.role AS mb_role, mb.joined_at AS mb_joined_at, mb.last_read_at AS mb_last_read_at,
		mb.last_read_message_id AS mb_last_read_message_id, mb.muted AS mb_muted,
		mb.chat_last_message_at AS mb_chat_last_message_at%s
	FROM memberships mb
	JOIN chats c ON c.id = mb.chat_id
	WHERE ` + own + keyset + `
	ORDER BY mb.chat_last_message_at DESC, mb.chat_id DESC
	LIMIT $2`
	// Messages after the read position, not the viewer's, not deleted. $3 and
	// $4 stand for "before everything" where the viewer has read nothing:
	// COALESCE with them keeps the condition a single row comparison, which the
	// index serves as a range; an OR with IS NULL would not be.
	const unread = `SELECT count(*) FROM messages m
		WHERE m.chat_id = p.id AND m.deleted_at IS NULL
		AND (m.sender_id IS NULL OR m.sender_id <> $1)
		AND (m.created_at, m.id) > (COALESCE(p.mb_last_read_at, $3), COALESCE(p.mb_last_read_message_id, $4))`
	if pg {
		return `WITH p AS (
	` + fmt.Sprintf(pageSQL, "") + `
)
SELECT ` + inboxChatColumns + `,
	` + inboxMessageColumns + `,
	u.n
FROM p
LEFT JOIN LATERAL (
	SELECT * FROM messages m WHERE m.chat_id = p.id ORDER BY m.created_at DESC, m.id DESC LIMIT 1
) lm ON true
CROSS JOIN LATERAL (` + unread + `) u(n)
ORDER BY p.mb_chat_last_message_at DESC, p.id DESC`
	}
	lastID := `,
		(SELECT m.id FROM messages m WHERE m.chat_id = c.id ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS last_id`
	return `SELECT ` + inboxChatColumns + `,
	` + inboxMessageColumns + `,
	(` + unread + `) AS unread
FROM (
	` + fmt.Sprintf(pageSQL, lastID) + `
) p
LEFT JOIN messages lm ON lm.id = p.last_id
ORDER BY p.mb_chat_last_message_at DESC, p.id DESC`
}

// query runs a statement of the store's own through the ent client's driver,
// not the pool directly, so that Config.LogQueries logs it like every other.
func (b *sqlBackend) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return b.client.QueryContext(ctx, q, args...)
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
	err := queryRow(ctx, b.client, q, args, &u.ID, (*timeScan)(&u.CreatedAt), (*timeScan)(&u.UpdatedAt), &u.Email, &u.DisplayName, &status)
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
		at  sql.NullTime
	)
	err := queryRow(ctx, b.client, q, args, &may, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, notFound("chat")
	case err != nil:
		return nil, err
	case at.Valid:
		return appended(m, at.Time), nil
	}
	// Nothing inserted: the ID is stored (a retry, or a conflict), the viewer may
	// not append, or the reply points outside the chat. Answered in that order,
	// as the ent backend's transaction does.
	return b.whyNotAppended(ctx, b.client, m, may)
}

// sqliteAppend is the append on SQLite: a transaction (BEGIN IMMEDIATE, so it
// holds the database's write lock from the start) of the chat's SELECT under
// the rules, the ID's, the INSERT and the bumps.
func (b *sqlBackend) sqliteAppend(ctx context.Context, a actor, m NewMessage, metadata any, assistantOnly bool, now time.Time) (*Message, error) {
	var out *Message
	err := b.db.WithTxContext(ctx, func(ctx context.Context, etx *ent.Tx) error {
		tx := etx.Client()
		q, args := b.st.appendChatSystem, []any{b.id(m.ChatID)}
		if !a.system {
			q, args = b.st.appendChatUser[boolIndex(assistantOnly)], append(args, b.id(a.id))
		}
		var (
			last timeScan
			may  bool
		)
		err := queryRow(ctx, tx, q, args, &last, &may)
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
		at := nextTime(now, time.Time(last))
		if _, err := tx.ExecContext(ctx, `INSERT INTO messages (id, chat_id, sender_id, role, content, metadata, reply_to_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			b.id(m.ID), b.id(m.ChatID), b.nullID(m.SenderID), string(m.Role), m.Content, metadata, b.nullID(m.ReplyTo), at); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE chats SET last_message_at = $2, updated_at = $3 WHERE id = $1`, b.id(m.ChatID), at, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE memberships SET chat_last_message_at = $2 WHERE chat_id = $1`, b.id(m.ChatID), at); err != nil {
			return err
		}
		out = appended(m, at)
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

// appended is the message an append of m stored at at.
func appended(m NewMessage, at time.Time) *Message {
	return &Message{ID: m.ID, ChatID: m.ChatID, SenderID: m.SenderID, Role: m.Role, Content: m.Content,
		Metadata: m.Metadata, ReplyTo: m.ReplyTo, CreatedAt: at.UTC()}
}

func (b *sqlBackend) history(ctx context.Context, a actor, chatID uuid.UUID, r historyRange) ([]*Message, error) {
	args := make([]any, 1, 7)
	args[0] = b.id(chatID)
	var bi, ai, oi, ui int
	if r.before != nil {
		bi = 1
		args = append(args, r.before.at, b.id(r.before.id))
	}
	if r.after != nil {
		ai = 1
		args = append(args, r.after.at, b.id(r.after.id))
	}
	if r.oldest {
		oi = 1
	}
	if !a.system {
		ui = 1
		args = append(args, b.id(a.id))
	}
	args = append(args, r.limit+1)
	rows, err := b.query(ctx, b.st.history[bi][ai][oi][ui], args...)
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
		err = queryRow(ctx, b.client, b.st.chatExists, []any{b.id(chatID)}, &ok)
	} else {
		err = queryRow(ctx, b.client, b.st.chatVisible, []any{b.id(chatID), b.id(a.id)}, &ok)
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
		var at timeScan
		err := queryRow(ctx, tx.Client(), b.st.markReadFind, args, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("message")
		}
		if err != nil {
			return err
		}
		_, err = tx.Client().ExecContext(ctx, b.st.markRead, append(args, time.Time(at))...)
		return err
	})
}

func (b *sqlBackend) inbox(ctx context.Context, me uuid.UUID, before *position, limit int) ([]InboxEntry, error) {
	args := []any{b.id(me), limit, time.Time{}, b.id(uuid.Nil)}
	q := b.st.inbox[0]
	if before != nil {
		q = b.st.inbox[1]
		args = append(args, before.at, b.id(before.id))
	}
	rows, err := b.query(ctx, q, args...)
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
	dest := [10]any{&m.ID, &r.sender, &r.role, &r.content, &m.Metadata, &r.replyTo, &r.created, &r.edited, &r.deleted, &m.ChatID}
	n := 9
	if withChat {
		n = 10
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

	kind, mbRole                        string
	title, msgRole, content             sql.NullString
	readID, msgID, sender, replyTo      uuid.NullUUID
	muted                               sql.NullBool
	unread                              int64
	archived, readAt, order, msgCreated nullTime
	edited, gone                        nullTime
}

// scan reads one row of the inbox statement into r and returns its entry, whose
// values point into r.
func (r *inboxRow) scan(rows *sql.Rows, me uuid.UUID) (InboxEntry, error) {
	c, mb, m := &r.c, &r.mb, &r.m
	err := rows.Scan(
		&c.ID, (*timeScan)(&c.CreatedAt), (*timeScan)(&c.UpdatedAt), &r.kind, &r.title, &c.CreatedBy,
		(*timeScan)(&c.LastMessageAt), &r.archived,
		&mb.ID, &r.mbRole, (*timeScan)(&mb.JoinedAt), &r.readAt, &r.readID, &r.muted, &r.order,
		&r.msgID, &r.sender, &r.msgRole, &r.content, &m.Metadata, &r.replyTo, &r.msgCreated, &r.edited, &r.gone,
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
	mb.LastReadAt = r.readAt.ptr()
	if r.readID.Valid {
		mb.LastReadMessageID = &r.readID.UUID
	}
	mb.Muted = r.muted.Bool
	// The inbox's order is the membership's copy of last_message_at: the
	// chat's, or the joining time for a member who joined after the last
	// message.
	at := c.LastMessageAt
	if r.order.Valid {
		at = r.order.Time
	}
	e := InboxEntry{Chat: c, Membership: mb, Unread: int(r.unread), Activity: at,
		Cursor: encodeCursor(cursorInboxV1, position{at: at, id: c.ID})}
	if r.msgID.Valid {
		m.ID, m.ChatID = r.msgID.UUID, c.ID
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
