package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
)

// TestDeleteContinuesTheCallersTrace: the delete command an admin request
// emits carries the trace of the request's traceparent header.
func TestDeleteContinuesTheCallersTrace(t *testing.T) {
	// What libs/telemetry.SetupTracing installs in every service.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	b := setup(t, token)
	ctx := context.Background()
	g, _ := command.Group(b.cfg, "pool")
	q, err := b.store.Queued(ctx, g, 1, time.Now())
	require.NoError(t, err)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodDelete, "/api/v1/runners/"+q.Reserved[0], nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	b.e.ServeHTTP(rec, req)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())

	msgs, err := b.rdb.XRange(ctx, b.keys.Provision("docker"), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 2, "the create, then the delete")
	tp, _ := msgs[1].Values[stream.FieldTraceparent].(string)
	require.True(t, strings.HasPrefix(tp, "00-"+traceID+"-"), "the delete command's traceparent %q", tp)
}
