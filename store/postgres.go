package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/message"
	"github.com/chatdb/chatdb/ent/user"
	"github.com/chatdb/chatdb/viewer"
)

// The hot paths on PostgreSQL: GetUser, AppendMessage, History and MarkRead run
// as one typed statement each on the database/sql pool, not through ent's
// builder, which costs about a hundred allocations per operation and, for an
// append, seven round trips more (TestCosts: 1 here, 8 on the ent path). Raw SQL skips ent's privacy policies, so each
// statement carries the policy's rule itself (see schema/policy.go): the
// viewer's membership as an EXISTS, the chat's state, the user's status. The
// store's privacy tests run on both dialects, SQLite through ent's policies and
// PostgreSQL through these statements, and hold both to the same answers.
//
// Entities these functions return are read by SQL, not by ent: they carry no
// client (as InboxEntry's), so query their edges through the Store or an ent
// client by ID.

// pgGetUser reads a live user; pgGetUserSystem also its password hash, which
// only the system viewer sees.
const (
	pgGetUser = `SELECT id, created_at, updated_at, deleted_at, email, display_name, status
FROM users WHERE id = $1 AND deleted_at IS NULL`
	pgGetUserSystem = `SELECT id, created_at, updated_at, deleted_at, email, display_name, status, password_hash
FROM users WHERE id = $1 AND deleted_at IS NULL`
)

// pgAppend appends a message in one statement, its own transaction: no BEGIN
// or COMMIT. c locks the chat's row when the viewer may see it (a live chat it
// is a member of) and says in may whether the viewer may append to it: the
// role's rule ($10, decided in Go, and $11 for chats of any kind), an
// unarchived chat, an active and undeleted viewer. ins inserts the message 1µs
// after the chat's last message if the clock has not passed it, unless its ID
// is stored already (a retry: the chat's lock makes racing retries wait for
// each other's commit, and ON CONFLICT sees it) or it replies to a message of
// another chat. bump moves the chat's last_message_at to the new message, and
// bump_members the copy of it each membership keeps for the inbox. The answer
// is one row when the chat is visible: may, and the new created_at when a row
// was inserted.
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
  WHERE c.may AND ($7::uuid IS NULL OR EXISTS (SELECT 1 FROM messages r WHERE r.id = $7::uuid AND r.chat_id = c.id))
  ON CONFLICT (id) DO NOTHING
  RETURNING chat_id, created_at),
bump AS (
  UPDATE chats SET last_message_at = ins.created_at, updated_at = $8::timestamptz
  FROM ins WHERE chats.id = ins.chat_id),
bump_members AS (
  UPDATE memberships SET chat_last_message_at = ins.created_at
  FROM ins WHERE memberships.chat_id = ins.chat_id)
SELECT c.may, ins.created_at FROM c LEFT JOIN ins ON true`

var (
	// pgAppendUser is the append of a user viewer ($9).
	pgAppendUser = fmt.Sprintf(pgAppendTemplate,
		`$10::bool AND c.archived_at IS NULL AND ($11::bool OR c.kind = 'assistant')
    AND EXISTS (SELECT 1 FROM users u WHERE u.id = $9::uuid AND u.deleted_at IS NULL AND u.status = 'active')`,
		`
    AND EXISTS (SELECT 1 FROM memberships mb WHERE mb.chat_id = c.id AND mb.user_id = $9::uuid)`)
	// pgAppendSystem is the system viewer's: any live chat, any sender.
	pgAppendSystem = fmt.Sprintf(pgAppendTemplate, `true`, ``)
)

// pgStoredMessage reads a message by ID whatever the viewer: the failure path
// of an append, to tell a retry (same message) from a conflict (another one).
const pgStoredMessage = `SELECT ` + pgMessageColumns + `, chat_id FROM messages WHERE id = $1`

// pgMarkRead moves the viewer's ($1) read position in chat $2 forward to message
// $3, in one statement. It answers one row when the message is in the chat and
// the viewer is a member, whether or not the position moved.
const pgMarkRead = `WITH m AS (
  SELECT m.id, m.created_at FROM messages m
  WHERE m.id = $3 AND m.chat_id = $2
    AND EXISTS (SELECT 1 FROM memberships v WHERE v.chat_id = $2 AND v.user_id = $1)),
