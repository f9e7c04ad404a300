package bench_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/chatdb/chatdb/bench"
)

// mixedGoroutines is the concurrency of BenchmarkMixed.
const mixedGoroutines = 16

// forEachStack runs fn as a sub-benchmark per stack, named after it; a stack whose
// checks of ops did not pass fails its sub-benchmark.
//
// With BENCH_SLICES=n it does so n times, the stacks taking turns: a
// benchmark of one stack then measures n short slices spread over the time
// the others run, and go test names the repeats name#01, name#02, ....
// Appends and read marks commit, so their times swing with the disk's flush
// latency on a shared machine (seen here: the floor's append between 420 and
// 680 µs from one second to the next); a ratio taken between slices measured
// side by side (bench/cmd/report pairs them) cancels that, where one second
// of each stack after the other does not.
func forEachStack(b *testing.B, ops []string, fn func(b *testing.B, s bench.Stack)) {
	forEachStackOf(b, stackNames(), ops, false, fn)
}

// forEachStackOf is forEachStack over the stacks names lists, in that order.
// With closeIdle, each stack closes its idle connections (bench.IdleCloser)
// once its slice is over, outside the slice's runs: the slice's first,
// smaller runs open them again, and its last run, the one go test reports,
// finds them open as before.
func forEachStackOf(b *testing.B, names, ops []string, closeIdle bool, fn func(b *testing.B, s bench.Stack)) {
	for range benchSlices() {
		for _, name := range names {
			var s bench.Stack
			b.Run(name, func(b *testing.B) {
				s = stack(b, name, ops...)
				b.ReportAllocs()
				fn(b, s)
			})
			if ic, ok := s.(bench.IdleCloser); ok && closeIdle {
				ic.CloseIdle()
			}
		}
	}
}

// mixedStackNames are the stacks BenchmarkMixed runs: stackNames, with the
// tracing stacks (bench.TracingStacks) right after chatdb, so that the three
// configurations of chatdb's tracing run one after the other in each slice.
func mixedStackNames() []string {
	var names []string
	for _, n := range stackNames() {
		names = append(names, n)
		if n == "chatdb" {
			for _, t := range bench.TracingStacks {
				names = append(names, t.Name)
			}
		}
	}
	return names
}

