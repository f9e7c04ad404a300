package bench_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatdb/chatdb/bench"
	"github.com/chatdb/chatdb/database"
	"github.com/chatdb/chatdb/dbtest"
)

// The environment of a run:
//
//	BENCH_DATABASE_URL  the server (default: bench.DefaultServerURL for benchmarks;
//	                    for tests alone, the server dbtest finds, or a skip)
//	BENCH_DB_NAME       the benchmarks' database (default chatdb_bench)
//	BENCH_REUSE=1       keep a database of the same data set from an earlier run
//	BENCH_KEEP=1        do not drop the database at the end
//	BENCH_GROWTH=1      load the cost-growth data and run its benchmarks: the
//	                    main data set's deep chats (BenchmarkHistoryGrowth),
//	                    and the growth data of each backend (PostgreSQL
//	                    database BENCH_DB_NAME_growth, SQLite file in
//	                    $TMPDIR/BENCH_DB_NAME_growth), kept and dropped as
//	                    the main data set is
//	BENCH_IMPORT_ROWS   rows per Import operation (default 100000)
//	BENCH_PGBOUNCER=1   also run the stacks chatdb-pgbouncer and
//	                    chatdb-pq-pgbouncer: chatdb through a PgBouncer in
//	                    transaction mode that the run starts in front of the
//	                    server (Config.Pooler "transaction")
//
// Tests alone (no -bench) load bench.TestSize into a database of their own and
// always drop it; with -bench, the benchmarks' data set serves both.
var (
	serverURL string

	dsOnce sync.Once
	ds     *bench.Dataset
	dsErr  error

	stacksMu sync.Mutex
	stacks   = map[string]bench.Stack{}
	checked  = map[string]map[string]error{}
)

func TestMain(m *testing.M) {
	flag.Parse()
	// dbtest.Main stops the throwaway cluster dbtest may have started, and its
	// databases with it; on any other server the data set is dropped below.
	code := dbtest.Main(m)
	for _, s := range stacks {
		s.Close()
	}
	if bouncer != nil {
		bouncer.Close()
	}
	closeGrowth(os.Getenv("BENCH_KEEP") == "1")
	if ds != nil {
		if os.Getenv("BENCH_KEEP") == "1" && benchmarking() {
			ds.Close()
		} else if err := ds.Drop(context.Background(), serverURL); err != nil && benchmarking() {
			fmt.Fprintf(os.Stderr, "bench: drop %s: %v\n", ds.Name, err)
		}
	}
	os.Exit(code)
}

// server returns the URL of the server to load the data set on: BENCH_DATABASE_URL,
// else for benchmarks the local server, else (tests alone) the one dbtest finds as
// for chatdb's own tests, which skips the test, or fails it when
// CHATDB_TEST_REQUIRE_POSTGRES=1, when there is none.
func server(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv("BENCH_DATABASE_URL"); u != "" {
		return u
	}
	if benchmarking() {
		return bench.DefaultServerURL
	}
	return dbtest.AdminURL(tb)
}

// benchmarking reports whether the run has -test.bench.
func benchmarking() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// importRows is the number of rows of one Import operation.
func importRows() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_IMPORT_ROWS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// checkImportRows is the size of the correctness check's Import: past 65,535
// parameters at eight columns a row, so chunking is exercised, and quick; the
// ent stack's is bench.EntImportLimit (see there).
const checkImportRows = 10_000

// dataset returns the loaded data set, loading it on first use.
func dataset(tb testing.TB) *bench.Dataset {
	tb.Helper()
	url := server(tb)
	dsOnce.Do(func() {
		serverURL = url
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		size, name, reuse := bench.TestSize, "chatdb_bench_test_"+randomHex(4), false
		if benchmarking() {
			size, name = bench.DefaultSize, "chatdb_bench"
			if n := os.Getenv("BENCH_DB_NAME"); n != "" {
				name = n
			}
			size.Growth = os.Getenv("BENCH_GROWTH") == "1"
			reuse = os.Getenv("BENCH_REUSE") == "1"
		}
		ds, dsErr = bench.Load(ctx, serverURL, name, size, reuse)
		if dsErr == nil {
			fmt.Fprintf(os.Stderr, "bench: data set %s: %d users, big chat of %d messages, growth %v; loaded in %v\n",
				ds.Name, size.Users, size.BigChat, size.Growth, ds.Loaded.Round(time.Millisecond))
		}
	})
	if dsErr != nil {
		tb.Fatalf("bench: data set: %v", dsErr)
	}
	return ds
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// stack returns the stack called name on the data set, opened and checked once per
// process, and fails tb unless the checks of ops passed (of every operation when
// ops is empty): a stack that does not do the same work as the others is never
// timed.
func stack(tb testing.TB, name string, ops ...string) bench.Stack {
	tb.Helper()
	d := dataset(tb)
	stacksMu.Lock()
	defer stacksMu.Unlock()
	s, ok := stacks[name]
	if !ok {
		ctx := context.Background()
		var err error
		s, err = openStack(ctx, name, d.URL)
		if err != nil {
			tb.Fatalf("bench: open %s: %v", name, err)
		}
		stacks[name] = s
		rows := checkImportRows
		if name == "ent" {
			rows = bench.EntImportLimit
		}
		checked[name] = bench.Check(ctx, s, d, rows)
	}
	failed := false
	for _, o := range bench.Operations {
		if err := checked[name][o]; err != nil && (len(ops) == 0 || slices.Contains(ops, o)) {
			tb.Errorf("%v", err)
			failed = true
		}
	}
	if failed {
		tb.FailNow()
	}
	return s
}

// stackNames are the stacks benchmarks run, in order.
func stackNames() []string {
	var names []string
	for _, s := range bench.Stacks {
		names = append(names, s.Name)
	}
	if os.Getenv("BENCH_PGBOUNCER") == "1" {
		for _, p := range pooledStacks {
			names = append(names, p.name)
		}
	}
	return names
}

// pooledStacks are the chatdb stacks through PgBouncer (BENCH_PGBOUNCER=1).
var pooledStacks = []struct{ name, driver string }{
	{"chatdb-pgbouncer", database.DriverPgx},
	{"chatdb-pq-pgbouncer", database.DriverPQ},
}

// bouncer is the run's PgBouncer, started by the first pooled stack.
var bouncer *dbtest.PgBouncer

// openStack opens the stack called name on the database url names; the
// pooled stacks reach it through the run's PgBouncer. stacksMu is held.
func openStack(ctx context.Context, name, url string) (bench.Stack, error) {
	for _, p := range pooledStacks {
		if p.name != name {
			continue
		}
		if bouncer == nil {
			b, err := dbtest.NewPgBouncer(url)
			if err != nil {
				return nil, err
			}
			bouncer = b
		}
		return bench.OpenChatdbPooled(ctx, name, bouncer.URL(url), p.driver)
	}
	return bench.Open(ctx, name, url)
}
