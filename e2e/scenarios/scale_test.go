package scenarios

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// TestManyJobsTwoGroups (scenario 1): 100 jobs over two groups with different
// labels all complete, each on a runner of its own group, and nothing leaks.
func TestManyJobsTwoGroups(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp: true,
		Groups: []config.RunnerGroup{
			harness.DockerGroup("small", 8, 0, smallLabels...),
			harness.DockerGroup("large", 8, 0, largeLabels...),
		},
		HealthCheckInterval: 10 * time.Second,
		TimeToStart:         30 * time.Second,
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	var small, large []int64
	for i := 0; i < 50; i++ {
		small = append(small, queueJobs(t, sys, 1, "app", smallLabels, time.Second)...)
		large = append(large, queueJobs(t, sys, 1, "api", largeLabels, time.Second)...)
	}
	ids := append(slices.Clone(small), large...)
	waitJobs(t, sys, ids, 6*time.Minute)
	allJobsOnce(t, sys, ids)
	ctx := context.Background()
	for group, jobs := range map[string][]int64{"small": small, "large": large} {
		for _, id := range jobs {
			j, err := sys.Job(ctx, id)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(j.RunnerName, sys.Opts.Name+"-"+group+"-"),
				"job %d of group %s ran on %s", id, group, j.RunnerName)
		}
	}
	settled(t, sys, 2*time.Minute)
	watch.Stop()
	require.Equal(t, int64(len(ids)), runnersTotal(t, sys), "one runner registered per job")
	rep.Done(len(ids))
}

// TestBurst (scenario 2): 300 jobs queued at once on a group of at most 10
// runners. The limit holds at every sample, every job completes, and the
// timings of the burst are reported.
func TestBurst(t *testing.T) {
	const jobs, max = 300, 10
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("burst", max, 0, smallLabels...)},
		HealthCheckInterval: 10 * time.Second,
		TimeToStart:         30 * time.Second,
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ctx := context.Background()
	starts, err := sys.WatchContainerStarts(ctx)
	require.NoError(t, err)
	t.Cleanup(starts.Stop)

	queued := time.Now()
	ids := queueJobsConcurrently(t, sys, jobs, "app", smallLabels, time.Second)
	t.Logf("queued %d jobs in %s", jobs, time.Since(queued).Round(time.Millisecond))
	waitJobs(t, sys, ids, 10*time.Minute)
	allJobsOnce(t, sys, ids)
	settled(t, sys, 2*time.Minute)
	watch.Stop()
	starts.Stop()
	require.NoError(t, starts.Err(), "the watch of the container starts")
	require.Empty(t, starts.Duplicates(), "runners with more than one container")
	require.Equal(t, int64(jobs), runnersTotal(t, sys), "one runner registered per job")

	// First queued job -> last create command, from the stream's entry ids.
	var firstQueued time.Time
	var lats []time.Duration
	for _, id := range ids {
		j, err := sys.Job(ctx, id)
		require.NoError(t, err)
		if firstQueued.IsZero() || j.CreatedAt.Before(firstQueued) {
			firstQueued = j.CreatedAt
		}
		st, ok := starts.Starts()[j.RunnerName]
		require.True(t, ok, "no container start seen for runner %s of job %d", j.RunnerName, id)
		lats = append(lats, st.Sub(j.CreatedAt))
	}
	creates, lastCreate := createCommands(t, sys)
	require.Equal(t, jobs, creates, "one create command per job")
	slices.Sort(lats)
	pct := func(p float64) time.Duration { return lats[int(p*float64(len(lats)-1))] }
	t.Logf("BURST jobs=%d max_runners=%d first_queued->last_create=%s queued->container_started p50=%s p99=%s max=%s total=%s",
		jobs, max, lastCreate.Sub(firstQueued).Round(time.Millisecond), pct(0.50).Round(time.Millisecond),
		pct(0.99).Round(time.Millisecond), lats[len(lats)-1].Round(time.Millisecond), time.Since(queued).Round(time.Second))
	rep.Done(jobs)
}

// createCommands counts the create commands of {P}:provision:docker and
// returns the time of the last one (entry ids are millisecond timestamps).
func createCommands(t *testing.T, sys *harness.System) (int, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entries, err := sys.RedisClient().XRange(ctx, keys.New(sys.Opts.Name).Provision("docker"), "-", "+").Result()
	require.NoError(t, err)
	n := 0
	var last time.Time
	for _, e := range entries {
		if e.Values[stream.FieldType] != stream.TypeCommand {
			continue
		}
		data, _ := e.Values[stream.FieldData].(string)
		var cmd rmv1.ProvisionCommand
		require.NoError(t, proto.Unmarshal([]byte(data), &cmd))
		if cmd.GetCreate() == nil {
			continue
		}
		n++
		ms, err := strconv.ParseInt(strings.SplitN(e.ID, "-", 2)[0], 10, 64)
		require.NoError(t, err)
		if at := time.UnixMilli(ms); at.After(last) {
			last = at
		}
	}
	return n, last
}

// TestMinRunners (scenario 3): a group with min_runners 3 has three idle
// runners before any job, serves jobs, and has three idle runners again after.
func TestMinRunners(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("warm", 6, 3, smallLabels...)},
		HealthCheckInterval: 5 * time.Second,
		TimeToStart:         30 * time.Second,
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	before := consistent(t, sys, map[string]int{"warm": 3}, 2*time.Minute)
	eventually(t, time.Minute, 500*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rs, err := sys.Runners(ctx)
		if err != nil || len(rs) != 3 {
			return false
		}
		for _, r := range rs {
			if r.Status != "online" || r.Busy {
				return false
			}
		}
		return true
	}, "three idle runners online at GitHub before any job")

	ids := queueJobs(t, sys, 10, "app", smallLabels, time.Second)
	waitJobs(t, sys, ids, 3*time.Minute)
	allJobsOnce(t, sys, ids)
	after := consistent(t, sys, map[string]int{"warm": 3}, 2*time.Minute)
	t.Logf("idle runners before: %v, after: %v", before, after)
	watch.Stop()
	rep.Done(len(ids))
}
