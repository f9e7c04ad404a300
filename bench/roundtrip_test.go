package bench_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/bench"
)

// roundTripImportRows is the Import size of TestRoundTrips: three chunks of the
// ORMs' thousand rows, and no more than the ent stack takes.
const roundTripImportRows = bench.EntImportLimit

// wantRoundTrips are the round trips each stack spends on one operation once
// its statements are prepared and cached; ent's Import, which depends on the
// messages, is entImportRoundTrips. Any other operation missing from a stack's
// map fails the test.
//
// Since messages have seqs, an import locks its chat (to take the seqs after
// the chat's last) and ends with the bumps an append does (the chat's seq and
// time, the senders' read positions, the members' inbox time): two round
// trips more for the hand-written stacks, three for chatdb, GORM and
// lib/pq's default mode. An append's bumps stay inside the one statement of
// the hand-written stacks and chatdb; ent's hook and GORM's transaction pay
// for them in statements of their own.
var wantRoundTrips = map[string]map[string]int{
	// One statement per operation; an import is BEGIN, the chat's lock, COPY
	// (two: start, then finish, its column types cached with the statement),
	// the bumps in one statement, COMMIT.
	"pgx": {"GetUser": 1, "AppendMessage": 1, "HistoryPage": 1, "Inbox": 1, "MarkRead": 1, "Import": 6},
	// The same, through database/sql; COPY needs the transaction on lib/pq
	// anyway.
	"pq": {"GetUser": 1, "AppendMessage": 1, "HistoryPage": 1, "Inbox": 1, "MarkRead": 1, "Import": 6},
	// lib/pq's default: Parse/Describe/Sync, then Bind/Execute/Sync, for every
	// statement with parameters (the import's lock and bumps too).
	"pq-default": {"GetUser": 2, "AppendMessage": 2, "HistoryPage": 2, "Inbox": 2, "MarkRead": 2, "Import": 8},
	// An append is BEGIN, the sequence hook's chat UPDATE (which takes the seq
	// and the row lock), the INSERT, the hook's UPDATEs of the sender's read
	// position and of the members' inbox time, COMMIT; an inbox is two queries
	// (memberships, then their chats) and the last message of each chat (the
	// unread count is last_seq − read_seq, no query); a mark read is a read of
	// the message before the update. An import is counted by
	// entImportRoundTrips.
	"ent": {"GetUser": 1, "AppendMessage": 6, "HistoryPage": 1, "Inbox": 2 + bench.InboxLimit, "MarkRead": 2},
	// GORM wraps each write outside a transaction in one of its own. An append
	// is BEGIN, the chat's SELECT ... FOR UPDATE, the INSERT, the chat's
	// UPDATE, the members' inbox time, the sender's read position, COMMIT; an
	// import is BEGIN, the lock, a SAVEPOINT (CreateInBatches opens a nested
	// transaction), three batches, the chat, the members, the sender, COMMIT.
	"gorm": {"GetUser": 1, "AppendMessage": 7, "HistoryPage": 1, "Inbox": 1, "MarkRead": 4, "Import": 10},
	// chatdb's store: one statement per operation, the privacy checks in it
	// (an append locks, checks, inserts and bumps the chat, the sender's read
	// position and the members' inbox time in one WITH query, without BEGIN
	// or COMMIT); an import is BEGIN, the chat's lock, COPY (two), the chat's
	// UPDATE, the sender's, the members', COMMIT.
	"chatdb": {"GetUser": 1, "AppendMessage": 1, "HistoryPage": 1, "Inbox": 1, "MarkRead": 1, "Import": 8},
	// The same on lib/pq with binary_parameters=yes.
	"chatdb-pq": {"GetUser": 1, "AppendMessage": 1, "HistoryPage": 1, "Inbox": 1, "MarkRead": 1, "Import": 8},
}

