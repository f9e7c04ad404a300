package bench

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestBoundedExporter checks that chatdb-traced's exporter counts every span
// it receives and holds no more than its limit, so that spans/op is right and
// a long run's heap stays bounded.
func TestBoundedExporter(t *testing.T) {
	exp := &boundedExporter{InMemoryExporter: tracetest.NewInMemoryExporter(), limit: 3}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr := tp.Tracer("bench")
	for range 7 {
		_, span := tr.Start(context.Background(), "op")
		span.End()
	}
	if got := exp.total.Load(); got != 7 {
		t.Errorf("total = %d spans, want 7", got)
	}
	if got := len(exp.GetSpans()); got > 3 {
		t.Errorf("held %d spans, want at most 3", got)
	}
}
