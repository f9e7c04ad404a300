package dbtest

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/chatdb/chatdb/database"
)

// WithTracing gives the database an OpenTelemetry SDK tracer provider that
// exports every span, as it ends, to exp (tracetest.NewInMemoryExporter), for
// tests of the spans. The provider is shut down when the test ends.
func WithTracing(t testing.TB, exp *tracetest.InMemoryExporter) Option {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return WithConfig(func(cfg *database.Config) { cfg.TracerProvider = tp })
}

// RequireSpansClean fails the test when a span's name, status, attribute or
// event attribute contains one of secrets: message bodies, e-mail addresses,
// statement arguments, which no span may carry.
func RequireSpansClean(t testing.TB, spans tracetest.SpanStubs, secrets ...string) {
	t.Helper()
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, kv := range s.Attributes {
			texts = append(texts, kv.Value.Emit())
		}
		for _, e := range s.Events {
			texts = append(texts, e.Name)
			for _, kv := range e.Attributes {
				texts = append(texts, kv.Value.Emit())
			}
		}
		for _, text := range texts {
			for _, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Fatalf("span %q carries %q: %q", s.Name, secret, text)
				}
			}
		}
	}
}
