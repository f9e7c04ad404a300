// Command report writes BENCHMARKS.md from the raw output of bench/run: one file
// of `go test -bench` output per round, the round-trip counts TestRoundTrips
// printed, benchstat's summary and a few facts about the machine.
//
// BenchmarkMixed also runs chatdb under two more tracer providers
// (chatdb-untraced, chatdb-traced); they have a section of their own, "Tracing
// overhead (Mixed)", and stay out of the other tables.
//
// Ratios are computed per round (each stack against pgx in the same round, which
// ran in the same process minutes apart) and the median of the rounds is shown,
// so that drift between rounds cancels out.
//
//	go run ./cmd/report -rounds 'out/round-*.txt' -roundtrips out/roundtrips.txt \
//		-benchstat out/benchstat.txt -meta out/meta.txt -o ../BENCHMARKS.md
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// stacks in the order of the tables; ops in the order of the issue.
var (
	stackOrder = []string{"pgx", "pq", "chatdb", "chatdb-pq", "ent", "gorm"}
	opOrder    = []string{"GetUser", "AppendMessage", "HistoryPage", "Inbox", "MarkRead", "Import", "Mixed"}
)

// stackNames are the rows' labels.
var stackNames = map[string]string{
	"pgx":       "pgx native (pgxpool), the floor",
	"pq":        "lib/pq, binary_parameters=yes",
	"chatdb":    "**chatdb** (store, pgx database/sql)",
	"chatdb-pq": "**chatdb** on lib/pq",
	"ent":       "stock ent (pgx database/sql)",
	"gorm":      "GORM (pgx)",
}

// result is one benchmark line's metrics, by unit.
type result map[string]float64

