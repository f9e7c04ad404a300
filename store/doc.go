// Package store holds the chat operations every chat application needs, done
// right over chatdb's ent client: users, direct, group and assistant chats,
// memberships, idempotent message appends, keyset history, bulk import, and an
// inbox with unread counts in one query.
//
// Every operation takes a context first and acts as the viewer in it (package
// viewer): the ent privacy policies in package schema decide what that viewer may
// read and write, and a context without a viewer is denied everything. Errors are
// classified with the database package's sentinels (database.ErrNotFound,
// database.ErrConflict, database.ErrInvalid, ...) and this package's own
// (ErrForbidden, ErrInvalidCursor); match them with errors.Is. Each operation's
// doc comment says what it costs in queries and round trips. Every write is a
// transaction of its own (or one statement): called with a context that
// carries a transaction (database.WithTxContext), a write returns
// database.ErrNestedTx on both dialects, rather than commit apart from the
// caller's transaction (PostgreSQL) or wait for its lock (SQLite). Reads run
// on the pool, outside it.
//
// The operations with a hand-written statement (GetUser, AppendMessage,
// History, MarkRead, Inbox) run it on the pool without ent's query builder, on
// both dialects: one statement each on PostgreSQL, an append being one round
// trip without BEGIN or COMMIT. Each statement carries its access rule in its
// WHERE clause, rendered once from package rule, the same builders the ent
// privacy policies use; New chooses this backend once, and the store's tests
// hold it to the ent policies' answers. The other operations go through the
// ent client and its policies. Values the store returns are its own plain
// types (User, Chat, Membership, Message): no method of theirs queries, so they
// behave the same whichever way they were read.
//
// Choices the package makes, with the privacy policies:
//
//   - Signing up is the application's job: CreateUser needs the system viewer,
//     and so does reading a password hash (PasswordHash at sign-in). Any
//     signed-in user reads any live user's profile, so people can be found by
//     email.
//   - Users, chats and messages are soft-deleted, and only the system restores
//     them. A deleted user is not found and can do nothing, even with a session
//     still open; their messages keep their sender. A deleted chat is gone for
//     every operation.
//   - Both users of a direct chat are its owners; nobody else joins it. A user
//     who left a direct chat rejoins it by creating it again.
//   - User messages are sent by the viewer. Assistant and tool messages have no
//     sender and may be appended by any member of an assistant chat; system
//     messages only by the system viewer.
//   - A deleted message stays in history, in its place, with DeletedAt set; its
//     content and metadata are erased from the database, not hidden.
//   - Archived chats stay readable and in the inbox; nobody appends to them.
//   - Messages of a chat get seq 1, 2, 3, ... in commit order, without gaps:
//     History is in seq order, a cursor names a chat and a seq, and a client
//     syncs with "everything after seq n" (Chat.LastSeq says how far the chat
//     is). created_at never goes back within a chat. An import appends too: it
//     refuses messages older than the chat's newest.
//   - Unread counts are the chat's last seq minus the member's read position:
//     one subtraction, whatever the backlog. The position starts at the chat's
//     last message when the member joins and moves forward only: MarkRead, and
//     every message the member sends. A deleted message keeps its place in
//     history and counts until read, as the tombstone it leaves is shown.
//   - An append writes the chat, the message and the sender's membership, and
//     in a chat of at most DefaultFanOutLimit members each member's copy of
//     the chat's time (the inbox's order); a larger chat is large, and its
//     appends write no member's row, whatever its size. The inbox reads the
//     viewer's other chats in order from an index and merges the large ones,
//     whose times it reads from the chats: a page costs the same with 10 and
//     with 10,000 chats, plus one probe per large chat the viewer is in.
//   - With read replicas (database.Config.ReplicaURLs), History, Inbox,
//     GetUser, GetChat and Members read from a healthy standby unless the
//     context says otherwise (database.DB.ReadClient); every write, the reads
//     a write makes, and the sign-in reads (UserByEmail, PasswordHash) use the
//     primary. Every write notes itself in the context's consistency session
//     (database.WithToken), so a session reads its own writes, and the token
//     database.DB.Token returns after them makes any later read do so too.
//
// A tour:
//
//	db, err := database.Open(ctx, database.Config{URL: os.Getenv("DATABASE_URL")})
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	s := store.New(db)
//
//	ada, err := s.CreateUser(viewer.SystemContext(ctx), store.NewUser{Email: "ada@example.com", DisplayName: "Ada"})
//	// ... and bob the same way.
//	as := viewer.NewContext(ctx, ada.ID)
//	chat, _, err := s.CreateDirectChat(as, bob.ID)
//	msg, err := s.AppendMessage(as, store.NewMessage{ChatID: chat.ID, Content: "hello"})
//	page, err := s.History(as, chat.ID, store.HistoryQuery{Limit: 50})
//	for page.Next != "" {
//		page, err = s.History(as, chat.ID, store.HistoryQuery{Before: page.Next, Limit: 50})
//	}
//	inbox, err := s.Inbox(viewer.NewContext(ctx, bob.ID), store.InboxQuery{})
//	// inbox[0].Unread == 1
package store