// benchSlices returns BENCH_SLICES, or 1.
func benchSlices() int {
	n, err := strconv.Atoi(os.Getenv("BENCH_SLICES"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func BenchmarkGetUser(b *testing.B) {
	d := dataset(b)
	ctx := context.Background()
	forEachStack(b, []string{"GetUser"}, func(b *testing.B, s bench.Stack) {
		i := 0
		for b.Loop() {
			if err := s.GetUser(ctx, d.Reader, d.Users[i%len(d.Users)], nil); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkAppendMessage(b *testing.B) {
	d := dataset(b)
	ctx := context.Background()
	forEachStack(b, []string{"AppendMessage"}, func(b *testing.B, s bench.Stack) {
		m := bench.Message{ChatID: d.AppendChat, SenderID: &d.Sender, Role: "user"}
		i := 0
		for b.Loop() {
			m.ID = uuid.Must(uuid.NewV7())
			m.Content = bench.Texts[i%len(bench.Texts)]
			if err := s.AppendMessage(ctx, &m); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.StopTimer()
		if err := d.ClearAppends(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkHistoryPage(b *testing.B) {
	d := dataset(b)
	ctx := context.Background()
	forEachStack(b, []string{"HistoryPage"}, func(b *testing.B, s bench.Stack) {
		i := 0
		for b.Loop() {
			if err := s.HistoryPage(ctx, d.Reader, d.Cursors[i%len(d.Cursors)], bench.HistoryLimit, nil); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkInbox(b *testing.B) {
	d := dataset(b)
	ctx := context.Background()
	forEachStack(b, []string{"Inbox"}, func(b *testing.B, s bench.Stack) {
		for b.Loop() {
			if err := s.Inbox(ctx, d.InboxUser, bench.InboxLimit, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMarkRead(b *testing.B) {
	d := dataset(b)
	ctx := context.Background()
	forEachStack(b, []string{"MarkRead"}, func(b *testing.B, s bench.Stack) {
		if err := d.ResetRead(ctx); err != nil {
			b.Fatal(err)
		}
		// The read position moves forward one message per operation, as a reader
		// scrolling does; it starts over (outside the timer) at the end of the chat.
		i := 0
		for b.Loop() {
			if i == len(d.BigChatMessages) {
				b.StopTimer()
				if err := d.ResetRead(ctx); err != nil {
					b.Fatal(err)
				}
				i = 0
				b.StartTimer()
			}
			if err := s.MarkRead(ctx, d.Reader, d.BigChat, d.BigChatMessages[i].ID); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.StopTimer()
		if err := d.ResetRead(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkImport(b *testing.B) {
	d := dataset(b)
	ctx := context.Background()
	rows := importRows()
	msgs := bench.ImportMessages(uuid.Nil, d.Sender, rows)
	forEachStack(b, []string{"Import"}, func(b *testing.B, s bench.Stack) {
		if s.Name() == "ent" && rows > bench.EntImportLimit {
			b.Skipf("an import through the ent client grows faster than its size (see bench.EntImportLimit); not timed at %d rows", rows)
		}
		for b.Loop() {
			b.StopTimer()
			chat, err := d.NewChat(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for i := range msgs {
				msgs[i].ChatID = chat
			}
			b.StartTimer()
			if err := s.Import(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := d.DeleteChat(ctx, chat); err != nil {
				b.Fatal(err)
			}
			if err := d.Vacuum(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkMixed runs mixedGoroutines goroutines sharing b.N operations: four in
// five read a history page of the big chat, one in five appends to the
// goroutine's own chat (so appends wait on no other goroutine's row lock).
// It alone also runs the tracing stacks (see mixedStackNames); on a stack that
// records spans it reports the spans exported per operation (spans/op). Each
// stack closes its idle connections after its slice (see forEachStackOf).
func BenchmarkMixed(b *testing.B) {
	d := dataset(b)
	ctx := context.Background()
	if len(d.MixedChats) < mixedGoroutines {
		b.Fatalf("data set has %d mixed chats, want %d", len(d.MixedChats), mixedGoroutines)
	}
	forEachStackOf(b, mixedStackNames(), []string{"HistoryPage", "AppendMessage"}, true, func(b *testing.B, s bench.Stack) {
		// Open the pool's connections before timing, and run both operations on
		// them: every stack starts the timed part with mixedGoroutines
		// connections ready, their statements prepared (the connections are new
		// in each slice: forEachStackOf closes them after it, and a statement's
		// first run on a connection costs the stacks unequally). Two rounds of
		// both, all goroutines at once, reach nearly every connection.
		var wg sync.WaitGroup
		for g := range mixedGoroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := bench.Message{ChatID: d.MixedChats[g], SenderID: &d.Sender, Role: "user", Content: bench.Texts[0]}
				for range 2 {
					s.HistoryPage(ctx, d.Reader, d.Cursors[0], bench.HistoryLimit, nil)
					m.ID = uuid.Must(uuid.NewV7())
					s.AppendMessage(ctx, &m)
				}
			}()
		}
		wg.Wait()
		// The warm-up's spans are flushed before timing, and the count taken
		// after it flushes the timed part's: the flush is never timed.
		sc, counting := s.(bench.SpanCounter)
		var spans0 int64
		if counting {
			n, err := sc.ExportedSpans(ctx)
			if err != nil {
				b.Fatal(err)
			}
			spans0 = n
		}
		var next atomic.Int64
		errs := make(chan error, mixedGoroutines)
		n := int64(b.N)
		b.ResetTimer()
		for g := range mixedGoroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := bench.Message{ChatID: d.MixedChats[g], SenderID: &d.Sender, Role: "user"}
				for {
					i := next.Add(1) - 1
					if i >= n {
						return
					}
					var err error
					if i%5 == 4 {
						m.ID = uuid.Must(uuid.NewV7())
						m.Content = bench.Texts[i%int64(len(bench.Texts))]
						err = s.AppendMessage(ctx, &m)
					} else {
						err = s.HistoryPage(ctx, d.Reader, d.Cursors[i%int64(len(d.Cursors))], bench.HistoryLimit, nil)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		if counting {
			n, err := sc.ExportedSpans(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n-spans0)/float64(b.N), "spans/op")
		}
		if err := d.ClearAppends(ctx); err != nil {
			b.Fatal(err)
		}
	})
}
