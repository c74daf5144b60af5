package dispatch_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// Issue 19: two replicas handle queued events while a third pauses the
// group. Once the pause is set, no handler emits a create, whatever it read
// before (the mode is checked in the reservation script); the jobs are
// still counted as demand, and a deleted result (whose script tops up) does
// not replace its runner. Resume: a top-up serves the waiting jobs.
func TestPauseHoldsEveryReplicasCreates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	cfg := testConfig(redistest.NewName("pause"), 200, 0)
	a, b, op := newReplica(rdb, cfg), newReplica(rdb, cfg), newReplica(rdb, cfg)
	k := op.store.Keys()
	creates := func() int64 {
		n, err := rdb.XLen(ctx, k.Provision("docker")).Result()
		require.NoError(t, err)
		return n
	}

	for job := int64(900); job < 905; job++ {
		require.NoError(t, a.h.Event(ctx, message(t, stream.TypeWorkflowJob, queued(job, "linux"))))
	}
	require.EqualValues(t, 5, creates())
	first, err := rdb.ZRange(ctx, k.GroupRunners("pool"), 0, 0).Result()
	require.NoError(t, err)

	// Queued events race the pause; afterwards the create count must not move.
	var wg sync.WaitGroup
	for i, r := range []*replica{a, b} {
		wg.Go(func() {
			for job := int64(1 + i*100); job <= int64(60+i*100); job++ {
				if err := r.h.Event(ctx, message(t, stream.TypeWorkflowJob, queued(job, "linux"))); err != nil {
					t.Errorf("job %d: %v", job, err)
				}
			}
		})
	}
	_, err = op.store.SetGroupMode(ctx, "pool", state.ModePaused)
	require.NoError(t, err)
	atPause := creates()
	wg.Wait()
	require.Equal(t, atPause, creates(), "a create slipped through the pause")
	st, err := op.store.GroupStatus(ctx, "pool")
	require.NoError(t, err)
	require.EqualValues(t, 125, st.Demand, "every job is demand")
	require.Equal(t, state.ModePaused, st.Mode)

	// More jobs, on both replicas: they wait.
	for job := int64(1000); job < 1010; job++ {
		r := a
		if job%2 == 0 {
			r = b
		}
		require.NoError(t, r.h.Event(ctx, message(t, stream.TypeWorkflowJob, queued(job, "linux"))))
	}
	require.Equal(t, atPause, creates())
	// A deleted result releases capacity; its top-up creates nothing.
	require.NoError(t, b.h.Result(ctx, message(t, stream.TypeResult, &rmv1.ProvisionResult{
		RunnerName: first[0], Group: "pool", BackendType: "docker",
		Outcome: &rmv1.ProvisionResult_Deleted{Deleted: &rmv1.Deleted{}},
	})))
	_, ok, err := op.store.Runner(ctx, first[0])
	require.NoError(t, err)
	require.False(t, ok, "the deleted result was applied")
	require.Equal(t, atPause, creates())

	// Resume: the waiting jobs get their runners.
	_, err = op.store.SetGroupMode(ctx, "pool", state.ModeActive)
	require.NoError(t, err)
	g, _ := command.Group(cfg, "pool")
	res, err := op.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.NotEmpty(t, res.Reserved)
	st, err = op.store.GroupStatus(ctx, "pool")
	require.NoError(t, err)
	require.EqualValues(t, 135, st.Demand)
	require.Equal(t, st.Demand, st.Free, "one runner per waiting job")
	require.Equal(t, atPause+int64(len(res.Reserved)), creates())
}
