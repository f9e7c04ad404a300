package bench_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatdb/chatdb/bench"
	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/store"
	"github.com/chatdb/chatdb/viewer"
)

// The growth benchmarks time one operation over the size that could make it
// grow, and report the median and 99th percentile of the calls' times
// (p50-ns, p99-ns), which bench/cmd/report puts in growth tables: a few slow
// calls (a flush, another process's burst) move a mean, not a median. They run
// on chatdb's store over PostgreSQL (through pgx) and over the embedded SQLite
// (bench.GrowthBackends), on data built once per backend by bench.LoadGrowth,
// and only with BENCH_GROWTH=1. BenchmarkHistoryGrowth reads the main data
// set's deep chats, on pgx and chatdb.

var (
	growthMu   sync.Mutex
	growthSets = map[string]*bench.Growth{}
)

// growthEnabled reports whether BENCH_GROWTH=1 asks for the growth benchmarks.
func growthEnabled() bool { return os.Getenv("BENCH_GROWTH") == "1" }

// growthName is the name of the growth data of every backend: the benchmarks'
// database name (BENCH_DB_NAME, default chatdb_bench) and "_growth".
func growthName() string {
	name := "chatdb_bench"
	if n := os.Getenv("BENCH_DB_NAME"); n != "" {
		name = n
	}
	return name + "_growth"
}

// growth returns backend's growth data, building it on first use (or reusing a
// kept build with BENCH_REUSE=1), and skips b without BENCH_GROWTH=1. Call it
// before the sub-benchmarks that time, so that a build is not inside one.
func growth(b *testing.B, backend string) *bench.Growth {
	b.Helper()
	if !growthEnabled() {
		b.Skip("growth data not built (BENCH_GROWTH=1 builds it)")
	}
	growthMu.Lock()
	defer growthMu.Unlock()
	if g, ok := growthSets[backend]; ok {
		return g
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	g, err := bench.LoadGrowth(ctx, backend, server(b), growthName(), os.Getenv("BENCH_REUSE") == "1")
	if err != nil {
		b.Fatalf("bench: growth data %s: %v", backend, err)
	}
	growthSets[backend] = g
	return g
}

// closeGrowth closes the growth data this process opened, and drops every
// backend's unless keep: the last step of bench/run drops it even when it did
// not open it.
func closeGrowth(keep bool) {
	for _, g := range growthSets {
		g.Close()
	}
	if keep || !growthEnabled() || !benchmarking() {
		return
	}
	url := os.Getenv("BENCH_DATABASE_URL")
	if url == "" {
		url = bench.DefaultServerURL
	}
	for _, backend := range bench.GrowthBackends {
		if err := bench.DropGrowth(context.Background(), backend, url, growthName()); err != nil {
			fmt.Fprintf(os.Stderr, "bench: drop growth data %s: %v\n", backend, err)
		}
	}
}

// forEachGrowth runs fn as a sub-benchmark per growth backend, named after it,
// after building every backend's data.
func forEachGrowth(b *testing.B, fn func(b *testing.B, g *bench.Growth)) {
	for _, backend := range bench.GrowthBackends {
		growth(b, backend)
	}
	for _, backend := range bench.GrowthBackends {
		b.Run(backend, func(b *testing.B) {
			b.ReportAllocs()
			fn(b, growth(b, backend))
		})
	}
}

// timeOps runs op under b.Loop with its call number, timing each call, and
// reports the median and 99th percentile of those times. prepare, when not nil,
// runs before each call, outside the timer and the call's time. The first
// growthWarmUp calls are not timed: they open the pool's connections and
// prepare the statements, which would otherwise land on the first size of a
// table, the one the others are compared with.
func timeOps(b *testing.B, prepare, op func(i int) error) {
	for i := range growthWarmUp {
		if err := prepareAndRun(prepare, op, i); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for i := growthWarmUp; b.Loop(); i++ {
		if prepare != nil {
			b.StopTimer()
			if err := prepare(i); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		start := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 50)), "p50-ns")
	b.ReportMetric(float64(percentile(lat, 99)), "p99-ns")
}

// prepareAndRun runs prepare (when not nil), then op, with call number i.
func prepareAndRun(prepare, op func(i int) error, i int) error {
	if prepare != nil {
		if err := prepare(i); err != nil {
			return err
		}
	}
	return op(i)
}

// growthWarmUp is the number of calls timeOps makes before it times.
const growthWarmUp = 3

// percentile returns the p-th percentile of sorted, by nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max((p*len(sorted)+99)/100-1, 0)]
}

