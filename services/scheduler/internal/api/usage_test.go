package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// GET /api/v1/usage reports what the transitions recorded, behind the token,
// and refuses a window it cannot answer.
func TestUsage(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ctx := context.Background()
	g := state.Group{Name: "pool", Backend: "docker", MaxRunners: 4}
	out, err := b.store.Queued(ctx, g, 9, time.Now().Add(-30*time.Second))
	require.NoError(t, err)
	require.Len(t, out.Reserved, 1)
	started := time.Now().Add(-20 * time.Second)
	_, err = b.store.InProgress(ctx, g, state.JobUpdate{JobID: 9, RunnerName: out.Reserved[0], At: started, Repository: "acme/app", Workflow: "CI"})
	require.NoError(t, err)
	_, err = b.store.Completed(ctx, g, state.JobUpdate{JobID: 9, RunnerName: out.Reserved[0], At: started.Add(15 * time.Second)})
	require.NoError(t, err)

	code, _ := b.do(t, http.MethodGet, "/api/v1/usage", "")
	require.Equal(t, http.StatusUnauthorized, code)

	body := b.ok(t, http.MethodGet, "/api/v1/usage?since=1h", http.StatusOK)
	require.EqualValues(t, 300, body["bucket_seconds"])
	require.EqualValues(t, 20, body["top_repositories"])
	rows := body["rows"].([]any)
	require.Len(t, rows, 1)
	row := rows[0].(map[string]any)
	require.Equal(t, "pool", row["group"])
	require.Equal(t, "acme/app", row["repository"])
	require.Equal(t, "CI", row["workflow"], "the completed event without a workflow keeps the job's")
	require.EqualValues(t, 1, row["jobs"])
	require.InDelta(t, 15, row["busy_seconds"], 0.001)
	require.EqualValues(t, 1, row["waits"])

	// The default window is 24 h.
	require.Len(t, b.ok(t, http.MethodGet, "/api/v1/usage", http.StatusOK)["rows"], 1)
	for _, bad := range []string{"yesterday", "-1h", "0s", "26h"} {
		requireError(t, b.ok(t, http.MethodGet, "/api/v1/usage?since="+bad, http.StatusBadRequest), "bad_request")
	}
}
