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
// The operations: GetUser, AppendMessage (insert and chat bump, atomically),
// HistoryPage (50 messages by keyset in a chat of 200k), Inbox (20 chats with last
// message and unread count), MarkRead, Import (100k messages by each stack's bulk
// path) and Mixed (16 goroutines, 80% history pages, 20% appends, in ops/s).
// Before a stack is timed, Check runs each operation once and compares what it
// read and wrote with the data set; TestCorrectness runs the same check, and
// TestRoundTrips counts each operation's round trips through a Proxy and asserts
// them.
//
// It is a module of its own, so that chatdb's users never download GORM.
//
// bench/run runs the suite in rounds, then benchstat, and writes BENCHMARKS.md at
// the repository root; bench/run -quick is a smoke run of about a minute. By
// hand:
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
// and drop it. BENCH_GROWTH=1 adds the cost-growth data (a chat of 1M messages,
// users with up to 10k chats) and its benchmarks; see main_test.go for the other
// variables.
package bench