u AS (
  UPDATE memberships mb SET last_read_at = m.created_at, last_read_message_id = m.id
  FROM m
  WHERE mb.user_id = $1 AND mb.chat_id = $2
    AND (mb.last_read_at IS NULL OR (mb.last_read_at, mb.last_read_message_id) < (m.created_at, m.id)))
SELECT 1 FROM m`

// pgMessageColumns are the columns scanMessage reads, in its order.
const pgMessageColumns = `id, sender_id, role, content, metadata, reply_to_id, created_at, edited_at, deleted_at`

// pgHistory holds the history statements: index [before][after][oldest][system].
var pgHistory = func() (q [2][2][2][2]string) {
	for b := range 2 {
		for a := range 2 {
			for o := range 2 {
				for sys := range 2 {
					q[b][a][o][sys] = pgHistorySQL(b == 1, a == 1, o == 1, sys == 1)
				}
			}
		}
	}
	return q
}()

// pgHistorySQL returns a history statement: chat $1, then the cursors' (at, id)
// pairs, then the viewer unless it is the system, then the limit. The
// membership check is uncorrelated with the rows, so PostgreSQL runs it once,
// before the range scan of messages_chat_created_id_idx.
func pgHistorySQL(before, after, oldest, system bool) string {
	var b strings.Builder
	n := 1
	next := func() string { n++; return "$" + strconv.Itoa(n) }
	b.WriteString("SELECT " + pgMessageColumns + " FROM messages WHERE chat_id = $1")
	if before {
		b.WriteString(" AND (created_at, id) < (" + next() + "::timestamptz, " + next() + "::uuid)")
	}
	if after {
		b.WriteString(" AND (created_at, id) > (" + next() + "::timestamptz, " + next() + "::uuid)")
	}
	if !system {
		b.WriteString(" AND EXISTS (SELECT 1 FROM memberships WHERE chat_id = $1 AND user_id = " + next() + ")")
	}
	if oldest {
		b.WriteString(" ORDER BY created_at, id")
	} else {
		b.WriteString(" ORDER BY created_at DESC, id DESC")
	}
	b.WriteString(" LIMIT " + next())
	return b.String()
}

// pgChatVisible says whether chat $1 exists and user $2 is a member of it: an
// empty history page's second question.
const (
	pgChatVisible       = `SELECT EXISTS (SELECT 1 FROM chats c WHERE c.id = $1 AND EXISTS (SELECT 1 FROM memberships mb WHERE mb.chat_id = c.id AND mb.user_id = $2))`
	pgChatVisibleSystem = `SELECT EXISTS (SELECT 1 FROM chats WHERE id = $1)`
)

// query runs a statement of the store's own through the ent client's driver,
// not the pool directly, so that Config.LogQueries logs it like every other.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.client.QueryContext(ctx, q, args...)
}

// queryRow runs q and scans its first row into dest: sql.ErrNoRows when it has
// none.
func (s *Store) queryRow(ctx context.Context, q string, args []any, dest ...any) error {
	rows, err := s.query(ctx, q, args...)
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

// fast reports whether the store runs the hot paths as its own SQL: on
// PostgreSQL. SQLite keeps ent's builder and policies.
func (s *Store) fast() bool { return s.db.Dialect() == database.Postgres }

// idArg returns id as the driver takes it best: pgx encodes a [16]byte as a
// uuid directly, while a uuid.UUID goes through its driver.Valuer (a string,
// parsed again); lib/pq takes the string.
func (s *Store) idArg(id uuid.UUID) any {
	if s.pgx {
		return [16]byte(id)
	}
	return id
}

// nullIDArg is idArg with NULL for the zero UUID.
func (s *Store) nullIDArg(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return s.idArg(id)
}

// viewerOf is viewerUser that also accepts the system viewer (with system set
// and no ID): raw statements fail closed like ent's policies.
func viewerOf(ctx context.Context) (system bool, id uuid.UUID, err error) {
	if v, ok := viewer.FromContext(ctx); ok && v.IsSystem() {
		return true, uuid.Nil, nil
	}
	id, err = viewerUser(ctx)
	return false, id, err
}

// pgGetUser is GetUser on PostgreSQL: one SELECT by primary key.
func (s *Store) pgGetUser(ctx context.Context, id uuid.UUID) (*ent.User, error) {
	system, _, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	q := pgGetUser
	if system {
		q = pgGetUserSystem
	}
	u := new(ent.User)
	var status string
	dest := []any{&u.ID, &u.CreatedAt, &u.UpdatedAt, &u.DeletedAt, &u.Email, &u.DisplayName, &status}
	var hash sql.NullString
	if system {
		dest = append(dest, &hash)
	}
	if err := s.queryRow(ctx, q, []any{s.idArg(id)}, dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound("user")
		}
		return nil, err
	}
	u.Status = user.Status(status)
	u.PasswordHash = hash.String
	return u, nil
}

// pgAppend is AppendMessage on PostgreSQL: one statement, and on its failure
// path one SELECT more to say why nothing was inserted.
func (s *Store) pgAppend(ctx context.Context, m NewMessage) (*ent.Message, error) {
	if database.InTx(ctx) {
		// The append is a transaction of its own, as on SQLite.
		return nil, database.ErrNestedTx
	}
	system, me, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	var metadata any
	if !m.Metadata.IsZero() {
		if metadata, err = m.Metadata.Value(); err != nil {
			return nil, invalid("Message.metadata", err)
		}
	}
	now := s.clock()
	args := make([]any, 8, 11)
	args[0], args[1], args[2] = s.idArg(m.ID), s.idArg(m.ChatID), s.nullIDArg(m.SenderID)
	args[3], args[4], args[5], args[6], args[7] = string(m.Role), m.Content, metadata, s.nullIDArg(m.ReplyTo), now
	q := pgAppendSystem
	if !system {
		// The rule of schema's messageCreateRule that depends only on the
		// message; the rest is in the statement.
		var roleOK, anyKind bool
		switch m.Role {
		case message.RoleUser:
			roleOK, anyKind = m.SenderID == me, true
		case message.RoleAssistant, message.RoleTool:
			roleOK = m.SenderID == uuid.Nil
		}
		args = append(args, s.idArg(me), roleOK, anyKind)
		q = pgAppendUser
	}
	var (
		may bool
		at  sql.NullTime
	)
	err = s.queryRow(ctx, q, args, &may, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, notFound("chat")
	case err != nil:
		return nil, err
	case at.Valid:
		out := &ent.Message{ID: m.ID, ChatID: m.ChatID, Role: m.Role, Content: m.Content, Metadata: m.Metadata,
			CreatedAt: at.Time.UTC()}
		if m.SenderID != uuid.Nil {
			out.SenderID = &m.SenderID
		}
		if m.ReplyTo != uuid.Nil {
			out.ReplyToID = &m.ReplyTo
		}
		return out, nil
	}
	// Nothing inserted: the ID is stored (a retry, or a conflict), the viewer may
	// not append, or the reply points outside the chat. Answered in that order,
	// as the transaction of the SQLite path does.
	stored, chatID, err := s.pgStoredMessage(ctx, m.ID)
	switch {
	case err == nil:
		stored.ChatID = chatID
		if !sameMessage(stored, m) {
			return nil, errStoredOther(m.ID)
		}
		return present(stored), nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	case !may:
		return nil, errCannotAppend()
	default:
		return nil, errReplyOutside()
	}
}

// pgStoredMessage reads message id and its chat, whatever the viewer.
func (s *Store) pgStoredMessage(ctx context.Context, id uuid.UUID) (*ent.Message, uuid.UUID, error) {
	rows, err := s.query(ctx, pgStoredMessage, s.idArg(id))
	if err != nil {
		return nil, uuid.Nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, uuid.Nil, err
		}
		return nil, uuid.Nil, sql.ErrNoRows
	}
	r := new(messageRow)
	if err := r.scan(rows, true); err != nil {
		return nil, uuid.Nil, err
	}
	return &r.m, r.chatID, rows.Close()
}

// pgHistory runs the history statement and returns up to limit+1 messages.
func (s *Store) pgHistory(ctx context.Context, chatID uuid.UUID, before, after *position, oldest bool, limit int) ([]*ent.Message, error) {
	system, me, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	args := make([]any, 1, 7)
	args[0] = s.idArg(chatID)
	var bi, ai, oi, si int
	if before != nil {
		bi = 1
		args = append(args, before.at, s.idArg(before.id))
	}
	if after != nil {
		ai = 1
		args = append(args, after.at, s.idArg(after.id))
	}
	if oldest {
		oi = 1
	}
	if system {
		si = 1
	} else {
		args = append(args, s.idArg(me))
	}
	args = append(args, limit+1)
	rows, err := s.query(ctx, pgHistory[bi][ai][oi][si], args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// One allocation for the page's messages and their scan targets, instead
	// of a few per message.
	slab := make([]messageRow, limit+1)
	msgs := make([]*ent.Message, 0, limit+1)
	for rows.Next() {
		i := len(msgs)
		if i == len(slab) {
			break
		}
		r := &slab[i]
		if err := r.scan(rows, false); err != nil {
			return nil, err
		}
		r.m.ChatID = chatID
		msgs = append(msgs, &r.m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// pgChatVisible says whether chatID exists and the viewer may read it.
func (s *Store) pgChatVisible(ctx context.Context, chatID uuid.UUID) (bool, error) {
	system, me, err := viewerOf(ctx)
	if err != nil {
		return false, err
	}
	var ok bool
	if system {
		err = s.queryRow(ctx, pgChatVisibleSystem, []any{s.idArg(chatID)}, &ok)
	} else {
		err = s.queryRow(ctx, pgChatVisible, []any{s.idArg(chatID), s.idArg(me)}, &ok)
	}
	return ok, err
}

// pgMarkRead is MarkRead on PostgreSQL: one statement. It is sent as an exec:
// the command tag of its SELECT counts the rows found, and no result set needs
// reading.
func (s *Store) pgMarkRead(ctx context.Context, me, chatID, messageID uuid.UUID) error {
	res, err := s.client.ExecContext(ctx, pgMarkRead, s.idArg(me), s.idArg(chatID), s.idArg(messageID))
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

// messageRow holds one message read by pgMessageColumns and the targets it is
// scanned into, so that a page of them is one allocation.
type messageRow struct {
	m               ent.Message
	sender, replyTo uuid.NullUUID
	role            string
	chatID          uuid.UUID
}

// scan reads pgMessageColumns, and the chat's ID after them when withChat, into
// r.m, whose nullable IDs then point into r.
func (r *messageRow) scan(rows *sql.Rows, withChat bool) error {
	m := &r.m
	dest := [10]any{&m.ID, &r.sender, &r.role, &m.Content, &m.Metadata, &r.replyTo, &m.CreatedAt, &m.EditedAt, &m.DeletedAt, &r.chatID}
	n := 9
	if withChat {
		n = 10
	}
	if err := rows.Scan(dest[:n]...); err != nil {
		return err
	}
	m.Role = message.Role(r.role)
	if r.sender.Valid {
		m.SenderID = &r.sender.UUID
	}
	if r.replyTo.Valid {
		m.ReplyToID = &r.replyTo.UUID
	}
	if withChat {
		m.ChatID = r.chatID
	}
	return nil
}
