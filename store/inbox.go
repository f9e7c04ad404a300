package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
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

// InboxEntry is one chat in an inbox.
type InboxEntry struct {
	// Chat is the chat.
	Chat *Chat
	// Membership is the viewer's membership: role, muted, read position.
	Membership *Membership
	// LastMessage is the chat's newest message, or nil when it has none. A deleted
	// one is empty, as in History.
	LastMessage *Message
	// Unread counts the messages after the viewer's read position: the chat's
	// last seq minus the position (see the package doc). The viewer's own
	// messages never count, since sending one moves the position to it; deleted
	// ones count until read, as they keep their place in history.
	Unread int
	// Activity is the entry's place in the inbox: the chat's last_message_at, or
	// the time the viewer joined when they joined after the last message.
	Activity time.Time
	// Cursor is the entry's position, for InboxQuery.Before.
	Cursor Cursor
}

// Inbox returns the viewer's chats, newest activity first, each with its last
// message, the viewer's membership and unread count. Deleted chats are left
// out; archived ones are included. The viewer must be a user.
//
// Cost: one statement, on both dialects, whose time grows neither with the
// number of the viewer's chats nor with their backlogs: the page is read in
// order from memberships_user_inbox_idx (chats that are not large) merged with
// the viewer's large chats (memberships_user_large_idx, a few per user), and
// only the page's rows get a last message and an unread count (see inboxSQL
// in sqlbackend.go).
func (s *Store) Inbox(ctx context.Context, q InboxQuery) (_ []InboxEntry, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.Inbox", uuid.Nil)
	defer span.end(&err)
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
	before, err := decodeOptional(cursorInboxV1, q.Before)
	if err != nil {
		return nil, fail(op, err)
	}
	entries, err := s.b.inbox(ctx, me, before, limit)
	if err != nil {
		return nil, fail(op, err)
	}
	return entries, nil
}

// MarkRead moves the viewer's read position in chatID to messageID, a message of
// that chat. The position never moves backwards: marking an older message read
// changes nothing.
//
// Cost on PostgreSQL: one statement (a WITH query that reads the message and
// updates the membership), one round trip. On SQLite: a transaction of one
// SELECT of the message and one conditional UPDATE.
func (s *Store) MarkRead(ctx context.Context, chatID, messageID uuid.UUID) (err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.MarkRead", chatID)
	defer span.end(&err)
	const op = "mark read"
	if err := ownTx(ctx); err != nil {
		return fail(op, err)
	}
	me, err := viewerUser(ctx)
	if err != nil {
		return fail(op, err)
	}
	return fail(op, s.b.markRead(ctx, me, chatID, messageID))
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
