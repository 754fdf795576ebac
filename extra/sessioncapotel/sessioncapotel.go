// Package sessioncapotel traces sessioncap operations with OpenTelemetry.
//
// NewTracer returns a sessioncap.Tracer for sessioncap.Config.Tracer. Each
// Engine call becomes a span named "sessioncap."+op ("sessioncap.login",
// "sessioncap.validate", …) with a "sessioncap.outcome" attribute. The
// span is in the context the engine hands to go-redis, so a client
// instrumented with redisotel.InstrumentTracing records its command spans
// (evalsha, or hget on Validate's hot path) as the span's children.
//
// Expected endings (an evicted, revoked or expired token, a full cap under
// sessioncap.RejectNew) are recorded as the outcome attribute, not as span
// errors, so error-rate alerts fire on Redis trouble and not on users
// signing in twice. Every other failure sets the span's status to Error
// and records the error.
package sessioncapotel

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sessioncap/sessioncap"
)

// ScopeName is the instrumentation scope of the tracer NewTracer gets from
// the TracerProvider: this package's import path.
const ScopeName = "github.com/sessioncap/sessioncap/extra/sessioncapotel"

// OutcomeKey is the span attribute that holds how an operation ended: a
// sessioncap.Outcome as sessioncap.OutcomeOf classifies the error, the same
// value the Observer gets.
const OutcomeKey = attribute.Key("sessioncap.outcome")

// Option configures NewTracer.
type Option func(*config)

type config struct {
	tp trace.TracerProvider
}

// WithTracerProvider makes NewTracer start spans from tp instead of the
// global provider (otel.GetTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// NewTracer returns a sessioncap.Tracer that starts one span per Engine
// operation. Without WithTracerProvider it uses the global provider, which
// is a no-op until the application installs one, so wiring it in costs
// next to nothing.
func NewTracer(opts ...Option) sessioncap.Tracer {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	tr := c.tp.Tracer(ScopeName)
	return func(ctx context.Context, op sessioncap.Op) (context.Context, func(error)) {
		ctx, span := tr.Start(ctx, "sessioncap."+string(op), trace.WithSpanKind(trace.SpanKindInternal))
		return ctx, func(err error) {
			outcome := sessioncap.OutcomeOf(err)
			switch outcome {
			case sessioncap.OutcomeOK, sessioncap.OutcomeEvicted, sessioncap.OutcomeRevoked,
				sessioncap.OutcomeExpired, sessioncap.OutcomeRejected:
			case sessioncap.OutcomeRedisError:
				span.RecordError(err)
				span.SetStatus(codes.Error, "redis unavailable")
			default:
				span.RecordError(err)
				span.SetStatus(codes.Error, "")
			}
			span.SetAttributes(OutcomeKey.String(string(outcome)))
			span.End()
		}
	}
}
