package sessioncapotel_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/extra/sessioncapotel"
)

// Engine spans with the Redis command spans of a redisotel-instrumented
// client nested under them. An application passes its own provider (or
// none, for the global one); the in-memory recorder here stands in for an
// exporter.
func Example() {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(ctx)

	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tp)); err != nil {
		panic(err)
	}
	engine, err := sessioncap.New(rdb, sessioncap.Config{
		MaxSessions: 1,
		Tracer:      sessioncapotel.NewTracer(sessioncapotel.WithTracerProvider(tp)),
	})
	if err != nil {
		panic(err)
	}
	laptop, _ := engine.Login(ctx, "alice", sessioncap.Meta{UserAgent: "laptop"})
	engine.Login(ctx, "alice", sessioncap.Meta{UserAgent: "phone"})
	engine.Validate(ctx, laptop.Token) // evicted: an outcome, not a span error

	// Each engine span, with the Redis commands that ran under it: the
	// engine's first call reads Redis's clock (time), tries its function
	// library (fcall), which miniredis does not have, so it runs its
	// scripts by evalsha from then on, and finds the script cache empty
	// (eval); the Validate of a session this engine signed in is a plain
	// HGET. On Redis 7, a sign-in is one fcall.
	children := map[trace.SpanID][]string{}
	for _, s := range rec.Ended() {
		children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s.Name())
	}
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if kv.Key == sessioncapotel.OutcomeKey {
				fmt.Printf("%s: %s, status %s, redis %v\n",
					s.Name(), kv.Value.AsString(), s.Status().Code, children[s.SpanContext().SpanID()])
			}
		}
	}
	// Output:
	// sessioncap.login: ok, status Unset, redis [time fcall evalsha eval]
	// sessioncap.login: ok, status Unset, redis [evalsha]
	// sessioncap.validate: evicted, status Unset, redis [hget]
}