// round holds one round's results by benchmark name without the -N and #NN
// suffixes ("GetUser/pgx", "HistoryGrowth/msgs=10k/pgx"). A benchmark run in
// slices (BENCH_SLICES, the stacks taking turns) has one result per slice in
// samples, in the order they ran, and their median per metric in res.
type round struct {
	res     map[string]result
	samples map[string][]result
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(#\d+)?(-\d+)?\s+(\d+)\s+(.*)$`)

func parseRound(r io.Reader) (round, error) {
	out := round{res: map[string]result{}, samples: map[string][]result{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		res := result{}
		f := strings.Fields(m[5])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res[f[i+1]] = v
		}
		out.samples[m[1]] = append(out.samples[m[1]], res)
	}
	for name, rs := range out.samples {
		med := result{}
		for unit := range rs[0] {
			var xs []float64
			for _, x := range rs {
				xs = append(xs, x[unit])
			}
			med[unit] = median(xs)
		}
		out.res[name] = med
	}
	return out, sc.Err()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// report holds everything parsed.
type report struct {
	rounds     []round
	roundTrips map[string]map[string]int // op -> stack -> count
	benchstat  string
	meta       [][2]string
	// notes is hand-written Markdown placed after the targets: why a target is
	// missed, and facts measured outside the rounds (bench/notes.md).
	notes string
}

// values returns the metric unit of benchmark name over the rounds that have it.
func (r *report) values(name, unit string) []float64 {
	var out []float64
	for _, rd := range r.rounds {
		if res, ok := rd.res[name]; ok {
			if v, ok := res[unit]; ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// ratios returns, per round that has both, stack's metric over base's: the
// median of the ratios between slices measured side by side (the i-th of each,
// see BENCH_SLICES), which is the plain ratio when a round ran one slice.
func (r *report) ratios(op, stack, base, unit string) []float64 {
	return r.pairRatios(op+"/"+stack, op+"/"+base, unit)
}

// pairRatios is ratios for any two benchmarks: name's metric over base's.
func (r *report) pairRatios(name, base, unit string) []float64 {
	var out []float64
	for _, rd := range r.rounds {
		a, b := rd.samples[name], rd.samples[base]
		var xs []float64
		for i := range min(len(a), len(b)) {
			x, okx := a[i][unit]
			y, oky := b[i][unit]
			if okx && oky && y != 0 {
				xs = append(xs, x/y)
			}
		}
		if len(xs) > 0 {
			out = append(out, median(xs))
		}
	}
	return out
}

// unitOf is the metric an operation's ratio is taken on: time per operation,
// except Mixed, which is throughput (higher is better).
func unitOf(op string) string {
	if op == "Mixed" {
		return "ops/s"
	}
	return "ns/op"
}

func (r *report) ratio(op, stack string) (float64, bool) {
	xs := r.ratios(op, stack, "pgx", unitOf(op))
	if len(xs) == 0 {
		return 0, false
	}
	return median(xs), true
}

func main() {
	roundsGlob := flag.String("rounds", "", "glob of per-round benchmark outputs")
	rtFile := flag.String("roundtrips", "", "output of TestRoundTrips -v")
	bsFile := flag.String("benchstat", "", "benchstat output")
	metaFile := flag.String("meta", "", "file of 'key: value' lines about the run")
	notesFile := flag.String("notes", "", "Markdown file placed after the targets table (optional)")
	outFile := flag.String("o", "BENCHMARKS.md", "output file")
	flag.Parse()

	var rep report
	files, err := filepath.Glob(*roundsGlob)
	if err != nil || len(files) == 0 {
		fatalf("no round files match %q", *roundsGlob)
	}
	sort.Slice(files, func(i, j int) bool { return roundNumber(files[i]) < roundNumber(files[j]) })
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			fatalf("%v", err)
		}
		rd, err := parseRound(fh)
		fh.Close()
		if err != nil {
			fatalf("%s: %v", f, err)
		}
		rep.rounds = append(rep.rounds, rd)
	}
	if *rtFile != "" {
		rep.roundTrips = readRoundTrips(*rtFile)
	}
	if *bsFile != "" {
		b, err := os.ReadFile(*bsFile)
		if err == nil {
			rep.benchstat = string(b)
		}
	}
	if *metaFile != "" {
		rep.meta = readMeta(*metaFile)
	}
	if *notesFile != "" {
		if b, err := os.ReadFile(*notesFile); err == nil {
			rep.notes = strings.TrimSpace(string(b)) + "\n\n"
		}
	}
	var b strings.Builder
	rep.write(&b)
	if err := os.WriteFile(*outFile, []byte(b.String()), 0o644); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "report: "+format+"\n", args...)
	os.Exit(1)
}

var digits = regexp.MustCompile(`(\d+)`)

func roundNumber(path string) int {
	m := digits.FindAllString(filepath.Base(path), -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1])
	return n
}

func readRoundTrips(path string) map[string]map[string]int {
	out := map[string]map[string]int{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "roundtrips" {
			continue
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		if out[f[1]] == nil {
			out[f[1]] = map[string]int{}
		}
		out[f[1]][f[2]] = n
	}
	return out
}

func readMeta(path string) [][2]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

// present reports whether any round has op on stack.
func (r *report) present(op, stack string) bool {
	return len(r.values(op+"/"+stack, unitOf(op))) > 0
}

func (r *report) stacks() []string {
	var out []string
	for _, s := range stackOrder {
		for _, op := range opOrder {
			if r.present(op, s) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func (r *report) write(w *strings.Builder) {
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "Written by `bench/run` (bench/cmd/report); do not edit by hand. ")
	fmt.Fprintf(w, "Every stack does the same logical work per operation on the same data set in one benchmark binary; ")
	fmt.Fprintf(w, "see `bench/doc.go` and `bench/stack.go` for what each operation and stack does.\n\n")

	quick := len(r.rounds) < 3
	for _, kv := range r.meta {
		if kv[0] == "command" && strings.Contains(kv[1], "-quick") {
			quick = true
		}
	}
	if quick {
		fmt.Fprintf(w, "> **Smoke run**: %d round(s) of few iterations, to check that the suite works. ", len(r.rounds))
		fmt.Fprintf(w, "Its numbers are noise; `bench/run` without -quick measures.\n\n")
	}

	fmt.Fprintf(w, "## Run\n\n| | |\n| --- | --- |\n")
	for _, kv := range r.meta {
		fmt.Fprintf(w, "| %s | %s |\n", kv[0], strings.ReplaceAll(kv[1], "|", "\\|"))
	}
	fmt.Fprintf(w, "| rounds | %d |\n\n", len(r.rounds))

	stacks := r.stacks()
	fmt.Fprintf(w, "## Ratios to pgx\n\n")
	fmt.Fprintf(w, "Median over the rounds of each round's ratio to pgx in that round. Time per operation (lower is better), ")
	fmt.Fprintf(w, "except Mixed: operations per second with 16 goroutines, 80%% history pages and 20%% appends (higher is better).\n\n")
	fmt.Fprintf(w, "| stack | GetUser | AppendMessage | HistoryPage (50, keyset) | Inbox (20) | MarkRead | Import (100k) | Mixed ops/s |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range stacks {
		fmt.Fprintf(w, "| %s |", stackNames[s])
		for _, op := range opOrder {
			if v, ok := r.ratio(op, s); ok {
				fmt.Fprintf(w, " %.2f |", v)
			} else {
				fmt.Fprintf(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	if r.present("GetUser", "ent") && !r.present("Import", "ent") {
		fmt.Fprintf(w, "Stock ent's Import is not timed at this size: under chatdb's sequence hook an import through the ent client ")
		fmt.Fprintf(w, "costs more than linearly in its rows (see `bench.EntImportLimit`); it is checked and its round trips counted at 2,500.\n\n")
	}

	r.writeTargets(w)
	w.WriteString(r.notes)
	r.writeTracing(w)
	r.writeAbsolute(w, stacks)
	r.writeRoundTrips(w, stacks)
	r.writeGrowth(w)

	if r.benchstat != "" {
		fmt.Fprintf(w, "## benchstat\n\nAll rounds together: median and 95%% confidence interval of each benchmark (raw outputs in `bench/out/` after a run).\n\n")
		fmt.Fprintf(w, "<details><summary>benchstat output</summary>\n\n```\n%s```\n\n</details>\n", r.benchstat)
	}
}

// target is one of the goals for chatdb.
type target struct {
	op   string
	max  float64 // for time ratios: at most; for Mixed and Import the throughput floor
	rt   int     // at most this many round trips; 0 for none
	note string
}

var targets = []target{
	{op: "GetUser", max: 1.10},
	{op: "AppendMessage", max: 1.10},
	{op: "HistoryPage", max: 1.15},
	{op: "Inbox", max: 1.20, rt: 2},
	{op: "MarkRead", max: 1.10},
	{op: "Import", max: 0.8, note: "rows/s ≥ 0.8× pgx CopyFrom (chatdb-pq: ≥ 0.8× lib/pq COPY)"},
	{op: "Mixed", max: 0.9, note: "ops/s ≥ 0.9× pgxpool"},
}

func (r *report) writeTargets(w *strings.Builder) {
	if !r.present("GetUser", "chatdb") && !r.present("Import", "chatdb") {
		return
	}
	fmt.Fprintf(w, "## chatdb against the targets\n\n")
	fmt.Fprintf(w, "The issue's targets on the default driver (chatdb) and the same bounds for lib/pq (chatdb-pq, whose Import is measured against lib/pq COPY). ")
	fmt.Fprintf(w, "\"ahead\" is whether chatdb beats both stock ent and GORM on that row.\n\n")
	fmt.Fprintf(w, "| operation | target | chatdb | met | chatdb-pq | met | ahead of ent and GORM |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, t := range targets {
		goal := fmt.Sprintf("≤ %.2f× pgx", t.max)
		if t.note != "" {
			goal = t.note
		}
		if t.rt > 0 {
			goal += fmt.Sprintf(", ≤ %d round trips", t.rt)
		}
		fmt.Fprintf(w, "| %s | %s |", t.op, goal)
		for _, s := range []string{"chatdb", "chatdb-pq"} {
			v, met, ok := r.meets(t, s)
			if !ok {
				fmt.Fprintf(w, " – | – |")
				continue
			}
			mark := "yes"
			if !met {
				mark = "**no**"
			}
			fmt.Fprintf(w, " %s | %s |", v, mark)
		}
		fmt.Fprintf(w, " %s |\n", r.ahead(t.op))
	}
	fmt.Fprintln(w)
}

// meets returns stack's measure for t, printed, and whether it meets t.
func (r *report) meets(t target, stack string) (string, bool, bool) {
	switch t.op {
	case "Import":
		base := "pgx"
		if stack == "chatdb-pq" {
			base = "pq"
		}
		xs := r.ratios("Import", stack, base, "rows/s")
		if len(xs) == 0 {
			return "", false, false
		}
		v := median(xs)
		return fmt.Sprintf("%.2f× %s rows/s", v, base), v >= t.max, true
	case "Mixed":
		v, ok := r.ratio("Mixed", stack)
		if !ok {
			return "", false, false
		}
		return fmt.Sprintf("%.2f×", v), v >= t.max, true
	}
	v, ok := r.ratio(t.op, stack)
	if !ok {
		return "", false, false
	}
	met := v <= t.max
	s := fmt.Sprintf("%.2f×", v)
	if t.rt > 0 {
		if n, ok := r.roundTrips[t.op][stack]; ok {
			s += fmt.Sprintf(", %d RT", n)
			met = met && n <= t.rt
		}
	}
	return s, met, true
}

func (r *report) ahead(op string) string {
	c, ok := r.ratio(op, "chatdb")
	if !ok {
		return "–"
	}
	better := func(a, b float64) bool {
		if op == "Mixed" {
			return a > b
		}
		return a < b
	}
	var behind []string
	for _, s := range []string{"ent", "gorm"} {
		if v, ok := r.ratio(op, s); ok && !better(c, v) {
			behind = append(behind, s)
		}
	}
	if len(behind) == 0 {
		return "yes"
	}
	return "**no** (" + strings.Join(behind, ", ") + ")"
}

func (r *report) writeAbsolute(w *strings.Builder, stacks []string) {
	fmt.Fprintf(w, "## Medians\n\nMedian over the rounds: time per operation, allocations and bytes allocated per operation (client side), ")
	fmt.Fprintf(w, "and for Import rows/s, for Mixed ops/s.\n\n")
	fmt.Fprintf(w, "| operation | stack | time/op | allocs/op | B/op | throughput |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, op := range opOrder {
		for _, s := range stacks {
			name := op + "/" + s
			ns := r.values(name, "ns/op")
			if len(ns) == 0 {
				continue
			}
			thr := ""
			switch op {
			case "Import":
				thr = fmt.Sprintf("%.0f rows/s", median(r.values(name, "rows/s")))
			case "Mixed":
				thr = fmt.Sprintf("%.0f ops/s", median(r.values(name, "ops/s")))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f | %s |\n", op, s, duration(median(ns)),
				median(r.values(name, "allocs/op")), median(r.values(name, "B/op")), thr)
		}
	}
	fmt.Fprintln(w)
}

func duration(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	default:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
}

func (r *report) writeRoundTrips(w *strings.Builder, stacks []string) {
	if len(r.roundTrips) == 0 {
		return
	}
	cols := slices.Clone(stacks)
	if _, ok := r.roundTrips["GetUser"]["pq-default"]; ok {
		cols = append(cols, "pq-default")
	}
	fmt.Fprintf(w, "## Round trips per operation\n\n")
	fmt.Fprintf(w, "Counted by TestRoundTrips through a proxy on loopback (Sync, Query, CopyDone and CopyFail messages from the client), ")
	fmt.Fprintf(w, "with statements already prepared; asserted in that test. pq-default is lib/pq without binary_parameters. ")
	fmt.Fprintf(w, "Import here is 2,500 rows (the ORMs' chunks are 1,000).\n\n")
	fmt.Fprintf(w, "| operation |")
	for _, s := range cols {
		fmt.Fprintf(w, " %s |", s)
	}
	fmt.Fprintf(w, "\n| --- |%s\n", strings.Repeat(" --- |", len(cols)))
	for _, op := range opOrder {
		if _, ok := r.roundTrips[op]; !ok {
			continue
		}
		fmt.Fprintf(w, "| %s |", op)
		for _, s := range cols {
			if n, ok := r.roundTrips[op][s]; ok {
				fmt.Fprintf(w, " %d |", n)
			} else {
				fmt.Fprintf(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

// growthSeries is one growth table: a benchmark over the sizes of one
// dimension, on some stacks, with the target for the largest size's
// median against the smallest's (0: none).
type growthSeries struct {
	bench, param string
	steps        []string
	what         string
	stacks       []string
	target       float64
}

// growthStacks are the stacks of the growth benchmarks of chatdb's store, and
// their labels.
var (
	growthStacks    = []string{"chatdb", "chatdb-sqlite"}
	growthStackName = map[string]string{
		"pgx":           "pgx",
		"chatdb":        "chatdb (PostgreSQL, pgx)",
		"chatdb-sqlite": "chatdb (SQLite)",
		"pgx-copy":      "pgx CopyFrom into a scratch table shaped as memberships",
	}
)

var growthTables = []growthSeries{
	{"AppendByMembers", "members", []string{"2", "100", "1k", "10k", "100k"},
		"AppendMessage by the chat's owner, by members of the chat", growthStacks, 1.25},
	{"InboxByBacklog", "unread", []string{"0", "1k", "100k"},
		"Inbox (20 chats) by unread messages in each chat of the page", growthStacks, 1.5},
	{"InboxByChats", "chats", []string{"10", "1k", "10k"},
		"Inbox (20 chats) by chats of the user", growthStacks, 1.5},
	{"HistoryGrowth", "msgs", []string{"10k", "100k", "1M"},
		"HistoryPage (50 messages from the middle of a chat) by messages in the chat", []string{"pgx", "chatdb"}, 0},
}

func (r *report) writeGrowth(w *strings.Builder) {
	fmt.Fprintf(w, "## Cost growth\n\n")
	fmt.Fprintf(w, "Each operation over the size that could make it grow, per stack: the median (p50) and 99th percentile (p99) of the calls' times ")
	fmt.Fprintf(w, "(median over the rounds), and the p50 against the smallest size's (median of each round's ratio). ")
	fmt.Fprintf(w, "chatdb (PostgreSQL) is the store on pgx's database/sql driver; chatdb (SQLite) the store on the embedded SQLite file.\n\n")
	shown := false
	for _, s := range growthTables {
		shown = r.writeGrowthTable(w, s) || shown
	}
	shown = r.writeMarkReadLoad(w) || shown
	shown = r.writeGroupCreation(w) || shown
	if !shown {
		fmt.Fprintf(w, "Not measured in this run: `BENCH_GROWTH=1 bench/run` builds the growth data (chats of up to 100,000 members, backlogs of up to 100,000 unread messages a chat, ")
		fmt.Fprintf(w, "users of up to 10,000 chats, on PostgreSQL and SQLite; a chat of 1M messages in the main data set) and runs the growth benchmarks.\n\n")
	}
}

// growthName is the benchmark name of series s at step on stack.
func (s growthSeries) name(step, stack string) string {
	return s.bench + "/" + s.param + "=" + step + "/" + stack
}

// p50 returns benchmark name's median call time over the rounds: p50-ns, or
// ns/op for a run from before the growth benchmarks reported percentiles.
func (r *report) p50(name string) (float64, bool) {
	for _, unit := range []string{"p50-ns", "ns/op"} {
		if xs := r.values(name, unit); len(xs) > 0 {
			return median(xs), true
		}
	}
	return 0, false
}

// p50Unit is the unit p50 read for name.
func (r *report) p50Unit(name string) string {
	if len(r.values(name, "p50-ns")) > 0 {
		return "p50-ns"
	}
	return "ns/op"
}

// metric returns the median over the rounds of name's unit, printed by f, or
// "–".
func (r *report) metric(name, unit string, f func(float64) string) string {
	xs := r.values(name, unit)
	if len(xs) == 0 {
		return "–"
	}
	return f(median(xs))
}

func (r *report) writeGrowthTable(w *strings.Builder, s growthSeries) bool {
	var stacks []string
	for _, st := range s.stacks {
		for _, step := range s.steps {
			if _, ok := r.p50(s.name(step, st)); ok {
				stacks = append(stacks, st)
				break
			}
		}
	}
	if len(stacks) == 0 {
		return false
	}
	first, last := s.steps[0], s.steps[len(s.steps)-1]
	fmt.Fprintf(w, "%s", s.what)
	if s.target > 0 {
		fmt.Fprintf(w, " (target: p50 at %s=%s ≤ %.2f× p50 at %s=%s)", s.param, last, s.target, s.param, first)
	}
	fmt.Fprintf(w, ":\n\n| %s |", s.param)
	for _, st := range stacks {
		fmt.Fprintf(w, " %s p50 | p99 | × %s |", growthStackName[st], first)
	}
	fmt.Fprintf(w, "\n| --- |%s\n", strings.Repeat(" --- | --- | --- |", len(stacks)))
	for _, step := range s.steps {
		fmt.Fprintf(w, "| %s |", step)
		for _, st := range stacks {
			name := s.name(step, st)
			xs := r.pairRatios(name, s.name(first, st), r.p50Unit(name))
			ratio := "–"
			if len(xs) > 0 {
				ratio = fmt.Sprintf("%.2f×", median(xs))
			}
			fmt.Fprintf(w, " %s | %s | %s |", r.metric(name, r.p50Unit(name), duration), r.metric(name, "p99-ns", duration), ratio)
		}
		fmt.Fprintln(w)
	}
	if s.target > 0 {
		fmt.Fprintf(w, "| target ≤ %.2f× |", s.target)
		for _, st := range stacks {
			xs := r.pairRatios(s.name(last, st), s.name(first, st), r.p50Unit(s.name(last, st)))
			fmt.Fprintf(w, " | | %s |", metMark(xs, func(v float64) bool { return v <= s.target }))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	return true
}

// metMark says whether the median of xs meets ok: "met", "**missed**", or "–"
// when there is nothing to judge.
func metMark(xs []float64, ok func(float64) bool) string {
	switch {
	case len(xs) == 0:
		return "–"
	case ok(median(xs)):
		return "met"
	default:
		return "**missed**"
	}
}

// markReadTarget is the bound on MarkRead's p99 while appends load
// the same group, against its p99 alone.
const markReadTarget = 2.0

func (r *report) writeMarkReadLoad(w *strings.Builder) bool {
	name := func(load, stack string) string { return "MarkReadUnderAppends/load=" + load + "/" + stack }
	var rows []string
	for _, st := range growthStacks {
		alone, loaded, elsewhere := name("none", st), name("appends", st), name("elsewhere", st)
		if len(r.values(alone, "p99-ns")) == 0 && len(r.values(loaded, "p99-ns")) == 0 {
			continue
		}
		xs := r.pairRatios(loaded, alone, "p99-ns")
		ratio := func(xs []float64) string {
			if len(xs) == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f×", median(xs))
		}
		count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", growthStackName[st],
			r.metric(alone, "p50-ns", duration), r.metric(alone, "p99-ns", duration),
			r.metric(loaded, "p50-ns", duration), r.metric(loaded, "p99-ns", duration), ratio(xs),
			r.metric(loaded, "appends/s", count), r.metric(loaded, "append-timeouts", count),
			r.metric(elsewhere, "p99-ns", duration), ratio(r.pairRatios(loaded, elsewhere, "p99-ns")),
			metMark(xs, func(v float64) bool { return v <= markReadTarget })))
	}
	if len(rows) == 0 {
		return false
	}
	fmt.Fprintf(w, "MarkRead in a group of 10,000 members: each call marks the newest message read, by 100 members in turn, alone and while 16 goroutines append to the group ")
	fmt.Fprintf(w, "(target: p99 under appends ≤ %.0f× p99 alone). Append timeouts are appends that gave up waiting for a lock (SQLite's busy timeout). ", markReadTarget)
	fmt.Fprintf(w, "The control, \"elsewhere\", is the same 16 goroutines appending to another group, which shares no row with the MarkReads: ")
	fmt.Fprintf(w, "its p99 is what the load costs any statement on this machine (CPU, WAL flushes, the Go scheduler), and \"÷ elsewhere\" near 1 says the group itself adds nothing.\n\n")
	fmt.Fprintf(w, "| stack | p50 alone | p99 alone | p50 under appends | p99 under appends | p99 ratio | appends/s | append timeouts | p99 under appends elsewhere | p99 ÷ elsewhere | target ≤ %.0f× |\n", markReadTarget)
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n%s\n\n", strings.Join(rows, "\n"))
	return true
}

func (r *report) writeGroupCreation(w *strings.Builder) bool {
	name := func(stack string) string { return "CreateGroup/members=100k/" + stack }
	var rows []string
	for _, st := range append(slices.Clone(growthStacks), "pgx-copy") {
		n := name(st)
		if len(r.values(n, "rows/s")) == 0 {
			continue
		}
		what := growthStackName[st]
		if st != "pgx-copy" {
			what += ", store.CreateGroupChat"
		}
		ratio := "–"
		if xs := r.pairRatios(n, name("pgx-copy"), "rows/s"); len(xs) > 0 {
			ratio = fmt.Sprintf("%.2f×", median(xs))
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", what, r.metric(n, "ns/op", duration),
			r.metric(n, "rows/s", func(v float64) string { return fmt.Sprintf("%.0f", v) }), ratio))
	}
	if len(rows) == 0 {
		return false
	}
	fmt.Fprintf(w, "Creating a group of 100,000 members in one call, against writing as many membership rows with a plain COPY ")
	fmt.Fprintf(w, "(into a table with memberships' columns and indexes, no foreign keys): memberships written per second.\n\n")
	fmt.Fprintf(w, "| how | time per group | rows/s | × pgx CopyFrom |\n| --- | --- | --- | --- |\n%s\n\n", strings.Join(rows, "\n"))
	return true
}

// tracingTarget is the bound on chatdb's Mixed ops/s with tracing off
// (a nil Config.TracerProvider: the drivers wrapped, spans not recorded)
// against chatdb with the instrumentation off altogether (chatdb-untraced,
// the code path before tracing): at most 2% slower.
const tracingTarget = 0.98

// tracingRows are the rows of the tracing section: the stack, what its
// Config.TracerProvider is, and whether its ratio to chatdb-untraced has the
// target (with a recorder the cost is reported, not bounded).
var tracingRows = []struct {
	stack, provider string
	target          bool
}{
	{"chatdb-untraced", "`noop.NewTracerProvider()`: instrumentation off, drivers not wrapped (chatdb before tracing; the base)", false},
	{"chatdb", "nil: the global provider, a no-op by default (tracing off, the default)", true},
	{"chatdb-traced", "SDK provider, AlwaysSample, batch span processor, in-memory exporter (tracing on)", false},
}

// writeTracing writes the section on what tracing costs Mixed, when the run
// has the tracing stacks.
func (r *report) writeTracing(w *strings.Builder) {
	if !r.present("Mixed", "chatdb-untraced") && !r.present("Mixed", "chatdb-traced") {
		return
	}
	const base = "chatdb-untraced"
	fmt.Fprintf(w, "## Tracing overhead (Mixed)\n\n")
	fmt.Fprintf(w, "Mixed (16 goroutines, 80%% history pages, 20%% appends) on chatdb over pgx under three tracer providers (`database.Config.TracerProvider`), ")
	fmt.Fprintf(w, "run in the same slices as the other stacks, one after the other. ")
	fmt.Fprintf(w, "The ratio is ops/s against chatdb-untraced: the median over the rounds of each round's median ratio between slices measured side by side; ")
	fmt.Fprintf(w, "the range is that of the rounds' ratios. Target: tracing off costs at most 2%% (ratio ≥ %.2f); tracing on is reported, with no target. ", tracingTarget)
	fmt.Fprintf(w, "allocs/op are the client's, per operation; spans/op the spans the in-memory exporter received per operation.\n\n")
	fmt.Fprintf(w, "| stack | tracer provider | ops/s | allocs/op | spans/op | × %s | rounds' range | target | met |\n", base)
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, row := range tracingRows {
		if !r.present("Mixed", row.stack) {
			continue
		}
		name := "Mixed/" + row.stack
		count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
		ops, allocs := r.metric(name, "ops/s", count), r.metric(name, "allocs/op", count)
		spans := r.metric(name, "spans/op", func(v float64) string { return fmt.Sprintf("%.1f", v) })
		ratio, span := "–", "–"
		if row.stack == base {
			ratio = "1 (base)"
		} else if xs := r.ratios("Mixed", row.stack, base, "ops/s"); len(xs) > 0 {
			ratio = fmt.Sprintf("%.3f×", median(xs))
			span = fmt.Sprintf("%.3f–%.3f", slices.Min(xs), slices.Max(xs))
		}
		goal, met := "–", "–"
		if row.target {
			goal = fmt.Sprintf("≥ %.2f×", tracingTarget)
			met = metMark(r.ratios("Mixed", row.stack, base, "ops/s"), func(v float64) bool { return v >= tracingTarget })
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.stack, row.provider, ops, allocs, spans, ratio, span, goal, met)
	}
	fmt.Fprintln(w)
}
