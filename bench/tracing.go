package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chatdb/chatdb/database"
)

// TracingStacks are the stacks that measure what tracing costs chatdb, run by
// BenchmarkMixed alone, next to "chatdb" (a nil Config.TracerProvider: the
// global provider, a no-op unless the application sets one, "tracing off"):
//
//	chatdb-untraced  Config.TracerProvider = noop.NewTracerProvider(): the
//	                 instrumentation off altogether, the drivers not wrapped,
//	                 the code path of chatdb before tracing (the baseline)
//	chatdb-traced    an SDK provider that samples every span and exports it,
//	                 through a batch span processor, to an in-memory exporter:
//	                 the cost of recording spans, without a network
//
// They are not among Stacks: the other operations' ratios do not need them,
// and a run of bench/run grows by two stacks of Mixed only.
var TracingStacks = []struct {
	Name string
	Open Opener
}{
	{"chatdb-untraced", OpenChatdbUntraced},
	{"chatdb-traced", OpenChatdbTraced},
}

// OpenChatdbUntraced opens the chatdb-untraced stack: chatdb on pgx with a
// no-op tracer provider of package noop, which turns the instrumentation off.
func OpenChatdbUntraced(ctx context.Context, url string) (Stack, error) {
	return openChatdbConfig(ctx, "chatdb-untraced", database.Config{URL: url, Driver: database.DriverPgx,
		TracerProvider: noop.NewTracerProvider()})
}

// maxHeldSpans bounds the spans chatdb-traced's exporter holds: past it the
// exporter forgets them, so that a long run does not grow the heap (and the
// garbage collector's work, which the stacks after it would pay) without end.
const maxHeldSpans = 10_000

// OpenChatdbTraced opens the chatdb-traced stack: chatdb on pgx with an SDK
// tracer provider that samples every span (AlwaysSample) and hands it to a
// batch span processor with its defaults, which exports to an in-memory
// exporter holding at most maxHeldSpans spans. Close shuts the provider down.
func OpenChatdbTraced(ctx context.Context, url string) (Stack, error) {
	exp := &boundedExporter{InMemoryExporter: tracetest.NewInMemoryExporter(), limit: maxHeldSpans}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(exp))
	s, err := openChatdbConfig(ctx, "chatdb-traced", database.Config{URL: url, Driver: database.DriverPgx, TracerProvider: tp})
	if err != nil {
		if serr := tp.Shutdown(ctx); serr != nil {
			err = fmt.Errorf("%w (and shutting the tracer provider down: %v)", err, serr)
		}
		return nil, err
	}
	return &tracedStack{chatdbStack: s.(*chatdbStack), tp: tp, exp: exp}, nil
}

// SpanCounter is a stack that records trace spans: BenchmarkMixed reports
// the spans exported per operation (spans/op), so that a run shows whether
// tracing was on at all.
type SpanCounter interface {
	// ExportedSpans flushes the spans ended so far to the exporter and returns
	// how many it has received since the stack was opened.
	ExportedSpans(ctx context.Context) (int64, error)
}

// tracedStack is chatdb-traced: a chatdb stack that owns its tracer provider.
type tracedStack struct {
	*chatdbStack
	tp  *sdktrace.TracerProvider
	exp *boundedExporter

	closeOnce sync.Once
	closeErr  error
}

var _ SpanCounter = (*tracedStack)(nil)

func (s *tracedStack) ExportedSpans(ctx context.Context) (int64, error) {
	if err := s.tp.ForceFlush(ctx); err != nil {
		return 0, fmt.Errorf("bench: %s: flush spans: %w", s.name, err)
	}
	return s.exp.total.Load(), nil
}

// Close closes the database, then shuts the tracer provider down, which
// exports the spans still queued; safe to call twice.
func (s *tracedStack) Close() error {
	s.closeOnce.Do(func() {
		err := s.chatdbStack.Close()
		if serr := s.tp.Shutdown(context.Background()); serr != nil && err == nil {
			err = fmt.Errorf("bench: %s: shut the tracer provider down: %w", s.name, serr)
		}
		s.closeErr = err
	})
	return s.closeErr
}

// boundedExporter is the SDK's in-memory exporter, reset whenever it would
// hold more than limit spans. It counts every span it receives.
type boundedExporter struct {
	*tracetest.InMemoryExporter
	limit int64

	held  atomic.Int64
	total atomic.Int64
}

func (e *boundedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	n := int64(len(spans))
	if e.held.Add(n) > e.limit {
		e.InMemoryExporter.Reset()
		e.held.Store(n)
	}
	e.total.Add(n)
	return e.InMemoryExporter.ExportSpans(ctx, spans)
}
