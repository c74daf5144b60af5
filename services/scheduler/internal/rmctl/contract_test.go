package rmctl

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/services/scheduler/internal/api"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
	rmusage "github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

// roundTrip encodes the API's value, decodes it into rmctl's type and
// encodes that again: both JSON documents must be equal, so rmctl neither
// loses nor invents a field.
func roundTrip[T any](t *testing.T, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var mine T
	require.NoError(t, json.Unmarshal(b, &mine))
	again, err := json.Marshal(mine)
	require.NoError(t, err)
	require.JSONEq(t, string(b), string(again))
}

// TestTypesMatchTheAPI keeps rmctl's types in step with the admin API's.
func TestTypesMatchTheAPI(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	roundTrip[Group](t, api.GroupView{
		Name: "small", Organization: "acme", Repository: "app", Backend: "docker", MinRunners: 1, MaxRunners: 9,
		Total: 4, Free: 1, Demand: 2, Runners: map[state.State]int64{state.Busy: 3, state.Idle: 1}, BackoffSeconds: 1.5,
		Mode: string(state.ModePaused),
	})
	roundTrip[ModeChange](t, api.ModeChange{
		Group: "small", Mode: state.ModeDraining, PreviousMode: state.ModeActive,
		Deleting: []string{"rm-1"}, Reserved: []string{},
	})
	roundTrip[Runner](t, state.Runner{
		Name: "rm-1", Group: "small", Backend: "docker", State: state.Busy, JobID: 7, ForJob: 6, InstanceID: "i-1",
		GitHubRunnerID: 9, Attempt: 2, Organization: "acme", Repository: "app", Location: map[string]string{"region": "eu-west-1"},
		DeleteFailures: 3, DeleteError: "refused (location)", CreatedAt: at, UpdatedAt: at.Add(time.Minute), StateSince: at.Add(time.Second),
	})
	roundTrip[DeadLetter](t, api.DeadLetterView{
		ID: "1-0", OriginStream: "{rm}:events", OriginID: "0-1", Type: "workflow_job", Reason: "boom", Deliveries: 5,
		Group: "scheduler", Consumer: "s-1", Time: at, DataBytes: 10,
	})
	roundTrip[UsageReport](t, rmusage.Report{
		From: at, To: at.Add(24 * time.Hour), BucketSeconds: 300, TopRepositories: 20,
		Rows: []rmusage.Row{{
			Series: rmusage.Series{Group: "small", Repository: "acme/app", Workflow: "CI"}, Jobs: 3, BusySeconds: 1.5, IdleSeconds: 2.5,
			Runners: 3, Boots: 2, BootP50Seconds: 4, BootP95Seconds: 5, Waits: 3, WaitP50Seconds: 6, WaitP95Seconds: 7,
		}},
	})
	roundTrip[errorBody](t, api.ErrorBody{Error: api.ErrorDetail{Code: api.CodeNotFound, Message: "no runner"}})
}

// errorBody is the error shape Client.do decodes.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
