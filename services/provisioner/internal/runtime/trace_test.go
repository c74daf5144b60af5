package runtime_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
)

// TestCreateIsTraced: a create command published within a trace yields a
// github.generate_jitconfig and a backend.create span of that trace, child
// spans of the command's span, named by runner, group and backend; the
// result carries the same trace.
func TestCreateIsTraced(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	b := setup(t, func(o *runtime.Options) { o.TracerProvider = tp })

	// The scheduler's span that emitted the command.
	ctx, parent := tp.Tracer("test").Start(context.Background(), "consume events")
	cmd := &rmv1.ProvisionCommand{CommandId: "cmd-traced", IssuedAt: timestamppb.Now(),
		Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{Spec: b.spec("rt-linux-traced"), Attempt: 1}}}
	_, err := b.pub.Publish(ctx, b.keys.Provision(backendType), stream.TypeCommand, cmd)
	require.NoError(t, err)
	parent.End()
	res := b.result(t, "cmd-traced")
	require.NotNil(t, res.GetCreated())

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = s
	}
	want := parent.SpanContext()
	for _, name := range []string{"github.generate_jitconfig", "backend.create"} {
		s, ok := byName[name]
		require.True(t, ok, "span %s recorded; got %v", name, keysOf(byName))
		require.Equal(t, want.TraceID(), s.SpanContext().TraceID(), name)
		// The stream runtime's consume span comes from the global provider
		// (no-op here), which continues the command's span context: the
		// call spans are children of the scheduler's span.
		require.Equal(t, want.SpanID(), s.Parent().SpanID(), name)
		require.Equal(t, trace.SpanKindClient, s.SpanKind(), name)
		attrs := map[attribute.Key]string{}
		for _, a := range s.Attributes() {
			attrs[a.Key] = a.Value.AsString()
		}
		require.Equal(t, map[attribute.Key]string{
			"runner_manager.backend": backendType,
			"runner_manager.runner":  "rt-linux-traced",
			"runner_manager.group":   "linux",
		}, attrs, name)
	}
	require.True(t, byName["github.generate_jitconfig"].EndTime().Before(byName["backend.create"].StartTime()) ||
		byName["github.generate_jitconfig"].EndTime().Equal(byName["backend.create"].StartTime()),
		"the JIT configuration is made before the instance")

	// The result continues the trace.
	entries, err := b.rdb.XRange(context.Background(), b.keys.Results(), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, entries, 1)
	tp0, _ := entries[0].Values[stream.FieldTraceparent].(string)
	got := trace.SpanContextFromContext(stream.ContextWithTraceparent(context.Background(), tp0))
	require.Equal(t, want.TraceID(), got.TraceID(), "the result's traceparent %q", tp0)
}

// TestFailedCallSpanRecordsTheError: a backend call that fails ends its
// span with an error status.
func TestFailedCallSpanRecordsTheError(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	b := setup(t, func(o *runtime.Options) { o.TracerProvider = tp })
	b.mem.FailNext(memory.OpCreate, 1, fmt.Errorf("bad image: %w", backend.ErrPermanent))

	id := b.create(t, "rt-linux-fails")
	require.NotNil(t, b.result(t, id).GetFailed())
	var failed sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "backend.create" {
			failed = s
		}
	}
	require.NotNil(t, failed, "a backend.create span")
	require.Equal(t, codes.Error, failed.Status().Code)
	require.Contains(t, failed.Status().Description, "bad image")
	require.Len(t, failed.Events(), 1, "the error is recorded")
}

func keysOf(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
