package store

import (
	"context"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/chatdb/chatdb/ent"
	"github.com/chatdb/chatdb/ent/chat"
	"github.com/chatdb/chatdb/ent/message"
)

// History page sizes.
const (
	defaultHistoryLimit = 50
	maxHistoryLimit     = 200
)

// Order is the order of a history page.
type Order int

// The orders of a history page.
const (
	// NewestFirst lists the newest message first; the default.
	NewestFirst Order = iota
	// OldestFirst lists the oldest message first.
	OldestFirst
)

// Cursor is an opaque position in a listing: a history cursor names a message's
// (created_at, id), an inbox cursor a chat's (last_message_at, id). Pass it back
// as it was received; the zero Cursor means "from the start".
type Cursor string

// HistoryQuery selects a page of a chat's history.
type HistoryQuery struct {
	// Before, when set, keeps only messages older than that position.
	Before Cursor
	// After, when set, keeps only messages newer than that position. Before and
	// After together select the messages between them.
	After Cursor
	// Limit is the largest number of messages returned: 0 means 50, and more than
	// 200 means 200.
	Limit int
	// Order is NewestFirst (the default) or OldestFirst.
	Order Order
}

// HistoryPage is one page of history.
type HistoryPage struct {
	// Messages are in the query's order. Deleted messages are included, with
	// DeletedAt set and Content and Metadata blanked.
	Messages []*ent.Message
	// Next continues the listing in the same order: pass it as Before for
	// NewestFirst, as After for OldestFirst. It is empty when no more messages
	// existed when the page was read; a reader following new messages polls with
	// After set to CursorOf the last message it has.
	Next Cursor
}

// History returns a page of chatID's messages by keyset pagination on
// (created_at, id), over the index messages_chat_created_id_idx: no OFFSET, so a
// page costs the same however deep it is. Messages are appended with increasing
// created_at in commit order (see AppendMessage), so paging towards newer
// messages while others append never skips or repeats one. The viewer must be a
// member of the chat (database.ErrNotFound otherwise). A malformed cursor gives
// ErrInvalidCursor.
//
// Cost: one SELECT of Limit+1 rows, with the membership check in its WHERE; a
// second SELECT when the page is empty, to tell an empty range from a chat the
// viewer cannot see. On PostgreSQL the statement is the store's own and the
// messages carry no ent client.
func (s *Store) History(ctx context.Context, chatID uuid.UUID, q HistoryQuery) (*HistoryPage, error) {
	const op = "history"
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = defaultHistoryLimit
	case limit > maxHistoryLimit:
		limit = maxHistoryLimit
	}
	var before, after *position
	for _, b := range []struct {
		c   Cursor
		dst **position
	}{{q.Before, &before}, {q.After, &after}} {
		if b.c == "" {
			continue
		}
		p, err := decodeCursor(cursorHistoryV1, b.c)
		if err != nil {
			return nil, fail(op, err)
		}
		*b.dst = &p
	}
	var (
		msgs []*ent.Message
		err  error
	)
	if s.fast() {
		msgs, err = s.pgHistory(ctx, chatID, before, after, q.Order == OldestFirst, limit)
	} else {
		msgs, err = s.entHistory(ctx, chatID, before, after, q.Order == OldestFirst, limit)
	}
	if err != nil {
		return nil, fail(op, err)
	}
	page := &HistoryPage{Messages: msgs}
	if len(msgs) > limit {
		page.Messages = msgs[:limit]
		page.Next = CursorOf(page.Messages[limit-1])
	}
	for _, m := range page.Messages {
		present(m)
	}
	if len(page.Messages) == 0 {
		// An empty page: of a chat with nothing in range, or of one the viewer
		// cannot see, which the privacy filter made look empty.
		var ok bool
		if s.fast() {
			ok, err = s.pgChatVisible(ctx, chatID)
		} else {
			ok, err = s.client.Chat.Query().Where(chat.ID(chatID)).Exist(ctx)
		}
		if err != nil {
			return nil, fail(op, err)
		}
		if !ok {
			return nil, fail(op, notFound("chat"))
		}
	}
	return page, nil
}

// entHistory reads up to limit+1 messages through ent, whose privacy policy
// adds the membership check.
func (s *Store) entHistory(ctx context.Context, chatID uuid.UUID, before, after *position, oldest bool, limit int) ([]*ent.Message, error) {
	mq := s.client.Message.Query().Where(message.ChatID(chatID))
	if before != nil {
		mq.Where(keyset(*before, true))
	}
	if after != nil {
		mq.Where(keyset(*after, false))
	}
	if oldest {
		mq.Order(message.ByCreatedAt(), message.ByID())
	} else {
		mq.Order(message.ByCreatedAt(sql.OrderDesc()), message.ByID(sql.OrderDesc()))
	}
	return mq.Limit(limit + 1).All(ctx)
}

// CursorOf returns the history cursor at message m: History with After set to it
// returns the messages after m, with Before the messages before it.
func CursorOf(m *ent.Message) Cursor {
	return encodeCursor(cursorHistoryV1, position{at: m.CreatedAt, id: m.ID})
}

// keyset selects the messages strictly before (or after) p in (created_at, id)
// order, as a row comparison that the index (chat_id, created_at, id) serves.
func keyset(p position, before bool) func(*sql.Selector) {
	return func(s *sql.Selector) {
		cols := []string{s.C(message.FieldCreatedAt), s.C(message.FieldID)}
		if before {
			s.Where(sql.CompositeLT(cols, p.at, p.id))
		} else {
			s.Where(sql.CompositeGT(cols, p.at, p.id))
		}
	}
}
