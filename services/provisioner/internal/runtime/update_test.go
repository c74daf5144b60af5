package runtime_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
)

func (b *bundle) update(t *testing.T, name string, job int64) string {
	t.Helper()
	return b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Update{Update: &rmv1.UpdateRunner{
		Name: name, Group: "linux", BackendType: backendType, JobId: job, RunId: 500 + job,
		Repository: "acme/app", Workflow: "CI", State: backend.StateBusy,
	}}})
}

// waitCounter waits until the commands counter of update/outcome is want,
// then for the command to be acknowledged.
func (b *bundle) waitCounter(t *testing.T, outcome string, want float64) {
	t.Helper()
	require.Eventually(t, func() bool { return b.counter("update", outcome) == want }, waitFor, 10*time.Millisecond,
		"update/%s = %v, want %v", outcome, b.counter("update", outcome), want)
	b.waitAcked(t)
}

// An UpdateRunner command sets the job's metadata on the runner's instance
// and is acknowledged; it publishes no result (nobody waits for metadata).
func TestUpdateRunnerSetsTheMetadata(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-u1")).GetCreated())
	b.update(t, "rt-linux-u1", 7)
	b.waitCounter(t, "updated", 1)
	rec, ok := b.mem.Store().Get("rt-linux-u1")
	require.True(t, ok)
	require.Equal(t, map[string]string{
		backend.MetaJobID: "7", backend.MetaRunID: "507", backend.MetaRepository: "acme/app",
		backend.MetaWorkflow: "CI", backend.MetaState: "busy",
	}, rec.Metadata)
	require.Len(t, b.results(t), 1, "only the create's result")
}

// A retryable failure is delivered again, at most RetryDeliveries times in
// all; then the update is dropped and counted, never dead-lettered nor
// answered with a failed result. A permanent failure (the instance is gone)
// is dropped at once.
func TestUpdateRunnerFailuresAreRetriedThenDropped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-u2")).GetCreated())
	retryable := fmt.Errorf("%w: %w", backend.ErrRetryable, memory.ErrInjected)

	// Two failures, then it works on the third delivery.
	b.mem.FailNext(memory.OpUpdate, 2, retryable)
	b.update(t, "rt-linux-u2", 8)
	b.waitCounter(t, "updated", 1)
	require.EqualValues(t, 2, b.counter("update", "retry"))
	rec, _ := b.mem.Store().Get("rt-linux-u2")
	require.Equal(t, 1, rec.Updates)
	require.Equal(t, 3, b.mem.Store().Calls(memory.OpUpdate))

	// Failing for good: three deliveries (RetryDeliveries), then dropped.
	b.mem.FailNext(memory.OpUpdate, 3, retryable)
	b.update(t, "rt-linux-u2", 9)
	b.waitCounter(t, "dropped_retryable", 1)
	require.Equal(t, 6, b.mem.Store().Calls(memory.OpUpdate))
	require.EqualValues(t, 4, b.counter("update", "retry"))
	rec, _ = b.mem.Store().Get("rt-linux-u2")
	require.Equal(t, "8", rec.Metadata[backend.MetaJobID], "the failed update changed nothing")

	// Permanent: a runner without an instance; one call.
	b.update(t, "rt-linux-gone", 10)
	b.waitCounter(t, "dropped_permanent", 1)
	require.Equal(t, 7, b.mem.Store().Calls(memory.OpUpdate))
	require.Len(t, b.results(t), 1, "only the create's result")
	n, err := b.rdb.XLen(t.Context(), b.keys.DLQ()).Result()
	require.NoError(t, err)
	require.Zero(t, n, "nothing dead-lettered")
}