// BenchmarkAppendByMembers appends to chats of 2 to 100,000 members, as their
// owner. An append writes the chat, the message and the sender's read
// position, and in a chat of up to store.DefaultFanOutLimit members each
// member's inbox time; beyond, no other member's row: its time should not grow
// with the members (target: p50 at 100k ≤ 1.25× p50 at 2).
func BenchmarkAppendByMembers(b *testing.B) {
	ctx := context.Background()
	for _, st := range bench.MemberGrowth {
		b.Run("members="+st.Name, func(b *testing.B) {
			forEachGrowth(b, func(b *testing.B, g *bench.Growth) {
				as := viewer.NewContext(ctx, g.Users[0])
				chat := g.MemberChats[st.Name]
				timeOps(b, nil, func(i int) error {
					_, err := g.Store.AppendMessage(as, store.NewMessage{ChatID: chat, Content: bench.Texts[i%len(bench.Texts)]})
					return err
				})
			})
		})
	}
}

// BenchmarkInboxByBacklog reads an inbox page of bench.BacklogChats chats
// that have 0, 1,000 and 100,000 unread messages each. An unread count is
// last_seq − read_seq and the last message one probe at last_seq: its time
// should not grow with the backlog (target: 100k ≤ 1.5× 0).
func BenchmarkInboxByBacklog(b *testing.B) {
	benchInbox(b, "unread", bench.BacklogGrowth, func(g *bench.Growth) map[string]uuid.UUID { return g.BacklogUsers },
		func(bench.GrowthStep) int { return bench.BacklogChats },
		func(st bench.GrowthStep, e store.InboxEntry) bool { return e.Unread == st.N })
}

// BenchmarkInboxByChats reads the first inbox page of users with 10, 1,000 and
// 10,000 chats (of two members each). The page is read in order from the
// partial index memberships_user_inbox_idx: its time should not grow with the
// chats (target: 10k ≤ 1.5× 10).
func BenchmarkInboxByChats(b *testing.B) {
	benchInbox(b, "chats", bench.ChatsGrowth, func(g *bench.Growth) map[string]uuid.UUID { return g.ChatsUsers },
		func(st bench.GrowthStep) int { return min(st.N, bench.InboxLimit) },
		func(_ bench.GrowthStep, e store.InboxEntry) bool { return e.LastMessage != nil })
}

// benchInbox times, for each step (a sub-benchmark param=step per backend),
// the first inbox page of the step's user in users, after checking that it
// has entries(step) entries, each meeting ok.
func benchInbox(b *testing.B, param string, steps []bench.GrowthStep, users func(*bench.Growth) map[string]uuid.UUID,
	entries func(bench.GrowthStep) int, ok func(bench.GrowthStep, store.InboxEntry) bool) {
	ctx := context.Background()
	for _, st := range steps {
		b.Run(param+"="+st.Name, func(b *testing.B) {
			forEachGrowth(b, func(b *testing.B, g *bench.Growth) {
				as := viewer.NewContext(ctx, users(g)[st.Name])
				checkInboxPage(b, g, as, entries(st), func(e store.InboxEntry) bool { return ok(st, e) })
				timeOps(b, nil, func(int) error {
					_, err := g.Store.Inbox(as, store.InboxQuery{Limit: bench.InboxLimit})
					return err
				})
			})
		})
	}
}

