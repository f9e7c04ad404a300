// Package bench compares chatdb with the code a Go chat application would
// otherwise write. Every stack implements Stack and does the same logical work per
// operation on the same data set; the benchmarks in this module's tests time them
// side by side, one sub-benchmark per stack:
//
//	pgx        hand-written pgxpool code: the floor
//	pq         hand-written database/sql on lib/pq with binary_parameters=yes
//	chatdb     chatdb's store on its default driver (pgx's database/sql driver)
//	chatdb-pq  chatdb's store on lib/pq
//	ent        stock ent, the obvious way (chatdb's generated client, privacy bypassed)
//	gorm       GORM with its PostgreSQL driver, the obvious way
//
// Mixed alone also runs chatdb on pgx under two more tracer providers
// (database.Config.TracerProvider; see TracingStacks), next to chatdb, whose
// nil provider is the global one, a no-op by default (tracing off):
//
//	chatdb-untraced  noop.NewTracerProvider(): the instrumentation off, the
//	                 drivers not wrapped, chatdb as it was before tracing
//	chatdb-traced    an SDK provider recording every span to an in-memory exporter
//
// The operations: GetUser, AppendMessage (under the chat's lock, at the chat's
// next seq, with the chat's, the sender's and, in chats of up to 32 members,
// every member's bump), HistoryPage (50 messages by keyset on seq in a chat of
// 200k), Inbox (20 chats, small and large, with last message and unread count
// last_seq − read_seq), MarkRead (read_seq forward), Import (100k messages by
// each stack's bulk path, after the chat's history) and Mixed (16 goroutines,
// 80% history pages, 20% appends, in ops/s). Before a stack is timed, Check runs
// each operation once and compares what it read and wrote with the data set
// (IDs, seqs, order, unread counts, the bumps); TestCorrectness runs the same
// check, and TestRoundTrips counts each operation's round trips through a Proxy
// and asserts them.
//
// The growth benchmarks (BENCH_GROWTH=1) time chatdb's store alone, on
// PostgreSQL through pgx ("chatdb") and on the embedded SQLite
// ("chatdb-sqlite"), over the sizes that could make an operation grow, and
// report the median and 99th percentile of the calls' times (p50-ns, p99-ns):
//
//	AppendByMembers       appends to chats of 2, 100, 1k, 10k and 100k members
//	InboxByBacklog        inboxes of 20 chats of 0, 1k and 100k unread each
//	InboxByChats          inboxes of users with 10, 1k and 10k chats
//	MarkReadUnderAppends  mark-reads in a 10k group, alone and under 16 appenders
//	CreateGroup           CreateGroupChat of 100k members, next to a pgx COPY (rows/s)
//	HistoryGrowth         history pages in chats of 10k, 100k and 1M messages (and pgx)
//
// Their data is built once per backend by LoadGrowth, through the store where
// it has a bulk path (CreateGroupChat for members, ImportMessages for
// backlogs) and by CopyFrom where it has none (users, small chats).
//
// It is a module of its own, so that chatdb's users never download GORM.
//
// bench/run runs the suite in rounds, then benchstat, and writes BENCHMARKS.md at
// the repository root, the growth tables included; bench/run -quick is a smoke
// run of a few minutes. By hand:
//
//	cd bench
//	go test -run 'TestRoundTrips|TestCorrectness' ./...
//	go test -run XXX -bench 'GetUser|HistoryPage' -benchtime 20x ./...
//
// The data set is created by the benchmarks themselves (see Load): a database
// named chatdb_bench on the server that BENCH_DATABASE_URL names (default: the
// local server as postgres, without TLS), dropped and created anew, migrated with
// database.Migrate and filled with COPY in a few seconds. Tests alone load a
// smaller one into a database of their own on the server chatdb's dbtest finds,
// and drop it. BENCH_GROWTH=1 adds the cost-growth data (a chat of 1M messages
// in the data set; the growth data in a database chatdb_bench_growth and a
// SQLite file under the temporary directory, about a minute each to build)
// and its benchmarks; see main_test.go for the other variables.
package bench
