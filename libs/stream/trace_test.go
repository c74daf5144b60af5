package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/runner-manager/runner-manager/libs/stream"
)

// Not parallel: it sets the global tracer provider.
func TestConsumeSpanContinuesTheEntrysTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})

	b := setup(t)
	got := make(chan trace.SpanContext, 1)
	start(t, b.rdb, b.config("c1"), func(ctx context.Context, m stream.Message) error {
		got <- trace.SpanContextFromContext(ctx)
		return nil
	})
	ids := b.publish(t, "job", 1)
	sc := <-got
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sc.TraceID().String(), "same trace as the entry")
	require.NotEqual(t, "00f067aa0ba902b7", sc.SpanID().String(), "a span of its own")

	eventually(t, 10*time.Second, func() bool { return len(rec.Ended()) > 0 }, "span not ended")
	span := rec.Ended()[0]
	require.Equal(t, "consume "+b.stream, span.Name())
	require.Equal(t, trace.SpanKindConsumer, span.SpanKind())
	require.Equal(t, "00f067aa0ba902b7", span.Parent().SpanID().String())
	require.True(t, span.Parent().IsRemote())
	var msgID string
	for _, a := range span.Attributes() {
		if a.Key == "messaging.message.id" {
			msgID = a.Value.AsString()
		}
	}
	require.Equal(t, ids[0], msgID)
}
