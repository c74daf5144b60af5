package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/libs/telemetry"
)

// These tests set the process's global tracer provider and propagator: not
// parallel.

func restoreGlobals(t *testing.T) {
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(prop)
	})
}

// exports counts the OTLP trace exports a test server receives and the
// names of their spans and services.
type exports struct {
	mu       sync.Mutex
	requests int
	spans    []string
	services []string
}

func (e *exports) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests++
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				e.services = append(e.services, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				e.spans = append(e.spans, s.GetName())
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

func TestTracingOffWithoutEndpoint(t *testing.T) {
	restoreGlobals(t)
	ctx := context.Background()
	shutdown, err := telemetry.SetupTracing(ctx, "ingress", "test", false)
	require.NoError(t, err)

	_, isSDK := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	require.False(t, isSDK, "no exporting tracer provider is installed")
	_, span := otel.Tracer("test").Start(ctx, "root")
	require.False(t, span.IsRecording(), "spans are no-ops")
	span.End()

	// The trace context still propagates (W3C traceparent).
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	child, span := otel.Tracer("test").Start(trace.ContextWithSpanContext(ctx, parent), "child")
	span.End()
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(child, carrier)
	require.Equal(t, "00-01020300000000000000000000000000-0405060000000000-01", carrier["traceparent"])
	require.NoError(t, shutdown(ctx))
}

func TestTracingExportsToTheEndpoint(t *testing.T) {
	restoreGlobals(t)
	got := &exports{}
	srv := httptest.NewServer(http.HandlerFunc(got.serve))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	ctx := context.Background()
	shutdown, err := telemetry.SetupTracing(ctx, "scheduler", "v1.2.3", true)
	require.NoError(t, err)

	_, span := otel.Tracer("test").Start(ctx, "consume events")
	require.True(t, span.IsRecording())
	span.End()
	// Shutdown flushes the batch.
	require.NoError(t, shutdown(ctx))

	got.mu.Lock()
	defer got.mu.Unlock()
	require.Equal(t, 1, got.requests)
	require.Equal(t, []string{"consume events"}, got.spans)
	require.Equal(t, []string{"scheduler"}, got.services)
}
