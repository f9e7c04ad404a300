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
	"github.com/chatdb/chatdb/ent/membership"
	"github.com/chatdb/chatdb/schema"
)

// MaxMembersPerCall is the most users AddMembers and CreateGroupChat take in
// one call; more give database.ErrInvalid.
const MaxMembersPerCall = 100_000

// DefaultFanOutLimit is the number of members above which a chat is large:
// an append to it no longer writes each member's copy of the chat's time (the
// inbox's order), and the inbox reads the chat's time from the chat itself.
// Below it an append writes at most that many rows; above it, one (the
// sender's read position), whatever the number of members. See
// WithFanOutLimit.
const DefaultFanOutLimit = 32

// WithFanOutLimit sets the number of members above which a chat is large (see
// DefaultFanOutLimit). A chat becomes large when a member added through the
// store takes it over the limit, and stays large: a smaller limit makes
// appends cheaper in mid-sized chats, and inboxes of users in many such chats
// dearer (one probe per large chat on the page's way). n below 1 means the
// default.
func WithFanOutLimit(n int) Option {
	return func(s *Store) {
		if n >= 1 {
			s.fanOut = n
		}
	}
}

// AddMembers makes userIDs members of chatID with the given role (member when
// empty) and returns how many it added: users who are members already are
// left as they are. It is one transaction: either every new member is added,
// or none. The rule is asked once, as AddMember asks it (owners and admins add
// members, only owners add owners, nobody adds to a direct chat: ErrForbidden);
// a user who does not exist or is deleted gives database.ErrNotFound; more
// than MaxMembersPerCall IDs, or a zero ID, gives database.ErrInvalid.
//
// Cost, whatever the number of users: a temporary table filled by COPY on
// PostgreSQL (multi-row INSERTs of at most database.MaxParamsSQLite values on
// SQLite), one SELECT that finds unknown users, one INSERT ... SELECT of the
// memberships; while the chat is not large, a read of its members (at most the
// fan-out limit) and, when the new members take it over the limit, one UPDATE
// of the chat and of those members, once in its life.
func (s *Store) AddMembers(ctx context.Context, chatID uuid.UUID, userIDs []uuid.UUID, role membership.Role) (_ int, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.AddMembers", chatID)
	defer span.end(&err)
	const op = "add members"
	if err := ownTx(ctx); err != nil {
		return 0, fail(op, err)
	}
	if role == "" {
		role = membership.RoleMember
	}
	if err := membership.RoleValidator(role); err != nil {
		return 0, fail(op, invalid("Membership.role", err))
	}
	ids, err := memberIDs(userIDs, uuid.Nil)
	if err != nil {
		return 0, fail(op, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	var added int
	err = s.db.WithConnTx(ctx, func(ctx context.Context, conn *sql.Conn, client *ent.Client) (err error) {
		added, err = s.addMembers(ctx, conn, client, chatID, ids, role, s.clock())
		return err
	})
	if err != nil {
		return 0, fail(op, err)
	}
	return added, nil
}

// memberIDs returns ids without duplicates and without skip, refusing zero IDs
// and more than MaxMembersPerCall.
func memberIDs(ids []uuid.UUID, skip uuid.UUID) ([]uuid.UUID, error) {
	if len(ids) > MaxMembersPerCall {
		return nil, fmt.Errorf("%w: %d users, more than %d in one call", database.ErrInvalid, len(ids), MaxMembersPerCall)
	}
	out := make([]uuid.UUID, 0, len(ids))
	seen := make(map[uuid.UUID]bool, len(ids))
	seen[skip] = true
	for i, id := range ids {
		if id == uuid.Nil {
			return nil, fmt.Errorf("%w: user %d has the zero ID", database.ErrInvalid, i)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// addMembers is AddMembers inside its transaction, on the transaction's
// connection and client, the members joining at now.
func (s *Store) addMembers(ctx context.Context, conn *sql.Conn, client *ent.Client, chatID uuid.UUID, ids []uuid.UUID, role membership.Role, now time.Time) (int, error) {
	// The chat's row lock keeps appends from running while the chat may turn
	// large, so that none fans out to a half-flagged set of members.
	q := client.Chat.Query().Where(chat.ID(chatID), chat.DeletedAtIsNil())
	if s.db.Dialect() == database.Postgres {
		q = q.ForUpdate()
	}
	c, err := q.Only(ctx)
	if err != nil {
		return 0, err
	}
	// Adding a member is decided by the chat, the viewer, the role and the
	// user's being live; the last is checked for all of them below, in SQL.
	// Ask the rule once, for the first.
	probe := client.Membership.Create().SetChatID(chatID).SetUserID(ids[0]).SetRole(role).SetJoinedAt(now)
	if err := membership.Policy.EvalMutation(ctx, probe.Mutation()); err != nil {
		return 0, err
	}
	id := func(id uuid.UUID) any { return idValue(s.db.Driver() == database.DriverPgx, id) }
	create := `CREATE TEMPORARY TABLE chatdb_new_members (id uuid NOT NULL, user_id uuid NOT NULL)`
	if s.db.Dialect() == database.Postgres {
		create += ` ON COMMIT DROP`
	}
	if _, err := client.ExecContext(ctx, create); err != nil {
		return 0, err
	}
	rows := make([][]any, len(ids))
	vals := make([]any, 2*len(ids))
	for i, u := range ids {
		row := vals[2*i : 2*i+2 : 2*i+2]
		row[0], row[1] = id(schema.NewID()), id(u)
		rows[i] = row
	}
	if _, err := s.db.CopyFrom(ctx, conn, "chatdb_new_members", []string{"id", "user_id"}, rows); err != nil {
		return 0, err
	}
	var unknown int
	if err := queryRow(ctx, client, `SELECT count(*) FROM chatdb_new_members t
WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id AND u.deleted_at IS NULL)`, nil, &unknown); err != nil {
		return 0, err
	}
	if unknown > 0 {
		return 0, fmt.Errorf("%w: %d of the users do not exist or are deleted", database.ErrNotFound, unknown)
	}
	// A chat that the new members take over the fan-out limit turns large
	// before they are inserted, so that they are written once, already large,
	// and the update touches only the members it had (at most the limit).
	large := c.Large
	if !large {
		if large, err = s.willBeLarge(ctx, client, chatID, ids); err != nil {
			return 0, err
		}
		if large {
			if err := turnLarge(ctx, client, id(chatID)); err != nil {
				return 0, err
			}
		}
	}
	// As schema's joinState starts a membership: read up to the chat's last
	// message, with the chat's large flag, and an inbox time no earlier than
	// its last message.
	joined := laterOf(now, c.LastMessageAt)
	res, err := client.ExecContext(ctx, `INSERT INTO memberships (id, user_id, chat_id, role, joined_at, read_seq, muted, chat_last_message_at, large)
SELECT t.id, t.user_id, $1, $2, $3, $4, false, $5, $6 FROM chatdb_new_members t
WHERE true -- SQLite parses an upsert after a SELECT only past a WHERE
ON CONFLICT (chat_id, user_id) DO NOTHING`, id(chatID), string(role), now, c.LastSeq, joined, large)
	if err != nil {
		return 0, err
	}
	added, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if s.db.Dialect() == database.SQLite {
		if _, err := client.ExecContext(ctx, `DROP TABLE temp.chatdb_new_members`); err != nil {
			return 0, err
		}
	}
	return int(added), nil
}

// willBeLarge reports whether adding ids to chatID, which is not large, takes
// it over the fan-out limit. A chat that is not large has at most the limit's
// members (it would have turned large), so their IDs are read, not counted.
func (s *Store) willBeLarge(ctx context.Context, client *ent.Client, chatID uuid.UUID, ids []uuid.UUID) (bool, error) {
	if len(ids) > s.fanOut {
		return true, nil
	}
	rows, err := client.QueryContext(ctx, `SELECT user_id FROM memberships WHERE chat_id = $1`, idValue(s.db.Driver() == database.DriverPgx, chatID))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var current []uuid.UUID
	for rows.Next() {
		var u uuid.UUID
		if err := rows.Scan(&u); err != nil {
			return false, err
		}
		current = append(current, u)
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	n := len(current)
	for _, id := range ids {
		if !slices.Contains(current, id) {
			n++
		}
	}
	return n > s.fanOut, nil
}

// largeAfterAdd marks chatID large when it has more members than the fan-out
// limit, after one member was added. Called with the chat's row locked (or, on
// SQLite, the database's write lock held).
//
// Cost: a count of the chat's members (at most the fan-out limit plus one),
// and once in the chat's life turnLarge.
func (s *Store) largeAfterAdd(ctx context.Context, client *ent.Client, chatID uuid.UUID) error {
	id := idValue(s.db.Driver() == database.DriverPgx, chatID)
	var n int
	if err := queryRow(ctx, client, `SELECT count(*) FROM memberships WHERE chat_id = $1`, []any{id}, &n); err != nil {
		return err
	}
	if n <= s.fanOut {
		return nil
	}
	return turnLarge(ctx, client, id)
}

// turnLarge marks the chat large, and its memberships (at most the fan-out
// limit and one): its appends stop writing each member's copy of its time, and
// the inbox reads the chat's own. It happens once in a chat's life.
func turnLarge(ctx context.Context, client *ent.Client, chatID any) error {
	if _, err := client.ExecContext(ctx, `UPDATE chats SET large = true WHERE id = $1`, chatID); err != nil {
		return err
	}
	_, err := client.ExecContext(ctx, `UPDATE memberships SET large = true WHERE chat_id = $1`, chatID)
	return err
}