// entImportRoundTrips is what the ent stack's Import of msgs costs: BEGIN, one
// INSERT per chunk, the sequence hook's statements for each message (the
// chat's UPDATE, the sender's read position when it has a sender, the members'
// inbox time: the chat is small), the one UPDATE that mends the members' inbox
// time, COMMIT.
func entImportRoundTrips(msgs []bench.Message) int {
	n := 1 + (len(msgs)+999)/1000 + 1 + 1
	for _, m := range msgs {
		n += 2
		if m.SenderID != nil {
			n++
		}
	}
	return n
}

// roundTripStacks are the stacks TestRoundTrips measures: the benchmarks'
// (those through PgBouncer aside: the proxy stands before the server) and
// lib/pq's default mode.
func roundTripStacks() []string {
	var names []string
	for _, s := range bench.Stacks {
		names = append(names, s.Name)
	}
	return append(names, "pq-default")
}

// TestRoundTrips counts, through a proxy on loopback, the round trips of each
// operation on each stack, and asserts them: unlike time, they do not vary
// between runs. It prints a "roundtrips OPERATION STACK N" line per count for
// bench/run's report.
func TestRoundTrips(t *testing.T) {
	d := dataset(t)
	// Each stack's check has run on its own connection; here every stack gets a
	// fresh one through the proxy.
	for _, name := range roundTripStacks() {
		stack(t, name, "")
	}
	proxy, err := bench.NewProxy(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	ctx := context.Background()
	msgs := bench.ImportMessages(uuid.Nil, d.Sender, roundTripImportRows)

	for _, name := range roundTripStacks() {
		t.Run(name, func(t *testing.T) {
			s, err := bench.Open(ctx, name, proxy.URL(d.URL))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			t.Cleanup(func() { d.ClearAppends(ctx); d.ResetRead(ctx) })

			ops := []struct {
				name string
				run  func() error
			}{
				{"GetUser", func() error { return s.GetUser(ctx, d.Reader, d.Users[7], nil) }},
				{"AppendMessage", func() error {
					return s.AppendMessage(ctx, &bench.Message{ID: uuid.Must(uuid.NewV7()), ChatID: d.AppendChat,
						SenderID: &d.Sender, Role: "user", Content: "round trip"})
				}},
				{"HistoryPage", func() error {
					return s.HistoryPage(ctx, d.Reader, d.Cursors[3], bench.HistoryLimit, nil)
				}},
				{"Inbox", func() error { return s.Inbox(ctx, d.InboxUser, bench.InboxLimit, nil) }},
				{"MarkRead", func() error {
					return s.MarkRead(ctx, d.Reader, d.BigChat, d.BigChatMessages[len(d.BigChatMessages)/2].ID)
				}},
				{"Import", func() error {
					chat, err := d.NewChat(ctx)
					if err != nil {
						return err
					}
					defer d.DeleteChat(ctx, chat)
					for i := range msgs {
						msgs[i].ChatID = chat
					}
					// Only the Import itself is counted: the harness's statements
					// run on its own pool, not through the proxy.
					return s.Import(ctx, msgs)
				}},
			}
			for _, op := range ops {
				// Twice to prepare and cache statements, then the counted one.
				for range 2 {
					if err := op.run(); err != nil {
						t.Fatalf("%s: %v", op.name, err)
					}
				}
				before := proxy.RoundTrips()
				if err := op.run(); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				got := int(proxy.RoundTrips() - before)
				fmt.Printf("roundtrips %s %s %d\n", op.name, name, got)
				want, ok := wantRoundTrips[name][op.name]
				if name == "ent" && op.name == "Import" {
					want, ok = entImportRoundTrips(msgs), true
				}
				switch {
				case !ok:
					t.Errorf("%s on %s: %d round trips, and no expected count in wantRoundTrips", op.name, name, got)
				case got != want:
					t.Errorf("%s on %s: %d round trips, want %d", op.name, name, got, want)
				}
			}
		})
	}
}
