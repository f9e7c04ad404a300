package bench_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/bench"
)

// roundTripImportRows is the Import size of TestRoundTrips: three chunks of the
// ORMs' thousand rows.
const roundTripImportRows = 2_500

// wantRoundTrips are the round trips each stack spends on one operation once
// its statements are prepared and cached. An operation missing from a stack's map
// is measured and printed but not asserted.
var wantRoundTrips = map[string]map[string]int{
	// One statement per operation; COPY is two (start, then finish), its column
	// types cached with the statement.
	"pgx": {"GetUser": 1, "AppendMessage": 1, "HistoryPage": 1, "Inbox": 1, "MarkRead": 1, "Import": 2},
	// The same, through database/sql; COPY needs a transaction on lib/pq.
	"pq": {"GetUser": 1, "AppendMessage": 1, "HistoryPage": 1, "Inbox": 1, "MarkRead": 1, "Import": 4},
	// lib/pq's default: Parse/Describe/Sync, then Bind/Execute/Sync.
	"pq-default": {"GetUser": 2, "AppendMessage": 2, "HistoryPage": 2, "Inbox": 2, "MarkRead": 2, "Import": 4},
	// BEGIN, INSERT, UPDATE and ent's read-back of the updated row, COMMIT; an
	// inbox of two queries (memberships, then their chats) and then two per chat;
	// a read of the message before the update; BEGIN, three chunks, COMMIT.
	"ent": {"GetUser": 1, "AppendMessage": 5, "HistoryPage": 1, "Inbox": 2 + 2*bench.InboxLimit, "MarkRead": 2, "Import": 5},
	// GORM wraps each write outside a transaction in one of its own.
	"gorm": {"GetUser": 1, "AppendMessage": 4, "HistoryPage": 1, "Inbox": 1, "MarkRead": 4, "Import": 5},
	// chatdb's store: one statement per operation, the privacy checks in it
	// (an append locks, checks, inserts and bumps in one WITH query, without
	// BEGIN or COMMIT); an import is BEGIN, the chat's lock, COPY (two), COMMIT
	// (its messages are older than the chat's last one, so no bump).
	"chatdb": {"GetUser": 1, "AppendMessage": 1, "HistoryPage": 1, "Inbox": 1, "MarkRead": 1, "Import": 5},
	// The same on lib/pq with binary_parameters=yes.
	"chatdb-pq": {"GetUser": 1, "AppendMessage": 1, "HistoryPage": 1, "Inbox": 1, "MarkRead": 1, "Import": 5},
}

// roundTripStacks are the stacks TestRoundTrips measures: the benchmarks' and
// lib/pq's default mode.
func roundTripStacks() []string {
	return append(stackNames(), "pq-default")
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
					return s.HistoryPage(ctx, d.Reader, d.BigChat, d.Cursors[3], bench.HistoryLimit, nil)
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
