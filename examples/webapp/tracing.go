package main

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sessioncap/sessioncap"
)

// otelTracer adapts OpenTelemetry to sessioncap.Config.Tracer. The span is
// put in the context the engine passes to go-redis, so a client
// instrumented with redisotel records its evalsha spans as children.
//
// Expected endings (an evicted or expired token, a full cap under reject)
// are recorded as the outcome attribute, not as span errors, so error-rate
// alerts fire on Redis trouble and not on users signing in twice.
func otelTracer(tp trace.TracerProvider) sessioncap.Tracer {
	tr := tp.Tracer("github.com/sessioncap/sessioncap")
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
			span.SetAttributes(attribute.String("sessioncap.outcome", string(outcome)))
			span.End()
		}
	}
}
