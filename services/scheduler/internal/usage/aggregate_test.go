package usage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

type commands struct{ n int }

func (c *commands) Creates(_ context.Context, g state.Group, forJob int64, n int) ([]state.Candidate, error) {
	out := make([]state.Candidate, n)
	for i := range out {
		c.n++
		name := fmt.Sprintf("rm-%s-%d", g.Name, c.n)
		out[i] = state.Candidate{Name: name, ForJob: forJob, Create: state.Command{Data: []byte("create " + name)}}
	}
	return out, nil
}

func (c *commands) Retry(context.Context, state.Runner, int) (state.Command, error) {
	return state.Command{Data: []byte("retry")}, nil
}

func (c *commands) Delete(_ context.Context, r state.Runner, _ string) (state.Command, error) {
	return state.Command{Data: []byte("delete " + r.Name)}, nil
}

func (c *commands) Update(_ context.Context, r state.Runner, _ state.JobUpdate) (state.Command, error) {
	return state.Command{Data: []byte("update " + r.Name)}, nil
}

type bundle struct {
	rdb   *redis.Client
	keys  keys.Keys
	store *state.Store
	now   time.Time
	rec   *usage.Recorder
	agg   *usage.Aggregate
}

func setup(t *testing.T, top int) *bundle {
	t.Helper()
	b := &bundle{rdb: redistest.Client(t), keys: keys.New(redistest.NewName("us")), now: time.Unix(1_800_000_000, 0)}
	clock := func() time.Time { return b.now }
	b.agg = usage.New(b.rdb, b.keys, usage.Options{TopRepositories: top, Now: clock})
	b.rec = usage.NewRecorder(prometheus.NewRegistry(), b.agg)
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: &commands{}, Now: clock, Usage: b.rec.Observe})
	return b
}

var pool = state.Group{Name: "pool", Backend: "docker", MaxRunners: 1000}

// job runs one job through the store: queued at now, started after wait on
// a fresh runner, completed after run. The clock ends at the completion.
func (b *bundle) job(t *testing.T, id int64, repo, wf string, wait, run time.Duration) {
	t.Helper()
	ctx := context.Background()
	out, err := b.store.Queued(ctx, pool, id, b.now)
	require.NoError(t, err)
	require.Len(t, out.Reserved, 1)
	b.now = b.now.Add(wait)
	_, err = b.store.InProgress(ctx, pool, state.JobUpdate{JobID: id, RunnerName: out.Reserved[0], At: b.now, Repository: repo, Workflow: wf})
	require.NoError(t, err)
	b.now = b.now.Add(run)
	_, err = b.store.Completed(ctx, pool, state.JobUpdate{JobID: id, RunnerName: out.Reserved[0], At: b.now})
	require.NoError(t, err)
}

// Repositories beyond the top N of the window (by busy plus idle seconds)
// are folded into "other", in the report and in the metrics; the totals stay.
func TestTopRepositoriesAndOther(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	ctx := context.Background()
	// busy: big 30 s + 30 s, mid 20 s, small 5 s, tiny 1 s; no wait, no idle.
	b.job(t, 1, "acme/big", "CI", 0, 30*time.Second)
	b.job(t, 2, "acme/big", "Nightly", 0, 30*time.Second)
	b.job(t, 3, "acme/mid", "CI", 0, 20*time.Second)
	b.job(t, 4, "acme/small", "CI", 0, 5*time.Second)
	b.job(t, 5, "acme/tiny", "Lint", 0, time.Second)

	rep, err := b.agg.Report(ctx, time.Hour)
	require.NoError(t, err)
	got := map[usage.Series]float64{}
	var jobs int64
	for _, r := range rep.Rows {
		got[r.Series] = r.BusySeconds
		jobs += r.Jobs
	}
	require.Equal(t, map[usage.Series]float64{
		{Group: "pool", Repository: "acme/big", Workflow: "CI"}:      30,
		{Group: "pool", Repository: "acme/big", Workflow: "Nightly"}: 30,
		{Group: "pool", Repository: "acme/mid", Workflow: "CI"}:      20,
		{Group: "pool", Repository: "other", Workflow: "other"}:      6,
	}, got)
	require.EqualValues(t, 5, jobs)
	require.Equal(t, "acme/big", rep.Rows[0].Repository, "most runner-seconds first")
	require.Equal(t, 2, rep.TopRepositories)

	// The metrics fold the same way: every repository is "other" until the
	// first ranking (86 s), then the top two keep their names.
	require.InDelta(t, 86, testutil.ToFloat64(b.rec.Busy.WithLabelValues("pool", "other", "other")), 1e-9)
	require.NoError(t, b.rec.Refresh(ctx))
	b.job(t, 6, "acme/mid", "CI", 0, 2*time.Second)
	b.job(t, 7, "acme/tiny", "Lint", 0, 3*time.Second)
	require.InDelta(t, 2, testutil.ToFloat64(b.rec.Busy.WithLabelValues("pool", "acme/mid", "CI")), 1e-9)
	require.InDelta(t, 89, testutil.ToFloat64(b.rec.Busy.WithLabelValues("pool", "other", "other")), 1e-9)

	// acme/tiny overtakes acme/mid: mid's series go, tiny's next
	// observations keep its name.
	for id := int64(8); id < 10; id++ {
		b.job(t, id, "acme/tiny", "Lint", 0, time.Minute)
	}
	require.NoError(t, b.rec.Refresh(ctx))
	require.Equal(t, 1, testutil.CollectAndCount(b.rec.Busy), "only pool/other/other is left")
	b.job(t, 10, "acme/tiny", "Lint", 0, time.Second)
	require.InDelta(t, 1, testutil.ToFloat64(b.rec.Busy.WithLabelValues("pool", "acme/tiny", "Lint")), 1e-9)
}

