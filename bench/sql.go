package bench

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// The statements of the hand-written stacks. pgx and pq run the same text, so that
// their difference is the driver's; GORM's Inbox runs it too (with ? placeholders),
// since raw SQL is how a GORM user writes a query of this shape.
//
// They do what chatdb's store does for the same operation (store/sqlbackend.go),
// each in one statement: the acting user's right to do it is checked in the
// statement with the same probes chatdb's rules make (the viewer's membership,
// the chat live, the viewer live or active), so the floor pays for
// authorization as chatdb does; an append takes the chat's row lock, the next
// seq and a creation time no earlier than the chat's last message, bumps the
// chat, moves the sender's read position and, in a chat that is not large,
// the other members' inbox time; a read position only moves forward.
const (
	messageColumns = "id, chat_id, seq, sender_id, role, content, metadata, reply_to_id, created_at, edited_at, deleted_at"

	// Soft-deleted users are not found, and a deleted reader finds nobody, as
	// in chatdb.
	sqlGetUser = `SELECT id, created_at, updated_at, deleted_at, email, display_name, status
FROM users WHERE id = $1 AND deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM users v WHERE v.id = $2 AND v.deleted_at IS NULL)`

	// Atomic without BEGIN/COMMIT, being one statement: the chat row is locked
	// if it is live and unarchived and the sender is an active member; the
	// message takes the chat's next seq and is created no earlier than the
	// chat's last message; the chat, the sender's read position (and inbox
	// time unless the chat is large) and, in a chat that is not large, the
	// other members' inbox time move to it. A retried append (same client-made
	// ID) inserts and bumps nothing, and answers no row. The answer is the seq
	// and creation time chosen.
	sqlAppend = `WITH c AS (
  SELECT c.id, c.last_seq, c.last_message_at, c.large
  FROM chats c
  WHERE c.id = $2::uuid AND c.deleted_at IS NULL AND c.archived_at IS NULL
    AND EXISTS (SELECT 1 FROM memberships mb WHERE mb.chat_id = $2::uuid AND mb.user_id = $3::uuid)
    AND EXISTS (SELECT 1 FROM users u WHERE u.id = $3::uuid AND u.deleted_at IS NULL AND u.status = 'active')
  FOR UPDATE OF c),
m AS (
  INSERT INTO messages (id, chat_id, seq, sender_id, role, content, metadata, created_at)
  SELECT $1::uuid, c.id, c.last_seq + 1, $3::uuid, $4::varchar, $5::text, $6::jsonb, GREATEST($7::timestamptz, c.last_message_at)
  FROM c
  ON CONFLICT (id) DO NOTHING
  RETURNING chat_id, seq, created_at),
bump AS (
  UPDATE chats SET last_seq = m.seq, last_message_at = m.created_at, updated_at = m.created_at
  FROM m WHERE chats.id = m.chat_id),
sender AS (
  UPDATE memberships SET read_seq = m.seq, last_read_message_id = $1::uuid,
    chat_last_message_at = CASE WHEN memberships.large THEN memberships.chat_last_message_at ELSE m.created_at END
  FROM m WHERE memberships.chat_id = m.chat_id AND memberships.user_id = $3::uuid),
fanout AS (
  UPDATE memberships SET chat_last_message_at = m.created_at
  FROM m, c
  WHERE NOT c.large AND memberships.chat_id = m.chat_id AND memberships.user_id <> $3::uuid)
SELECT seq, created_at FROM m`

	// One more row than the page, to know whether another page follows (as
	// chatdb's History does for its Next cursor), by keyset on seq over
	// messages_chat_seq_key. The reader must be a live member of the live chat:
	// three probes of unique indexes, made once, as chatdb's read rule makes
	// them.
	sqlHistory = `SELECT ` + messageColumns + `
FROM messages
WHERE chat_id = $1 AND seq < $2
  AND EXISTS (SELECT 1 FROM memberships mb WHERE mb.chat_id = $1 AND mb.user_id = $3)
  AND EXISTS (SELECT 1 FROM chats c WHERE c.id = $1 AND c.deleted_at IS NULL)
  AND EXISTS (SELECT 1 FROM users u WHERE u.id = $3 AND u.deleted_at IS NULL)
ORDER BY seq DESC
LIMIT $4`

	// The inbox as a hand-writer writes it in one statement: the user's
	// memberships of live chats in order of activity (the membership's copy
	// of the chat's time, or for a large chat, whose copy appends do not
	// move, the later of it and the chat's own), a sort of all of them, then
	// per chat of the page its last message (one probe of
	// messages_chat_seq_key at the chat's last_seq) and its unread count
	// (last_seq − read_seq: no message is read). chatdb gives the same answer
	// from a merge of two index-ordered parts, which does not sort all the
	// user's chats. Every column of the chat, the membership and the last
	// message, as chatdb returns them.
	sqlInbox = `WITH p AS (
  SELECT c.id, c.created_at, c.updated_at, c.deleted_at, c.kind, c.title, c.created_by,
    c.last_message_at, c.last_seq, c.archived_at, c.direct_key,
    mb.id AS mb_id, mb.role AS mb_role, mb.joined_at AS mb_joined_at, mb.read_seq AS mb_read_seq,
    mb.last_read_message_id AS mb_last_read_message_id, mb.muted AS mb_muted,
    CASE WHEN mb.large THEN GREATEST(c.last_message_at, mb.chat_last_message_at) ELSE mb.chat_last_message_at END AS activity
  FROM memberships mb
  JOIN chats c ON c.id = mb.chat_id
  WHERE mb.user_id = $1 AND c.deleted_at IS NULL
    AND EXISTS (SELECT 1 FROM users v WHERE v.id = $1 AND v.deleted_at IS NULL)
  ORDER BY activity DESC, c.id DESC
  LIMIT $2)
SELECT p.id, p.created_at, p.updated_at, p.deleted_at, p.kind, p.title, p.created_by,
  p.last_message_at, p.last_seq, p.archived_at, p.direct_key,
  p.mb_id, p.mb_role, p.mb_joined_at, p.mb_read_seq, p.mb_last_read_message_id, p.mb_muted,
  lm.id, lm.seq, lm.sender_id, lm.role, lm.content, lm.metadata, lm.reply_to_id, lm.created_at, lm.edited_at, lm.deleted_at,
  GREATEST(p.last_seq - p.mb_read_seq, 0)
FROM p
LEFT JOIN messages lm ON lm.chat_id = p.id AND lm.seq = p.last_seq
ORDER BY p.activity DESC, p.id DESC`

	// The message's seq comes from the message itself, so a client sends only
	// its ID; a message of another chat updates nothing, and neither does an
	// older one than the position already read, a deleted chat's, or a deleted
	// user's. The membership updated is the reader's own, which is the
	// membership probe.
	sqlMarkRead = `UPDATE memberships mb
SET read_seq = m.seq, last_read_message_id = m.id
FROM messages m
WHERE m.id = $3 AND m.chat_id = $2 AND mb.user_id = $1 AND mb.chat_id = $2 AND mb.read_seq < m.seq
  AND EXISTS (SELECT 1 FROM chats c WHERE c.id = $2 AND c.deleted_at IS NULL)
  AND EXISTS (SELECT 1 FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL)`

	// sqlImportLock starts an import, in its transaction: it locks the chat
	// (so no append takes a seq meanwhile) and reads the seq to continue from.
	sqlImportLock = `SELECT last_seq FROM chats WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`

	// sqlImportBumps ends an import, in its transaction, in one statement: the
	// chat's sequence and time move to the last imported message ($2, $3);
	// each sender ($4, with the seq and ID of their newest message in $5 and
	// $6) has read up to their newest one and, unless the chat is large, has
	// the chat's new time; and in a chat that is not large so do the other
	// members.
	sqlImportBumps = `WITH c AS (
  UPDATE chats SET last_seq = $2, last_message_at = $3, updated_at = $3 WHERE id = $1 RETURNING large),
s AS (
  UPDATE memberships mb SET read_seq = GREATEST(mb.read_seq, s.seq),
    last_read_message_id = CASE WHEN s.seq > mb.read_seq THEN s.id ELSE mb.last_read_message_id END,
    chat_last_message_at = CASE WHEN mb.large THEN mb.chat_last_message_at ELSE $3 END
  FROM unnest($4::uuid[], $5::bigint[], $6::uuid[]) AS s(user_id, seq, id)
  WHERE mb.chat_id = $1 AND mb.user_id = s.user_id)
UPDATE memberships mb SET chat_last_message_at = $3
FROM c
WHERE NOT c.large AND mb.chat_id = $1 AND mb.chat_last_message_at < $3 AND mb.user_id <> ALL($4::uuid[])`
)

