package scenarios

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// burstUntil queues n jobs at once and waits until at least runners runners
// were registered at the fake GitHub (the middle of the burst).
func burstUntil(t *testing.T, sys *harness.System, n int, runners int64) []int64 {
	t.Helper()
	ids := queueJobsConcurrently(t, sys, n, "app", smallLabels, 2*time.Second)
	eventually(t, 2*time.Minute, 100*time.Millisecond, func() bool {
		return runnersTotal(t, sys) >= runners
	}, "%d runners registered", runners)
	return ids
}

// TestProvisionerCrash (scenario 7): two provisioner-docker replicas; one is
// killed (SIGKILL) in the middle of a burst. Its pending commands are taken
// over by the other once idle for streams.reclaim_min_idle: no container is
// made twice, none is lost, every job completes.
func TestProvisionerCrash(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("small", 10, 0, smallLabels...)},
		HealthCheckInterval: 10 * time.Second,
		TimeToStart:         2 * time.Minute,
		Provisioners:        2,
		Configure: func(c *config.Config) {
			c.Provisioner.CallTimeout = 20 * time.Second
			c.Streams.ReclaimMinIdle = 30 * time.Second
		},
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ctx := context.Background()
	starts, err := sys.WatchContainerStarts(ctx)
	require.NoError(t, err)
	t.Cleanup(starts.Stop)

	ids := burstUntil(t, sys, 60, 12)
	sys.Provisioners[0].Kill()
	t.Logf("killed %s with %d runners registered", sys.Provisioners[0].Name, runnersTotal(t, sys))
	waitJobs(t, sys, ids, 5*time.Minute)
	allJobsOnce(t, sys, ids)
	settled(t, sys, 3*time.Minute)
	watch.Stop()
	starts.Stop()
	require.NoError(t, starts.Err(), "the watch of the container starts")
	require.Empty(t, starts.Duplicates(), "runners with more than one container")
	creates, _ := createCommands(t, sys)
	require.Equal(t, len(ids), creates, "one create command per job")
	rep.Done(len(ids))
}

// TestSchedulerCrash (scenario 8): the scheduler is killed (SIGKILL) and
// restarted in the middle of a burst, then a second replica joins and a
// second burst runs on both: every job completes, limits hold, nothing leaks.
func TestSchedulerCrash(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("small", 10, 0, smallLabels...)},
		HealthCheckInterval: 10 * time.Second,
		TimeToStart:         time.Minute,
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	first := burstUntil(t, sys, 40, 10)
	sys.Schedulers[0].Kill()
	require.NoError(t, sys.Schedulers[0].Start(ctx))
	t.Logf("restarted %s with %d runners registered", sys.Schedulers[0].Name, runnersTotal(t, sys))
	waitJobs(t, sys, first, 4*time.Minute)

	_, err := sys.AddScheduler(ctx)
	require.NoError(t, err)
	second := queueJobsConcurrently(t, sys, 40, "app", smallLabels, 2*time.Second)
	ids := append(slices.Clone(first), second...)
	waitJobs(t, sys, ids, 4*time.Minute)
	allJobsOnce(t, sys, ids)
	settled(t, sys, 3*time.Minute)
	watch.Stop()
	require.Equal(t, int64(len(ids)), runnersTotal(t, sys), "one runner registered per job")
	rep.Done(len(ids))
}

// TestRedisRestart (scenario 9): Redis (append-only file, fsync always) is
// killed in the middle of a burst and restarted once webhooks failed against
// it; the services reconnect by themselves, the failed deliveries are
// recovered, and every job completes with nothing left behind.
func TestRedisRestart(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("small", 10, 0, smallLabels...)},
		HealthCheckInterval: 10 * time.Second,
		TimeToStart:         time.Minute,
		RedisAppendFsync:    "always",
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ids := burstUntil(t, sys, 50, 12)
	sys.Redis.Kill()
	t.Logf("killed redis with %d runners registered", runnersTotal(t, sys))
	// Webhooks while Redis is down: the ingress answers 503, GitHub records
	// failed deliveries, and the recovery has them redelivered.
	more := queueJobs(t, sys, 10, "app", smallLabels, 2*time.Second)
	eventually(t, time.Minute, 100*time.Millisecond, func() bool {
		st, err := sys.Stats(ctx)
		return err == nil && st.WebhooksFailed >= 2
	}, "webhooks failed while Redis is down")
	require.NoError(t, sys.StartRedis(ctx))
	ids = append(ids, more...)
	waitJobs(t, sys, ids, 5*time.Minute)
	allJobsOnce(t, sys, ids)
	settled(t, sys, 3*time.Minute)
	watch.Stop()
	rep.Done(len(ids))
}
