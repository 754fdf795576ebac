package sessioncapotel_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/extra/sessioncapotel"
)

// newEngine returns an engine on miniredis whose Tracer and go-redis client
// both record into one in-memory provider.
func newEngine(t *testing.T, cfg sessioncap.Config) (*sessioncap.Engine, *tracetest.SpanRecorder) {
	t.Helper()
	mr := miniredis.RunT(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tp)); err != nil {
		t.Fatal(err)
	}
	cfg.Tracer = sessioncapotel.NewTracer(sessioncapotel.WithTracerProvider(tp))
	e, err := sessioncap.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, rec
}

func outcome(s sdktrace.ReadOnlySpan) string {
	for _, kv := range s.Attributes() {
		if kv.Key == sessioncapotel.OutcomeKey {
			return kv.Value.AsString()
		}
	}
	return ""
}

// TestRedisSpansNest wires the Tracer and redisotel to one provider and
// checks that every engine span has the Redis command spans as its
// children: the trace then shows how much of a request's session time is
// the round trip to Redis.
func TestRedisSpansNest(t *testing.T) {
	e, rec := newEngine(t, sessioncap.Config{MaxSessions: 1})
	ctx := t.Context()
	a, err := e.Login(ctx, "alice", sessioncap.Meta{UserAgent: "A/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Login(ctx, "alice", sessioncap.Meta{UserAgent: "B/1"}); err != nil {
		t.Fatal(err)
	}
	b, err := e.Login(ctx, "bob", sessioncap.Meta{UserAgent: "B/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Validate(ctx, b.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Validate(ctx, a.Token); !errors.Is(err, sessioncap.ErrEvicted) {
		t.Fatalf("validate of the evicted session: %v", err)
	}

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
		if s.Name() == "sessioncap.validate" && outcome(s) == "evicted" {
			if s.Status().Code != codes.Unset {
				t.Fatalf("an eviction marked the span as failed: %v", s.Status())
			}
			if s.InstrumentationScope().Name != sessioncapotel.ScopeName {
				t.Fatalf("scope %q, want %q", s.InstrumentationScope().Name, sessioncapotel.ScopeName)
			}
			return
		}
	}
	t.Fatal("no validate span with outcome evicted")
}

// TestOutcomes checks which endings are span errors: a full cap under
// RejectNew is not, an unexpected error (here the Limiter's) is.
func TestOutcomes(t *testing.T) {
	errPlans := errors.New("plans service down")
	e, rec := newEngine(t, sessioncap.Config{
		Overflow: sessioncap.RejectNew,
		Limiter: sessioncap.LimitFunc(func(_ context.Context, user string) (int, error) {
			if user == "bob" {
				return 0, errPlans
			}
			return 1, nil
		}),
	})
	ctx := t.Context()
	if _, err := e.Login(ctx, "alice", sessioncap.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Login(ctx, "alice", sessioncap.Meta{}); !errors.Is(err, sessioncap.ErrLimitReached) {
		t.Fatalf("second login: %v", err)
	}
	if _, err := e.Login(ctx, "bob", sessioncap.Meta{}); !errors.Is(err, errPlans) {
		t.Fatalf("login with the Limiter failing: %v", err)
	}
	var got []string
	for _, s := range rec.Ended() {
		if strings.HasPrefix(s.Name(), "sessioncap.") {
			got = append(got, s.Name()+" "+outcome(s)+" "+s.Status().Code.String())
		}
	}
	want := []string{
		"sessioncap.login ok Unset",
		"sessioncap.login rejected Unset",
		"sessioncap.login error Error",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("engine spans %q, want %q", got, want)
	}
}

// TestRedisDown checks that a call failing with ErrUnavailable ends its
// span with an error status and the recorded error.
func TestRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(t.Context())
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	e, err := sessioncap.New(rdb, sessioncap.Config{Tracer: sessioncapotel.NewTracer(sessioncapotel.WithTracerProvider(tp))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Login(t.Context(), "alice", sessioncap.Meta{}); !errors.Is(err, sessioncap.ErrUnavailable) {
		t.Fatalf("login with Redis down: %v", err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if outcome(s) != "redis_error" || s.Status().Code != codes.Error || len(s.Events()) == 0 {
		t.Fatalf("span %s: outcome %q, status %v, %d events", s.Name(), outcome(s), s.Status(), len(s.Events()))
	}
}

// TestGlobalProvider checks that NewTracer without options follows the
// global provider, as redisotel does.
func TestGlobalProvider(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(t.Context())
	old := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(old)

	_, end := sessioncapotel.NewTracer()(t.Context(), sessioncap.OpLogout)
	end(nil)
	if spans := rec.Ended(); len(spans) != 1 || spans[0].Name() != "sessioncap.logout" || outcome(spans[0]) != "ok" {
		t.Fatalf("spans on the global provider: %v", spans)
	}
}