// importColumns are the columns Import writes, in order.
var importColumns = []string{"id", "chat_id", "seq", "sender_id", "role", "content", "metadata", "created_at"}

// sqlCopyMessages is the COPY statement lib/pq prepares for Import.
var sqlCopyMessages = "COPY messages (" + strings.Join(importColumns, ", ") + ") FROM STDIN"

// importPlan is what the hand-written stacks' Import computes in Go once the
// chat's last seq is known: each message's seq, and the arguments of
// sqlImportBumps.
type importPlan struct {
	lastSeq int64
	lastAt  time.Time
	// senders, their newest seqs and the IDs of those messages.
	senders []uuid.UUID
	seqs    []int64
	ids     []uuid.UUID
}

// planImport returns the plan of importing msgs (in time order) after seq
// from: message i takes seq from+i+1.
func planImport(msgs []Message, from int64) importPlan {
	p := importPlan{lastSeq: from + int64(len(msgs)), lastAt: msgs[len(msgs)-1].CreatedAt}
	at := map[uuid.UUID]int{}
	for i := range msgs {
		s := msgs[i].SenderID
		if s == nil {
			continue
		}
		k, ok := at[*s]
		if !ok {
			k = len(p.senders)
			at[*s] = k
			p.senders, p.seqs, p.ids = append(p.senders, *s), append(p.seqs, 0), append(p.ids, uuid.Nil)
		}
		p.seqs[k], p.ids[k] = from+int64(i)+1, msgs[i].ID
	}
	return p
}

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
