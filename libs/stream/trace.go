package stream

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
)

var propagator = propagation.TraceContext{}

// Traceparent returns the W3C traceparent of the span in ctx, or "".
func Traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}

// ContextWithTraceparent returns ctx carrying the remote span of traceparent.
func ContextWithTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
