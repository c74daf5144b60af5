package scenarios

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/keys"
)

// waitDeleting polls the group's runner records every 20 ms, up to within,
// until one without a job is in state deleting (a surplus runner being
// removed, not one whose job completed); it tells whether one was seen.
func waitDeleting(t *testing.T, sys *harness.System, group string, within time.Duration) bool {
	t.Helper()
	k := keys.New(sys.Opts.Name)
	rdb := sys.RedisClient()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		names, err := rdb.ZRange(ctx, k.GroupRunners(group), 0, -1).Result()
		for _, n := range names {
			h := rdb.HMGet(ctx, k.Runner(n), "state", "job_id").Val()
			if err == nil && len(h) == 2 && h[0] == "deleting" && (h[1] == nil || h[1] == "0" || h[1] == "") {
				cancel()
				return true
			}
		}
		cancel()
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestChurnNeverKillsAJob (issue 16, item 1): a warm group (min_runners 1,
// max_runners 4, reconcile every second) under churn: six rounds of jobs,
// each queuing four jobs, cancelling one of them at once (while queued) and
// two others just after a runner of the round came up, then queuing two more
// the moment the scheduler starts removing a surplus runner (seen in its
// record) or after 4 s. Cancelled jobs make runners surplus while the next
// jobs arrive, so the scheduler deletes idle runners GitHub may be handing a
// job at the same moment: the registration goes first, a busy runner is
// refused (422) and kept. Every job not
// cancelled ends success on a runner of its own, no job fails, no container
// disappears while its job runs, the group never exceeds max_runners, and
// the system comes back to its one warm runner with nothing leaked.
func TestChurnNeverKillsAJob(t *testing.T) {
	const (
		rounds, perRound, lateJobs, max, min = 6, 4, 2, 4, 1
		roundEvery                           = 6500 * time.Millisecond
	)
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("churn", max, min, smallLabels...)},
		ReconcileInterval:   time.Second,
		HealthCheckInterval: 3 * time.Second,
		TimeToStart:         30 * time.Second,
	})
	rep := newReport(t, sys)
	limits := watchLimits(t, sys)
	ctx := context.Background()
	starts, err := sys.WatchContainerStarts(ctx)
	require.NoError(t, err)
	t.Cleanup(starts.Stop)
	consistent(t, sys, map[string]int{"churn": min}, 2*time.Minute)
	eventually(t, time.Minute, 100*time.Millisecond, func() bool { return onlineRunners(t, sys) == min }, "the warm runner online")
	jobs := watchRunningJobs(t, sys)

	// Fixed seed: the same durations and gaps every run (the timing is the
	// machine's).
	rng := rand.New(rand.NewPCG(16, 1))
	queue := func(n int) []int64 {
		var ids []int64
		for range n {
			d := time.Duration(1500+rng.IntN(3000)) * time.Millisecond
			id, err := sys.QueueJob(ctx, "app", smallLabels, d)
			require.NoError(t, err)
			ids = append(ids, id)
		}
		return ids
	}
	var all []int64
	cancelled := map[int64]bool{}
	duringDelete := 0
	began := time.Now()
	for r := range rounds {
		next := began.Add(time.Duration(r+1) * roundEvery)
		ids := queue(perRound)
		// One cancelled while queued: the runner on its way for it is surplus.
		cancelJob(t, sys, ids[0])
		cancelled[ids[0]] = true
		// Two more just after a runner of this round came up (took a job).
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			inProgress, err := sys.Jobs(ctx, fakegithub.StatusInProgress)
			require.NoError(t, err)
			started := false
			for _, j := range inProgress {
				for _, id := range ids[1:] {
					started = started || j.ID == id
				}
			}
			if started {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, id := range ids[2:] {
			cancelJob(t, sys, id)
			cancelled[id] = true
		}
		// New jobs the moment the scheduler removes a surplus runner (a
		// record in state deleting): GitHub may hand one of them to the
		// runner whose registration is about to be removed.
		during := waitDeleting(t, sys, "churn", 4*time.Second)
		if during {
			duringDelete++
		}
		late := queue(lateJobs)
		all = append(all, ids...)
		all = append(all, late...)
		t.Logf("round %d: jobs %v, cancelled all but %d, then %v (during a delete: %v), %s in", r, ids, ids[1], late, during,
			time.Since(began).Round(100*time.Millisecond))
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait) // the rounds' pace, not a wait for a condition
		}
	}

	waitJobs(t, sys, all, 2*time.Minute)
	jobs.Stop(t)
	var served []int64
	conclusions := map[string]int{}
	for _, id := range all {
		j, err := sys.Job(ctx, id)
		require.NoError(t, err)
		conclusions[j.Conclusion]++
		require.NotEqual(t, fakegithub.ConclusionFailure, j.Conclusion, "job %d failed on %s: its runner was lost", id, j.RunnerName)
		if cancelled[id] {
			continue
		}
		served = append(served, id)
	}
	allJobsOnce(t, sys, served)
	consistent(t, sys, map[string]int{"churn": min}, 2*time.Minute)
	limits.Stop()
	starts.Stop()
	require.NoError(t, starts.Err(), "the watch of the container starts")
	require.Empty(t, starts.Duplicates(), "runners with more than one container")
	t.Logf("CHURN jobs=%d served=%d conclusions=%v rounds_with_jobs_during_a_delete=%d runners_total=%d busy_results=%v",
		len(all), len(served), conclusions, duringDelete, runnersTotal(t, sys),
		metricSum(t, sys, `runner_manager_scheduler_results_total{outcome="busy"}`))
	rep.Done(len(all))
}