// checkInboxPage fails b unless the first inbox page of the viewer in ctx has n
// entries, newest activity first, each meeting ok: the data is what the
// benchmark claims to read.
func checkInboxPage(b *testing.B, g *bench.Growth, ctx context.Context, n int, ok func(store.InboxEntry) bool) {
	b.Helper()
	page, err := g.Store.Inbox(ctx, store.InboxQuery{Limit: bench.InboxLimit})
	if err != nil {
		b.Fatal(err)
	}
	if len(page) != n {
		b.Fatalf("inbox page of %d entries, want %d", len(page), n)
	}
	for i, e := range page {
		if !ok(e) || i > 0 && e.Activity.After(page[i-1].Activity) {
			b.Fatalf("entry %d: %+v, unread %d, after %v", i, e.Chat, e.Unread, page[max(i-1, 0)].Activity)
		}
	}
}

// BenchmarkCreateGroup times store.CreateGroupChat of a group of
// store.MaxMembersPerCall (100,000) users, in memberships written per second,
// on each growth backend; and, as the floor, a plain pgx CopyFrom of as many
// membership rows into a scratch table shaped as memberships (its columns and
// indexes, no foreign keys). Each group is deleted, outside the timer, before
// the next.
func BenchmarkCreateGroup(b *testing.B) {
	ctx := context.Background()
	rows := store.MaxMembersPerCall
	b.Run("members=100k", func(b *testing.B) {
		forEachGrowth(b, func(b *testing.B, g *bench.Growth) {
			as := viewer.NewContext(ctx, g.Creator)
			for b.Loop() {
				c, err := g.Store.CreateGroupChat(as, "Everyone", g.Users[:rows])
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := g.DeleteChat(ctx, c.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
		b.Run("pgx-copy", func(b *testing.B) {
			g := growth(b, "chatdb")
			pool, err := pgxpool.New(ctx, g.URL)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			const scratch = "bench_scratch_memberships"
			if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+scratch+`; CREATE TABLE `+scratch+` (LIKE memberships INCLUDING ALL)`); err != nil {
				b.Fatal(err)
			}
			defer pool.Exec(ctx, `DROP TABLE `+scratch)
			cols := []string{"id", "user_id", "chat_id", "role", "joined_at", "read_seq", "muted", "chat_last_message_at", "large"}
			chat, now := [16]byte(uuid.Must(uuid.NewV7())), bench.Now()
			data := make([][]any, rows)
			for i, u := range g.Users[:rows] {
				data[i] = []any{[16]byte(uuid.Must(uuid.NewV7())), [16]byte(u), chat, "member", now, int64(0), false, now, true}
			}
			for b.Loop() {
				n, err := pool.CopyFrom(ctx, pgx.Identifier{scratch}, cols, pgx.CopyFromRows(data))
				if err != nil || n != int64(rows) {
					b.Fatalf("copy: %d rows, %v", n, err)
				}
				b.StopTimer()
				if _, err := pool.Exec(ctx, `TRUNCATE `+scratch); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	})
}

// BenchmarkMarkReadUnderAppends marks read in the group of bench.ReadGroup
// members: each call is a MarkRead of the chat's newest message by the next
// of bench.Readers members in turn, with no other load (an append, outside
// the timer, before each turn, so that every call moves a position) and while
// bench.Appenders goroutines append to the same group, and, as the control,
// while as many append to another group (load=elsewhere, with the same
// appends before each turn as alone). A mark read writes the reader's
// membership only and takes no lock appends hold: its p99 under appends should
// stay near its p99 alone (target ≤ 2×), and near its p99 under appends
// elsewhere, which measures what the load costs any statement on the machine.
func BenchmarkMarkReadUnderAppends(b *testing.B) {
	ctx := context.Background()
	for _, load := range []string{"none", "appends", "elsewhere"} {
		b.Run("load="+load, func(b *testing.B) {
			forEachGrowth(b, func(b *testing.B, g *bench.Growth) {
				chat := g.MemberChats[bench.ReadGroup]
				readers := g.Users[1 : 1+bench.Readers]
				var newest atomic.Pointer[uuid.UUID]
				appendTo := func(chat uuid.UUID, user uuid.UUID, i int) (*store.Message, error) {
					return g.Store.AppendMessage(viewer.NewContext(ctx, user), store.NewMessage{ChatID: chat, Content: bench.Texts[i%len(bench.Texts)]})
				}
				appendAs := func(user uuid.UUID, i int) error {
					m, err := appendTo(chat, user, i)
					if err == nil {
						newest.Store(&m.ID)
					}
					return err
				}
				if err := appendAs(g.Users[0], 0); err != nil {
					b.Fatal(err)
				}
				if load == "elsewhere" {
					// The control: the same load on the same server and in the
					// same process, but appending to another group (the largest),
					// with which MarkRead shares no row. What MarkRead loses here
					// is the machine's (CPU, the WAL's flushes, the Go scheduler),
					// not the chat's.
					other := g.MemberChats[bench.MemberGrowth[len(bench.MemberGrowth)-1].Name]
					stop := appendLoad(b, g.Users[1+bench.Readers:1+bench.Readers+bench.Appenders], func(user uuid.UUID, i int) error {
						_, err := appendTo(other, user, i)
						return err
					})
					defer stop()
				}
				var prepare func(int) error
				if load != "appends" {
					prepare = func(i int) error {
						if i > 0 && i%len(readers) == 0 {
							return appendAs(g.Users[0], i)
						}
						return nil
					}
				} else {
					stop := appendLoad(b, g.Users[1+bench.Readers:1+bench.Readers+bench.Appenders], appendAs)
					defer stop()
				}
				timeOps(b, prepare, func(i int) error {
					return g.Store.MarkRead(viewer.NewContext(ctx, readers[i%len(readers)]), chat, *newest.Load())
				})
			})
		})
	}
}

// appendLoad starts a goroutine per user that appends as that user until the
// returned stop is called, and returns once each has tried once. stop waits
// for them, fails b if an append failed, and reports their appends per second
// and, as append-timeouts, how many gave up waiting for a lock
// (database.ErrTimeout: on SQLite, SQLITE_BUSY after the busy timeout), which
// the load survives: they are a result of the run, not a failure of it.
func appendLoad(b *testing.B, users []uuid.UUID, appendAs func(user uuid.UUID, i int) error) (stop func()) {
	var (
		wg, started     sync.WaitGroup
		done            = make(chan struct{})
		count, timeouts atomic.Int64
		errs            = make(chan error, len(users))
	)
	start := time.Now()
	for _, u := range users {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := appendAs(u, i)
				if i == 0 {
					started.Done()
				}
				switch {
				case errors.Is(err, database.ErrTimeout):
					timeouts.Add(1)
				case err != nil:
					errs <- err
					return
				default:
					count.Add(1)
				}
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	started.Wait()
	return func() {
		close(done)
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Errorf("append under load: %v", err)
		}
		b.ReportMetric(float64(count.Load())/time.Since(start).Seconds(), "appends/s")
		b.ReportMetric(float64(timeouts.Load()), "append-timeouts")
	}
}

// growthStacks are the stacks of BenchmarkHistoryGrowth: chatdb's, and pgx for
// reference.
func growthStacks() []string {
	var names []string
	for _, n := range stackNames() {
		if n == "pgx" || n == "chatdb" {
			names = append(names, n)
		}
	}
	return names
}

// BenchmarkHistoryGrowth reads a history page from the middle of chats of 10k,
// 100k and 1M messages of the main data set. With keyset pagination on seq over
// messages_chat_seq_key the time should not grow with the chat. Needs
// BENCH_GROWTH=1.
func BenchmarkHistoryGrowth(b *testing.B) {
	d := dataset(b)
	if !d.Size.Growth {
		b.Skip("cost-growth data not loaded (BENCH_GROWTH=1 loads it)")
	}
	ctx := context.Background()
	for _, st := range bench.HistoryGrowth {
		b.Run("msgs="+st.Name, func(b *testing.B) {
			for _, name := range growthStacks() {
				b.Run(name, func(b *testing.B) {
					s := stack(b, name, "HistoryPage")
					b.ReportAllocs()
					cur := d.GrowthCursors[st.Name]
					timeOps(b, nil, func(int) error {
						return s.HistoryPage(ctx, d.Users[0], cur, bench.HistoryLimit, nil)
					})
				})
			}
		})
	}
}
