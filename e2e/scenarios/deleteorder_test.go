package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

// jobWatch samples, while a scenario runs, the jobs in progress at the fake
// GitHub and the manager's containers: a job in progress whose runner's
// container is gone, stopped or being removed was killed by a delete
// (killedJob judges).
type jobWatch struct {
	stop chan struct{}
	done sync.WaitGroup
	mu   sync.Mutex
	errs []string
	n    int
	// cleared counts the jobs seen on a container not shown running that
	// killedJob cleared (the container started, or the job had ended).
	cleared int
}

func watchRunningJobs(t *testing.T, sys *harness.System) *jobWatch {
	t.Helper()
	w := &jobWatch{stop: make(chan struct{})}
	w.done.Go(func() {
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			jobs, err := sys.Jobs(ctx, fakegithub.StatusInProgress)
			var ctrs map[string]string
			if err == nil {
				ctrs, err = sys.ContainerRunners(ctx)
			}
			cancel()
			if err != nil {
				continue
			}
			for _, j := range jobs {
				if ctrs[j.RunnerName] == "running" {
					continue
				}
				verdict := killedJob(context.Background(), j.ID, j.RunnerName, 15*time.Second, 100*time.Millisecond,
					func(ctx context.Context) (string, error) {
						now, err := sys.Job(ctx, j.ID)
						return now.Status, err
					},
					func(ctx context.Context) (string, error) {
						now, err := sys.ContainerRunners(ctx)
						return now[j.RunnerName], err
					})
				w.mu.Lock()
				if verdict != "" {
					w.errs = append(w.errs, verdict)
				} else {
					w.cleared++
				}
				w.mu.Unlock()
			}
			w.mu.Lock()
			w.n++
			w.mu.Unlock()
		}
	})
	return w
}

// killedJob judges a job seen in progress on a runner whose container was
// not running: it reads both again, every interval, while the container is
// "created" (the engine shows a container running only once its start has
// returned, and on a loaded machine the runner inside takes a job before
// that), for up to patience. It returns why the job was killed, or "" when
// it was not: the job left in progress (it may have completed between the
// two reads), the container runs, or a read failed.
func killedJob(ctx context.Context, id int64, runner string, patience, interval time.Duration,
	jobStatus, ctrState func(context.Context) (string, error)) string {
	deadline := time.Now().Add(patience)
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		status, err := jobStatus(rctx)
		var st string
		if err == nil {
			st, err = ctrState(rctx)
		}
		cancel()
		switch {
		case err != nil, status != fakegithub.StatusInProgress, st == "running":
			return ""
		case st != "created":
			return fmt.Sprintf("job %d in progress on %s, whose container is %q", id, runner, st)
		case time.Now().After(deadline):
			return fmt.Sprintf("job %d in progress on %s, whose container is still %q after %s", id, runner, st, patience)
		}
		time.Sleep(interval)
	}
}

func (w *jobWatch) Stop(t *testing.T) {
	t.Helper()
	close(w.stop)
	w.done.Wait()
	t.Logf("job watch: %d samples, %d jobs seen on a container not shown running, then cleared (it started, or the job had ended)", w.n, w.cleared)
	require.Empty(t, w.errs, "a container was deleted while its job ran")
}

// cancelJob cancels a job at the fake GitHub.
func cancelJob(t *testing.T, sys *harness.System, id int64) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/_fake/jobs/%d/cancel", sys.FakeURL, id), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "cancel job %d", id)
}

func onlineRunners(t *testing.T, sys *harness.System) int {
	t.Helper()
	rs, err := sys.Runners(context.Background())
	require.NoError(t, err)
	n := 0
	for _, r := range rs {
		if r.Status == "online" {
			n++
		}
	}
	return n
}

// TestScaleDownNeverKillsAJob (issue 16, items 1 and 7): the reconcile lists
// the runners, sees a surplus runner idle and deletes it; GitHub hands that
// runner a job right after the list (the fake's dispatch_after_list fault,
// with the jobs' queued webhooks lost so that the records still show a
// surplus). The registration goes first, GitHub refuses (422, busy), the
// instance stays: every job ends success, and no container is deleted while
// its job runs.
func TestScaleDownNeverKillsAJob(t *testing.T) {
	sys := start(t, harness.Options{
		Groups:              []config.RunnerGroup{harness.DockerGroup("warm", 3, 1, smallLabels...)},
		ReconcileInterval:   time.Second,
		HealthCheckInterval: 10 * time.Minute,
		TimeToStart:         time.Minute,
	})
	ctx := context.Background()
	eventually(t, time.Minute, 100*time.Millisecond, func() bool { return onlineRunners(t, sys) == 1 }, "the warm runner online")
	watch := watchRunningJobs(t, sys)

	// Jobs are held from now until the next runner list.
	require.NoError(t, sys.SetFaults(ctx, map[string]any{"dispatch_after_list": true}))
	j0, err := sys.QueueJob(ctx, "app", smallLabels, 30*time.Second)
	require.NoError(t, err)
	eventually(t, time.Minute, 100*time.Millisecond, func() bool { return onlineRunners(t, sys) == 2 }, "a runner for job %d online", j0)

	// Two jobs GitHub knows of and the manager does not (webhooks lost).
	require.NoError(t, sys.SetFaults(ctx, map[string]any{"dispatch_after_list": true, "lose": 1}))
	var ids []int64
	for range 2 {
		id, err := sys.QueueJob(ctx, "app", smallLabels, 4*time.Second)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.NoError(t, sys.SetFaults(ctx, map[string]any{"dispatch_after_list": true}))

	// Job 0 cancelled while queued: one of the two idle runners is surplus.
	cancelJob(t, sys, j0)
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		st, err := sys.Stats(ctx)
		return err == nil && st.Faults["dispatch_after_list"] == 1
	}, "the reconcile never listed the runners")

	waitJobs(t, sys, ids, 2*time.Minute)
	for _, id := range ids {
		j, err := sys.Job(ctx, id)
		require.NoError(t, err)
		require.Equal(t, fakegithub.ConclusionSuccess, j.Conclusion, "job %d on %s", id, j.RunnerName)
	}
	watch.Stop(t)
	busy := metricSum(t, sys, `runner_manager_scheduler_results_total{outcome="busy"}`)
	t.Logf("busy results: %v", busy)
}
