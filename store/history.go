package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
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

// Cursor is an opaque position in a listing: a history cursor names a chat and
// a seq, an inbox cursor an entry's (time, chat). Pass it back as it was
// received; the zero Cursor means "from the start".
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
	// DeletedAt set and Content and Metadata empty.
	Messages []*Message
	// Next continues the listing in the same order: pass it as Before for
	// NewestFirst, as After for OldestFirst. It is empty when no more messages
	// existed when the page was read; a reader following new messages polls with
	// After set to CursorOf the last message it has.
	Next Cursor
}

// historyRange is a history query as the backends run it.
type historyRange struct {
	before, after *position
	oldest        bool
	// limit is the page size; the backends read one message more, to know
	// whether another page follows.
	limit int
}

// History returns a page of chatID's messages by keyset pagination on seq,
// over the index messages_chat_seq_key: no OFFSET, so a page costs the same
// however deep it is. Messages get gapless seqs in commit order (see
// AppendMessage), so paging towards newer messages while others append never
// skips or repeats one, and "everything after seq n" is a sync. The viewer
// must be a member of the chat (database.ErrNotFound otherwise). A malformed
// cursor, or one of another chat, gives ErrInvalidCursor.
//
// Cost: one SELECT of Limit+1 rows, with the read rule checked once in its
// WHERE; a second SELECT when the page is empty, to tell an empty range from a
// chat the viewer cannot see.
func (s *Store) History(ctx context.Context, chatID uuid.UUID, q HistoryQuery) (_ *HistoryPage, err error) {
	ctx, span := s.startOp(ctx, "chatdb.store.History", chatID)
	defer span.end(&err)
	const op = "history"
	a, err := actorOf(ctx)
	if err != nil {
		return nil, fail(op, err)
	}
	r := historyRange{oldest: q.Order == OldestFirst, limit: q.Limit}
	switch {
	case r.limit <= 0:
		r.limit = defaultHistoryLimit
	case r.limit > maxHistoryLimit:
		r.limit = maxHistoryLimit
	}
	for _, c := range []struct {
		cur Cursor
		dst **position
	}{{q.Before, &r.before}, {q.After, &r.after}} {
		p, err := decodeOptional(cursorHistoryV2, c.cur)
		if err != nil {
			return nil, fail(op, err)
		}
		if p != nil && p.id != chatID {
			return nil, fail(op, fmt.Errorf("%w: a cursor of another chat", ErrInvalidCursor))
		}
		*c.dst = p
	}
	msgs, err := s.b.history(ctx, a, chatID, r)
	if err != nil {
		return nil, fail(op, err)
	}
	page := &HistoryPage{Messages: msgs}
	if len(msgs) > r.limit {
		page.Messages = msgs[:r.limit]
		page.Next = CursorOf(page.Messages[r.limit-1])
	}
	if len(page.Messages) == 0 {
		// An empty page: of a chat with nothing in range, or of one the viewer
		// cannot see, which the read rule made look empty.
		ok, err := s.b.chatVisible(ctx, a, chatID)
		if err != nil {
			return nil, fail(op, err)
		}
		if !ok {
			return nil, fail(op, notFound("chat"))
		}
	}
	return page, nil
}

// CursorOf returns the history cursor at message m, of its chat and seq:
// History with After set to it returns the messages after m, with Before the
// messages before it. Only ChatID and Seq are read, so a client that keeps the
// last seq it has of a chat resumes a sync with
// CursorOf(&Message{ChatID: chatID, Seq: seq}).
func CursorOf(m *Message) Cursor {
	return encodeCursor(cursorHistoryV2, position{seq: m.Seq, id: m.ChatID})
}
