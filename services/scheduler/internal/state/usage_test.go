package state_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

// observed collects what the scripts report for the Prometheus metrics.
type observed struct {
	mu  sync.Mutex
	obs []usage.Observation
}

func (o *observed) add(obs []usage.Observation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.obs = append(o.obs, obs...)
}

func (o *observed) sum(kind usage.Kind, repo string) (n int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, x := range o.obs {
		if x.Kind == kind && x.Repository == repo {
			n++
			d += x.D
		}
	}
	return n, d
}

func (b *bundle) withUsage(o *observed) {
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: &fakeCommands{}, Now: func() time.Time { return b.now }, Usage: o.add})
}

func (b *bundle) report(t *testing.T) map[usage.Series]usage.Row {
	t.Helper()
	agg := usage.New(b.rdb, b.keys, usage.Options{Now: func() time.Time { return b.now }})
	rep, err := agg.Report(context.Background(), time.Hour)
	require.NoError(t, err)
	out := map[usage.Series]usage.Row{}
	for _, r := range rep.Rows {
		out[r.Series] = r
	}
	return out
}

// A job's life adds its wait, its runner's boot and idle time and its run to
// the aggregate once, in the scripts of the transitions, however often its
// events come; the scripts report the same to Options.Usage.
func TestUsageIsRecordedWithTheTransitions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var o observed
	b.withUsage(&o)
	ctx := context.Background()
	t0 := b.now

	out, err := b.store.Queued(ctx, small, 42, t0)
	require.NoError(t, err)
	require.Len(t, out.Reserved, 1)
	name := out.Reserved[0]
	b.now = t0.Add(4 * time.Second)
	_, err = b.store.Created(ctx, state.Runner{Name: name, Group: "small", Backend: "docker", InstanceID: "c1"})
	require.NoError(t, err)
	b.now = t0.Add(7 * time.Second) // online: boot 7 s
	moved, err := b.store.MarkIdle(ctx, name)
	require.NoError(t, err)
	require.True(t, moved)

	started := t0.Add(12 * time.Second)
	b.now = started.Add(500 * time.Millisecond) // the event is handled a little later
	u := state.JobUpdate{JobID: 42, RunnerName: name, At: started, Repository: "acme/app", Workflow: "CI\tnightly"}
	for range 2 { // a repeated event counts once
		_, err = b.store.InProgress(ctx, small, u)
		require.NoError(t, err)
	}
	b.now = t0.Add(73 * time.Second)
	for range 2 {
		_, err = b.store.Completed(ctx, small, state.JobUpdate{JobID: 42, RunnerName: name, At: t0.Add(72 * time.Second),
			Repository: "acme/app", Workflow: "CI\tnightly"})
		require.NoError(t, err)
	}
	// Its deleted result counts nothing more (not free any more).
	_, err = b.store.Deleted(ctx, small, name)
	require.NoError(t, err)

	rows := b.report(t)
	s := usage.Series{Group: "small", Repository: "acme/app", Workflow: "CI nightly"}
	require.Equal(t, usage.Row{
		Series: s, Jobs: 1, BusySeconds: 60, IdleSeconds: 12, Runners: 1,
		// 7 s lies in the histogram bucket (5 s, 10 s], 12 s in (10 s, 20 s]:
		// the quantiles are interpolated inside them.
		Boots: 1, BootP50Seconds: 7.5, BootP95Seconds: 9.75,
		Waits: 1, WaitP50Seconds: 15, WaitP95Seconds: 19.5,
	}, rows[s])
	require.Len(t, rows, 1)

	n, d := o.sum(usage.KindBusy, "acme/app")
	require.Equal(t, 1, n)
	require.Equal(t, time.Minute, d)
	n, d = o.sum(usage.KindJob, "acme/app")
	require.Equal(t, 1, n)
	require.Equal(t, 12*time.Second, d)
	n, d = o.sum(usage.KindIdle, "acme/app")
	require.Equal(t, 1, n)
	require.Equal(t, 12*time.Second, d)
	n, d = o.sum(usage.KindBoot, "acme/app")
	require.Equal(t, 1, n)
	require.Equal(t, 7*time.Second, d)
}

