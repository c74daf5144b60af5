package scenarios

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
)

// TestNeverConnects (scenario 4): the first runner of a job never comes
// online; the health check deletes it after time_to_start, and the job is
// served by the runner created in its place.
func TestNeverConnects(t *testing.T) {
	const timeToStart, interval = 20 * time.Second, 5 * time.Second
	// Runners started before this instant never connect: the first one, made
	// right after the start, is one of them; its replacement, made after
	// time_to_start, is not.
	until := time.Now().Add(25 * time.Second)
	g := withEnv(harness.DockerGroup("flaky", 2, 0, smallLabels...),
		map[string]string{fakerunner.EnvNeverConnectUntil: until.Format(time.RFC3339Nano)})
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{g},
		HealthCheckInterval: interval,
		TimeToStart:         timeToStart,
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ids := queueJobs(t, sys, 1, "app", smallLabels, time.Second)

	var first string
	eventually(t, time.Minute, 200*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cs, err := sys.ContainerRunners(ctx)
		for name := range cs {
			first = name
		}
		return err == nil && first != ""
	}, "a runner container for the job")
	require.True(t, time.Now().Before(until), "the first runner was created after %s: the scenario's timing does not hold on this machine", until)
	t.Logf("first runner %s never connects", first)

	waitJobs(t, sys, ids, timeToStart+3*interval+2*time.Minute)
	ctx := context.Background()
	j, err := sys.Job(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, "success", j.Conclusion)
	require.NotEqual(t, first, j.RunnerName, "the job ran on the runner that never connected")
	settled(t, sys, 2*time.Minute)
	watch.Stop()
	rep.Done(len(ids))
}

// TestTimeToLive (scenario 5): a runner older than time_to_live is deleted,
// even while it runs a (too long) job; nothing is left behind.
func TestTimeToLive(t *testing.T) {
	const ttl, interval = 30 * time.Second, 5 * time.Second
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("ttl", 2, 0, smallLabels...)},
		HealthCheckInterval: interval,
		TimeToStart:         20 * time.Second,
		TimeToLive:          ttl,
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ids := queueJobs(t, sys, 1, "app", smallLabels, 10*time.Minute)
	ctx := context.Background()
	eventually(t, time.Minute, 200*time.Millisecond, func() bool {
		j, err := sys.Job(ctx, ids[0])
		return err == nil && j.Status == "in_progress"
	}, "the long job runs")
	began := time.Now()
	// The runner goes once older than time_to_live (checked every interval).
	waitJobs(t, sys, ids, ttl+3*interval+time.Minute)
	t.Logf("the job ended %s after it started", time.Since(began).Round(time.Second))
	j, err := sys.Job(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, "failure", j.Conclusion, "the runner was deleted during its job")
	settled(t, sys, 2*time.Minute)
	watch.Stop()
	require.Equal(t, int64(1), runnersTotal(t, sys), "no runner made after the deleted one: its job is over")
	rep.Done(len(ids))
}

// TestOrphanContainer (scenario 10): containers with the manager's labels
// that no record knows are deleted by the health check once older than
// time_to_start — one named like its runner (what a lost record leaves) and
// one with an engine-chosen name (made by hand, as the brief's `docker run`);
// containers without the label, or with another manager's, are never touched.
func TestOrphanContainer(t *testing.T) {
	const timeToStart, interval = 15 * time.Second, 5 * time.Second
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("small", 3, 0, smallLabels...)},
		HealthCheckInterval: interval,
		TimeToStart:         timeToStart,
	})
	rep := newReport(t, sys)
	name := sys.Opts.Name
	leak := func(suffix string) map[string]string {
		return map[string]string{
			backend.LabelManager: name,
			backend.LabelGroup:   "small",
			backend.LabelRunner:  name + "-small-" + suffix,
		}
	}
	created := time.Now() // before the orphans: their age is at most time.Since(created)
	named := dockerRun(t, name+"-small-leak0001", leak("leak0001"))
	unnamed := dockerRun(t, "", leak("leak0000"))
	unlabelled := dockerRun(t, "", map[string]string{"e2e": "unlabelled"})
	foreign := dockerRun(t, "", map[string]string{
		backend.LabelManager: name + "-other",
		backend.LabelGroup:   "small",
		backend.LabelRunner:  name + "-other-small-leak0000",
	})
	within := timeToStart + 3*interval + time.Minute
	eventually(t, within, time.Second, func() bool { return containerState(t, named) == "gone" },
		"the orphan container named like its runner is deleted")
	t.Logf("the orphan went %s after it was made (time_to_start %s)", time.Since(created).Round(time.Second), timeToStart)
	// The engine lists a container's creation time in whole seconds.
	require.GreaterOrEqual(t, time.Since(created), timeToStart-time.Second, "an orphan younger than time_to_start may be a create in flight")
	eventually(t, within-time.Since(created), time.Second, func() bool { return containerState(t, unnamed) == "gone" },
		"the orphan container whose name is not its runner's is deleted (docker Backend.Delete looks containers up by name only)")

	// The system keeps working, through several more health checks.
	ids := queueJobs(t, sys, 3, "app", smallLabels, time.Second)
	waitJobs(t, sys, ids, 2*time.Minute)
	settled(t, sys, 2*time.Minute)
	eventually(t, time.Minute, time.Second, func() bool { return time.Since(created) > timeToStart+3*interval },
		"three health checks past time_to_start")
	require.Equal(t, "running", containerState(t, unlabelled), "a container without the label is never touched")
	require.Equal(t, "running", containerState(t, foreign), "another manager's container is never touched")
	rep.Done(len(ids))
}
