package runtime

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the runtime's spans.
const tracerName = "github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"

// Span attributes of the runtime. They carry names only: never a JIT
// configuration, a token or an instance specification.
const (
	attrBackend = "runner_manager.backend"
	attrRunner  = "runner_manager.runner"
	attrGroup   = "runner_manager.group"
)

type runnerKey struct{}

// withRunner returns ctx carrying the runner a command is about, for the
// spans of its backend and GitHub calls, and labels the command's span
// (the stream runtime's "consume" span) with it.
func withRunner(ctx context.Context, runner, group string) context.Context {
	attrs := []attribute.KeyValue{attribute.String(attrRunner, runner), attribute.String(attrGroup, group)}
	trace.SpanFromContext(ctx).SetAttributes(attrs...)
	return context.WithValue(ctx, runnerKey{}, attrs)
}

// startSpan starts the client span of one backend or GitHub call, named
// "<system>.<op>" (backend.create, github.generate_jitconfig, ...), a child
// of the command's span.
func (r *Runtime) startSpan(ctx context.Context, system, op string) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{attribute.String(attrBackend, r.opts.Type)}
	if ra, ok := ctx.Value(runnerKey{}).([]attribute.KeyValue); ok {
		attrs = append(attrs, ra...)
	}
	return r.tracer.Start(ctx, system+"."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endSpan ends span, recording err. The error text is the one the logs and
// failed results carry already, free of secrets.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func defaultTracerProvider(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return otel.GetTracerProvider()
	}
	return tp
}