// A runner that never runs a job has its whole life until deleting counted
// as idle of repository "" (the warm pool); one whose record is removed
// while free (its instance found gone) too, and a failed create's as well.
func TestUsageOfRunnersThatNeverRanAJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var o observed
	b.withUsage(&o)
	ctx := context.Background()
	t0 := b.now
	warm := state.Group{Name: "warm", Backend: "docker", MinRunners: 3, MaxRunners: 3}
	res, err := b.store.TopUp(ctx, warm)
	require.NoError(t, err)
	require.Len(t, res.Reserved, 3)

	b.now = t0.Add(10 * time.Second)
	_, err = b.store.MarkIdle(ctx, res.Reserved[0])
	require.NoError(t, err)
	b.now = t0.Add(30 * time.Second)
	_, err = b.store.RequestDelete(ctx, res.Reserved[0], []state.State{state.Idle}, state.ReasonScaleDown)
	require.NoError(t, err)
	_, err = b.store.Deleted(ctx, warm, res.Reserved[1]) // found gone while pending
	require.NoError(t, err)
	out, err := b.store.CreateFailed(ctx, res.Reserved[2], 1, time.Time{}, 0)
	require.NoError(t, err)
	require.Equal(t, state.FailureReleased, out)

	rows := b.report(t)
	r := rows[usage.Series{Group: "warm"}]
	require.EqualValues(t, 3, r.Runners)
	require.InDelta(t, 90, r.IdleSeconds, 1e-9)
	require.EqualValues(t, 1, r.Boots, "only the runner seen online has a boot time")
	require.Zero(t, r.Jobs)
	require.Zero(t, r.BusySeconds)
	n, d := o.sum(usage.KindIdle, "")
	require.Equal(t, 3, n)
	require.Equal(t, 90*time.Second, d)
}

// A job whose in_progress event was lost is counted by its completed event
// (started_at from it); a late in_progress is then ignored.
func TestUsageWhenInProgressIsLost(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.withUsage(&observed{})
	ctx := context.Background()
	t0 := b.now
	out, err := b.store.Queued(ctx, small, 5, t0)
	require.NoError(t, err)
	name := out.Reserved[0]
	b.now = t0.Add(20 * time.Second)
	_, err = b.store.Completed(ctx, small, state.JobUpdate{JobID: 5, RunnerName: name, At: t0.Add(20 * time.Second),
		StartedAt: t0.Add(5 * time.Second), Repository: "acme/lib", Workflow: "Release"})
	require.NoError(t, err)
	_, err = b.store.InProgress(ctx, small, state.JobUpdate{JobID: 5, RunnerName: name, At: t0.Add(5 * time.Second),
		Repository: "acme/lib", Workflow: "Release"})
	require.NoError(t, err)

	r := b.report(t)[usage.Series{Group: "small", Repository: "acme/lib", Workflow: "Release"}]
	require.EqualValues(t, 1, r.Jobs)
	require.EqualValues(t, 1, r.Waits)
	require.InDelta(t, 15, r.BusySeconds, 1e-9)
	require.InDelta(t, 5, r.IdleSeconds, 1e-9, "the runner was free from its creation to the job's start")
}

// Two replicas handling the same events at once count each once.
func TestUsageWithTwoReplicas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var o1, o2 observed
	clock := func() time.Time { return b.now }
	r1 := state.New(b.rdb, b.keys, state.Options{Commands: &fakeCommands{}, Now: clock, Usage: o1.add})
	r2 := state.New(b.rdb, b.keys, state.Options{Commands: &fakeCommands{}, Now: clock, Usage: o2.add})
	big := state.Group{Name: "big", Backend: "docker", MaxRunners: 50}
	t0 := b.now
	const jobs = 20
	names := make([]string, jobs+1)
	for id := int64(1); id <= jobs; id++ {
		out, err := r1.Queued(ctx, big, id, t0)
		require.NoError(t, err)
		names[id] = out.Reserved[0]
	}
	b.now = t0.Add(5 * time.Second)
	var wg sync.WaitGroup
	for _, st := range []*state.Store{r1, r2} {
		wg.Go(func() {
			for id := int64(1); id <= jobs; id++ {
				_, err := st.InProgress(ctx, big, state.JobUpdate{JobID: id, RunnerName: names[id], At: t0.Add(2 * time.Second), Repository: "acme/app", Workflow: "CI"})
				require.NoError(t, err)
				_, err = st.Completed(ctx, big, state.JobUpdate{JobID: id, RunnerName: names[id], At: t0.Add(5 * time.Second), Repository: "acme/app", Workflow: "CI"})
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	r := b.report(t)[usage.Series{Group: "big", Repository: "acme/app", Workflow: "CI"}]
	require.EqualValues(t, jobs, r.Jobs)
	require.InDelta(t, 3*jobs, r.BusySeconds, 1e-9)
	require.InDelta(t, 2*jobs, r.IdleSeconds, 1e-9)
	n1, _ := o1.sum(usage.KindBusy, "acme/app")
	n2, _ := o2.sum(usage.KindBusy, "acme/app")
	require.Equal(t, jobs, n1+n2, "each job's run is observed by one replica")
}