// Waits: the jobs that started in the window per group, their rate and the
// quantiles of their wait, estimated inside the histogram's buckets.
func TestWaits(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	ctx := context.Background()
	start := b.now
	// 10 jobs of the pool: waits 1..10 s.
	for i := int64(1); i <= 10; i++ {
		b.job(t, i, "acme/app", "CI", time.Duration(i)*time.Second, time.Second)
	}
	other := state.Group{Name: "gpu", Backend: "docker", MaxRunners: 10}
	out, err := b.store.Queued(ctx, other, 99, b.now)
	require.NoError(t, err)
	b.now = b.now.Add(100 * time.Second)
	_, err = b.store.InProgress(ctx, other, state.JobUpdate{JobID: 99, RunnerName: out.Reserved[0], At: b.now, Repository: "acme/ml", Workflow: "Train"})
	require.NoError(t, err)

	ws, err := b.agg.Waits(ctx, time.Hour)
	require.NoError(t, err)
	require.Len(t, ws, 2)
	require.Equal(t, "gpu", ws[0].Group)
	require.Equal(t, 1, ws[0].Jobs)
	require.Equal(t, 90*time.Second, ws[0].WaitP50, "100 s lies in (60 s, 120 s]")
	require.Equal(t, "pool", ws[1].Group)
	require.Equal(t, 10, ws[1].Jobs)
	// Waits 1, 2 | 3, 4, 5 | 6..10 in buckets <=1, (1,2], (2,5], (5,10]: the
	// 5th of 10 is the last of (2,5], the 9.5th is 90% into (5,10].
	require.Equal(t, 5*time.Second, ws[1].WaitP50)
	require.Equal(t, 9500*time.Millisecond, ws[1].WaitP95)
	window := b.now.Sub(time.Unix(usage.BucketStart(b.now.Add(-time.Hour)), 0)).Minutes()
	require.InDelta(t, 10/window, ws[1].JobsPerMinute, 1e-9)
	require.Less(t, b.now.Sub(start), time.Hour)

	// A window that ends before the jobs: none.
	b.now = b.now.Add(3 * time.Hour)
	ws, err = b.agg.Waits(ctx, time.Hour)
	require.NoError(t, err)
	require.Empty(t, ws)
	_, err = b.agg.Waits(ctx, 26*time.Hour)
	require.ErrorIs(t, err, usage.ErrWindow)
}

// A bucket keeps at most MaxSeries series; the jobs of further series are
// counted in their group's "other", and the bucket expires after Retention.
func TestBucketsAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, usage.MaxSeries+10)
	ctx := context.Background()
	for i := int64(1); i <= usage.MaxSeries+5; i++ {
		out, err := b.store.Queued(ctx, pool, i, b.now)
		require.NoError(t, err)
		_, err = b.store.InProgress(ctx, pool, state.JobUpdate{JobID: i, RunnerName: out.Reserved[0], At: b.now,
			Repository: fmt.Sprintf("acme/r%d", i), Workflow: "CI"})
		require.NoError(t, err)
	}
	rep, err := b.agg.Report(ctx, time.Hour)
	require.NoError(t, err)
	require.Len(t, rep.Rows, usage.MaxSeries+1)
	var other, jobs int64
	for _, r := range rep.Rows {
		jobs += r.Jobs
		if r.Repository == usage.Other {
			other = r.Jobs
		}
	}
	require.EqualValues(t, usage.MaxSeries+5, jobs)
	require.EqualValues(t, 5, other)

	key := b.keys.Usage(usage.BucketStart(b.now))
	ttl, err := b.rdb.PTTL(ctx, key).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, usage.Retention)
	require.LessOrEqual(t, ttl, usage.Retention+usage.Bucket)
	mem, err := b.rdb.MemoryUsage(ctx, key).Result()
	require.NoError(t, err)
	t.Logf("a bucket of %d series with a job each: %d bytes", usage.MaxSeries, mem)
}
