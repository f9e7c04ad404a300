package bench

import "strings"

// The statements of the hand-written stacks. pgx and pq run the same text, so that
// their difference is the driver's; GORM's Inbox runs it too (with ? placeholders),
// since raw SQL is how a GORM user writes a query of this shape.
//
// They do what chatdb's store promises for the same operation, each in one
// statement: the acting user's right to do it is checked in the statement (so
// the floor pays for authorization as chatdb does), a read position only moves
// forward, an append takes the chat's row lock and gets a creation time after
// the chat's last message.
const (
	messageColumns = "id, chat_id, sender_id, role, content, metadata, reply_to_id, created_at, edited_at, deleted_at"

	// Soft-deleted users are not found, and a deleted reader finds nobody, as
	// in chatdb.
	sqlGetUser = `SELECT id, created_at, updated_at, deleted_at, email, display_name, status
FROM users WHERE id = $1 AND deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM users v WHERE v.id = $2 AND v.deleted_at IS NULL)`

	// Atomic without BEGIN/COMMIT, being one statement: the chat row is locked if
	// it is live and unarchived and the sender is an active member; the message
	// is created 1µs after the chat's last message if the clock has not passed
	// it; a retried append (same client-made ID) inserts and bumps nothing.
	// RETURNING gives the creation time chosen.
	sqlAppend = `WITH c AS (
  SELECT c.id, GREATEST($7::timestamptz, c.last_message_at + interval '1 microsecond') AS at
  FROM chats c
  WHERE c.id = $2 AND c.deleted_at IS NULL AND c.archived_at IS NULL
    AND EXISTS (SELECT 1 FROM memberships mb JOIN users u ON u.id = mb.user_id
                WHERE mb.chat_id = c.id AND mb.user_id = $3 AND u.deleted_at IS NULL AND u.status = 'active')
  FOR UPDATE OF c),
m AS (
  INSERT INTO messages (id, chat_id, sender_id, role, content, metadata, created_at)
  SELECT $1::uuid, c.id, $3::uuid, $4::varchar, $5::text, $6::jsonb, c.at FROM c
  ON CONFLICT (id) DO NOTHING
  RETURNING chat_id, created_at)
UPDATE chats SET last_message_at = m.created_at, updated_at = m.created_at
FROM m WHERE chats.id = m.chat_id
RETURNING m.created_at`

	// One more row than the page, to know whether another page follows (as
	// chatdb's History does for its Next cursor). The reader must be a live
	// member of the live chat.
	sqlHistory = `SELECT ` + messageColumns + `
FROM messages
WHERE chat_id = $1 AND (created_at, id) < ($2, $3)
  AND EXISTS (SELECT 1 FROM memberships mb JOIN chats c ON c.id = mb.chat_id JOIN users u ON u.id = mb.user_id
              WHERE mb.chat_id = $1 AND mb.user_id = $4 AND c.deleted_at IS NULL AND u.deleted_at IS NULL)
ORDER BY created_at DESC, id DESC
LIMIT $5`

	// The inbox in one statement: the user's newest chats by their memberships
	// and a sort on chats, then per chat of the page its last message (one index
	// probe, newest first) and its unread count (a range over
	// messages_chat_created_id_idx after the read position) of messages that are
	// not deleted and not the user's own. Every column of the chat, the
	// membership and the last message, as chatdb returns them.
	sqlInbox = `WITH p AS (
  SELECT c.id, c.created_at, c.updated_at, c.deleted_at, c.kind, c.title, c.created_by,
    c.last_message_at, c.archived_at, c.direct_key,
    mb.id AS mb_id, mb.role AS mb_role, mb.joined_at AS mb_joined_at, mb.last_read_at AS mb_last_read_at,
    mb.last_read_message_id AS mb_last_read_message_id, mb.muted AS mb_muted, mb.user_id AS mb_user
  FROM memberships mb
  JOIN chats c ON c.id = mb.chat_id
  WHERE mb.user_id = $1 AND c.deleted_at IS NULL
    AND EXISTS (SELECT 1 FROM users v WHERE v.id = $1 AND v.deleted_at IS NULL)
  ORDER BY c.last_message_at DESC, c.id DESC
  LIMIT $2)
SELECT p.id, p.created_at, p.updated_at, p.deleted_at, p.kind, p.title, p.created_by,
  p.last_message_at, p.archived_at, p.direct_key,
  p.mb_id, p.mb_role, p.mb_joined_at, p.mb_last_read_at, p.mb_last_read_message_id, p.mb_muted,
  lm.id, lm.sender_id, lm.role, lm.content, lm.metadata, lm.reply_to_id, lm.created_at, lm.edited_at, lm.deleted_at,
  u.n
FROM p
LEFT JOIN LATERAL (
  SELECT * FROM messages m WHERE m.chat_id = p.id ORDER BY m.created_at DESC, m.id DESC LIMIT 1
) lm ON true
CROSS JOIN LATERAL (
  SELECT count(*) FROM messages m
  WHERE m.chat_id = p.id AND m.deleted_at IS NULL
    AND (m.sender_id IS NULL OR m.sender_id <> p.mb_user)
    AND (m.created_at, m.id) > (COALESCE(p.mb_last_read_at, '-infinity'), COALESCE(p.mb_last_read_message_id, '00000000-0000-0000-0000-000000000000'))
) u(n)
ORDER BY p.last_message_at DESC, p.id DESC`

	// The message's position comes from the message itself, so a client sends
	// only its ID; a message of another chat updates nothing, and neither does an
	// older one than the position already read, a deleted chat's, or a deleted
	// user's.
	sqlMarkRead = `UPDATE memberships mb
SET last_read_at = m.created_at, last_read_message_id = m.id
FROM messages m
WHERE m.id = $3 AND m.chat_id = $2 AND mb.user_id = $1 AND mb.chat_id = $2
  AND EXISTS (SELECT 1 FROM chats c WHERE c.id = $2 AND c.deleted_at IS NULL)
  AND EXISTS (SELECT 1 FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL)
  AND (mb.last_read_at IS NULL OR (mb.last_read_at, mb.last_read_message_id) < (m.created_at, m.id))`
)

// importColumns are the columns Import writes, in order.
var importColumns = []string{"id", "chat_id", "sender_id", "role", "content", "metadata", "created_at"}

// sqlCopyMessages is the COPY statement lib/pq prepares for Import.
var sqlCopyMessages = "COPY messages (" + strings.Join(importColumns, ", ") + ") FROM STDIN"

// questionPlaceholders rewrites $1, $2, ... as ?, for GORM's Raw. It assumes each
// placeholder appears once, in order.
func questionPlaceholders(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] == '$' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
			b.WriteByte('?')
			for i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
				i++
			}
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
