package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sessioncap/sessioncap/extra/sessioncapotel"
)

// TestTracing wires Config.Tracer to OpenTelemetry and the go-redis client to
// redisotel, both on one in-memory provider, and checks that every engine
// span has the Redis command spans as its children: the trace then shows how
// much of a request's session time is the script round trip.
func TestTracing(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(t.Context())

	ts := newTestServer(t, appConfig{
		Tracer: sessioncapotel.NewTracer(sessioncapotel.WithTracerProvider(tp)),
		Instrument: func(c redis.UniversalClient) error {
			return redisotel.InstrumentTracing(c, redisotel.WithTracerProvider(tp))
		},
	})
	a := ts.device("A/1", false)
	a.mustLogin("alice", "demo")
	ts.device("B/1", false).mustLogin("alice", "demo")
	a.do("GET", "/api/me", nil) // evicted: a span with outcome, not an error

	spans := rec.Ended()
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	children := map[string][]string{} // engine span name -> child span names
	for _, s := range spans {
		if p, ok := byID[s.Parent().SpanID().String()]; ok && s.Parent().IsValid() {
			children[p.Name()] = append(children[p.Name()], s.Name())
		}
	}
	// Validate of a session this engine just signed in is a plain HGET (the
	// touch cache vouches that no refresh is due); Login is a script.
	// A script call is an FCALL of the engine's function library, or an
	// EVALSHA where the server has none (miniredis).
	for op, want := range map[string]string{"sessioncap.login": "fcall evalsha", "sessioncap.validate": "hget"} {
		found := false
		for _, c := range children[op] {
			found = found || slices.Contains(strings.Fields(want), c)
		}
		if !found {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name())
			}
			t.Fatalf("%s has no %s child; children %v; all spans %v", op, want, children[op], names)
		}
	}
	for _, s := range spans {
		if s.Name() != "sessioncap.validate" {
			continue
		}
		for _, kv := range s.Attributes() {
			if kv.Key == "sessioncap.outcome" && kv.Value.AsString() == "evicted" {
				if s.Status().Code != 0 {
					t.Fatalf("an eviction marked the span as failed: %v", s.Status())
				}
				return
			}
		}
	}
	t.Fatal("no validate span with outcome evicted")
}
