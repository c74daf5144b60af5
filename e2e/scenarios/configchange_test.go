package scenarios

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/keys"
)

// TestRemovedGroupLeavesNothing (issue 16, item 3): a group with an idle
// runner is removed from the configuration and the scheduler and the
// provisioner restart with it. The runner's record kept its location and
// organization: it is drained, and the system ends with no container, no
// record and no registration of that group.
func TestRemovedGroupLeavesNothing(t *testing.T) {
	sys := start(t, harness.Options{
		Groups: []config.RunnerGroup{
			harness.DockerGroup("keep", 2, 0, "self-hosted", "linux", "keep"),
			harness.DockerGroup("gone", 2, 1, smallLabels...),
		},
		ReconcileInterval:   time.Second,
		HealthCheckInterval: 10 * time.Minute,
		TimeToStart:         time.Minute,
	})
	ctx := context.Background()
	ofGone := func(name string) bool { return strings.Contains(name, "-gone-") }
	eventually(t, time.Minute, 100*time.Millisecond, func() bool { return onlineRunners(t, sys) == 1 }, "the warm runner of group gone online")
	ctrs, err := sys.ContainerRunners(ctx)
	require.NoError(t, err)
	var runner string
	for name := range ctrs {
		if ofGone(name) {
			runner = name
		}
	}
	require.NotEmpty(t, runner, "containers: %v", ctrs)

	// The new configuration: group gone removed. Both services restart on it.
	restartWith(t, sys, func(cfg *config.Config) { cfg.RunnerGroups = cfg.RunnerGroups[:1] })

	eventually(t, 2*time.Minute, 200*time.Millisecond, func() bool {
		return len(leftOf(t, sys, ofGone)) == 0
	}, "runner %s of the removed group: container, registration or record left", runner)
	drained := metricSum(t, sys, `runner_manager_scheduler_commands_total{reason="group_removed",type="delete"}`)
	require.EqualValues(t, 1, drained, "the runner was drained as of a removed group")
	failures := metricSum(t, sys, `runner_manager_scheduler_delete_failures_total`)
	require.Zero(t, failures, "a delete failed")
}

// TestRemovedGroupBusyRunnerFinishesItsJob (issue 16, item 3): a group is
// removed while one of its runners runs a job and another waits idle. After
// the scheduler and the provisioner restart on the new configuration, the
// idle runner is deleted at once (group_removed: registration first, then
// the container) while the busy one is left alone: its job ends success,
// then its container, registration and record go (job_completed). Nothing
// of the group is left, and no container is deleted while its job runs.
func TestRemovedGroupBusyRunnerFinishesItsJob(t *testing.T) {
	sys := start(t, harness.Options{
		Groups: []config.RunnerGroup{
			harness.DockerGroup("keep", 2, 0, "self-hosted", "linux", "keep"),
			harness.DockerGroup("gone", 3, 1, smallLabels...),
		},
		ReconcileInterval:   time.Second,
		HealthCheckInterval: 10 * time.Minute,
		TimeToStart:         time.Minute,
	})
	ctx := context.Background()
	ofGone := func(name string) bool { return strings.Contains(name, "-gone-") }
	k := keys.New(sys.Config.Name)
	eventually(t, time.Minute, 100*time.Millisecond, func() bool { return onlineRunners(t, sys) == 1 }, "the warm runner of group gone online")

	// The warm runner takes a job long enough to outlast the restart; the
	// group is topped up with a new idle runner.
	job, err := sys.QueueJob(ctx, "app", smallLabels, 20*time.Second)
	require.NoError(t, err)
	var busy string
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		j, err := sys.Job(ctx, job)
		if err != nil || j.Status != fakegithub.StatusInProgress {
			return false
		}
		busy = j.RunnerName
		st, err := sys.RedisClient().HGet(ctx, k.Runner(busy), "state").Result()
		return err == nil && st == "busy"
	}, "job %d in progress, its runner's record busy", job)
	var idle string
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		rs, err := sys.Runners(ctx)
		if err != nil {
			return false
		}
		for _, r := range rs {
			if r.Name != busy && ofGone(r.Name) && r.Status == "online" && !r.Busy {
				idle = r.Name
				return true
			}
		}
		return false
	}, "a new idle runner of group gone online")
	watch := watchRunningJobs(t, sys)

	restartWith(t, sys, func(cfg *config.Config) { cfg.RunnerGroups = cfg.RunnerGroups[:1] })

	// The idle runner goes at once, while the job still runs.
	eventually(t, 15*time.Second, 100*time.Millisecond, func() bool {
		return len(leftOf(t, sys, func(name string) bool { return name == idle })) == 0
	}, "the idle runner %s of the removed group deleted", idle)
	j, err := sys.Job(ctx, job)
	require.NoError(t, err)
	require.Equal(t, fakegithub.StatusInProgress, j.Status, "job %d ended before the idle runner was deleted: the scenario proves nothing", job)
	require.Equal(t, map[string]string{busy: "running"}, containersOf(t, sys, ofGone), "the busy runner's container")

	eventually(t, time.Minute, 200*time.Millisecond, func() bool {
		j, err = sys.Job(ctx, job)
		return err == nil && j.Status == fakegithub.StatusCompleted
	}, "job %d completed", job)
	require.Equal(t, "success", j.Conclusion, "job %d on %s", job, busy)
	require.Equal(t, busy, j.RunnerName)
	var left []string
	eventually(t, 30*time.Second, 200*time.Millisecond, func() bool {
		left = leftOf(t, sys, ofGone)
		return len(left) == 0
	}, "runners of the removed group left: %v", &left)
	watch.Stop(t)
	require.EqualValues(t, 1, metricSum(t, sys, `runner_manager_scheduler_commands_total{reason="group_removed",type="delete"}`),
		"only the idle runner is drained as of a removed group")
	require.Zero(t, metricSum(t, sys, `runner_manager_scheduler_delete_failures_total`), "a delete failed")
}

// TestSpecChangeReplacesRunners (issue 16, item 3): the image of a Docker
// group changes while the group has a busy runner and an idle one, and the
// scheduler and the provisioner restart on the new configuration. The
// runners made under the old spec are deleted where they were (the idle one
// at once, spec_changed; the busy one once its job ends success), new
// runners use the new image, a job queued after the change completes on one
// of them, and nothing of the old spec is left.
func TestSpecChangeReplacesRunners(t *testing.T) {
	sys := start(t, harness.Options{
		Groups:              []config.RunnerGroup{harness.DockerGroup("spec", 3, 1, smallLabels...)},
		ReconcileInterval:   time.Second,
		HealthCheckInterval: 10 * time.Minute,
		TimeToStart:         time.Minute,
	})
	ctx := context.Background()
	oldImage := sys.Config.RunnerGroups[0].Backend.Docker.Image
	// The new image: the same one under a tag of this test's own.
	newImage := "runner-manager/fake-runner:" + sys.Opts.Name
	d, err := harness.Docker()
	require.NoError(t, err)
	require.NoError(t, d.ImageTag(ctx, oldImage, newImage))
	t.Cleanup(func() { _, _ = d.ImageRemove(context.Background(), newImage, image.RemoveOptions{}) })

	eventually(t, time.Minute, 100*time.Millisecond, func() bool { return onlineRunners(t, sys) == 1 }, "the warm runner online")
	job, err := sys.QueueJob(ctx, "app", smallLabels, 15*time.Second)
	require.NoError(t, err)
	var busy string
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		j, err := sys.Job(ctx, job)
		busy = j.RunnerName
		return err == nil && j.Status == fakegithub.StatusInProgress
	}, "job %d in progress", job)
	var idle string
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		rs, err := sys.Runners(ctx)
		if err != nil {
			return false
		}
		for _, r := range rs {
			if r.Name != busy && r.Status == "online" && !r.Busy {
				idle = r.Name
				return true
			}
		}
		return false
	}, "the new warm runner online")
	old := map[string]bool{}
	for name, image := range containerImages(t, sys) {
		require.Equal(t, oldImage, image, "runner %s", name)
		old[name] = true
	}
	require.Equal(t, map[string]bool{busy: true, idle: true}, old, "the runners of the old spec")
	watch := watchRunningJobs(t, sys)

	restartWith(t, sys, func(cfg *config.Config) {
		g := cfg.RunnerGroups[0]
		spec := *g.Backend.Docker
		spec.Image = newImage
		g.Backend.Docker = &spec
		cfg.RunnerGroups[0] = g
	})

	// The idle runner of the old spec goes at once, while the old busy one
	// still runs its job.
	eventually(t, 15*time.Second, 100*time.Millisecond, func() bool {
		return len(leftOf(t, sys, func(name string) bool { return name == idle })) == 0
	}, "the idle runner %s of the old spec deleted", idle)
	j, err := sys.Job(ctx, job)
	require.NoError(t, err)
	require.Equal(t, fakegithub.StatusInProgress, j.Status, "job %d ended before the idle runner was deleted: the scenario proves nothing", job)

	// A job queued now runs on a runner of the new spec.
	after, err := sys.QueueJob(ctx, "app", smallLabels, 5*time.Second)
	require.NoError(t, err)
	var ranOn, image string
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		j, err := sys.Job(ctx, after)
		if err != nil || j.Status != fakegithub.StatusInProgress {
			return false
		}
		ranOn = j.RunnerName
		image = containerImages(t, sys)[ranOn]
		return true
	}, "job %d in progress", after)
	require.Equal(t, newImage, image, "job %d runs on %s", after, ranOn)
	require.False(t, old[ranOn], "job %d runs on %s, a runner of the old spec", after, ranOn)

	for _, id := range []int64{job, after} {
		eventually(t, time.Minute, 200*time.Millisecond, func() bool {
			j, err = sys.Job(ctx, id)
			return err == nil && j.Status == fakegithub.StatusCompleted
		}, "job %d completed", id)
		require.Equal(t, "success", j.Conclusion, "job %d on %s", id, j.RunnerName)
	}
	var left []string
	eventually(t, 30*time.Second, 200*time.Millisecond, func() bool {
		left = leftOf(t, sys, func(name string) bool { return old[name] })
		return len(left) == 0
	}, "runners of the old spec left: %v", &left)
	watch.Stop(t)
	for name, image := range containerImages(t, sys) {
		require.Equal(t, newImage, image, "runner %s", name)
	}
	require.EqualValues(t, 1, metricSum(t, sys, `runner_manager_scheduler_commands_total{reason="spec_changed",type="delete"}`),
		"only the idle runner is retired for its spec")
	require.Zero(t, metricSum(t, sys, `runner_manager_scheduler_delete_failures_total`), "a delete failed")
}

// containerImages returns the image of each of the manager's containers, by
// runner name.
func containerImages(t *testing.T, sys *harness.System) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := sys.Containers(ctx)
	require.NoError(t, err)
	out := map[string]string{}
	if len(ids) == 0 {
		return out
	}
	d, err := harness.Docker()
	require.NoError(t, err)
	for _, id := range ids {
		c, err := d.ContainerInspect(ctx, id)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		require.NoError(t, err, "inspect container %s", id)
		out[c.Config.Labels[backend.LabelRunner]] = c.Config.Image
	}
	return out
}

// containersOf returns the state of the manager's containers whose runner
// name match selects.
func containersOf(t *testing.T, sys *harness.System, match func(name string) bool) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctrs, err := sys.ContainerRunners(ctx)
	require.NoError(t, err)
	out := map[string]string{}
	for name, st := range ctrs {
		if match(name) {
			out[name] = st
		}
	}
	return out
}

// restartWith stops the schedulers and the provisioners, writes the
// configuration as edit changes it, and starts them again on it (the
// provisioners first), as a configuration change rolls out.
func restartWith(t *testing.T, sys *harness.System, edit func(*config.Config)) {
	t.Helper()
	for _, p := range append(append([]*harness.Proc(nil), sys.Schedulers...), sys.Provisioners...) {
		p.Stop(15 * time.Second)
	}
	cfg := *sys.Config
	cfg.RunnerGroups = append([]config.RunnerGroup(nil), cfg.RunnerGroups...)
	edit(&cfg)
	b, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(sys.ConfigPath, b, 0o644))
	*sys.Config = cfg
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range append(append([]*harness.Proc(nil), sys.Provisioners...), sys.Schedulers...) {
		require.NoError(t, p.Start(ctx))
	}
}

// leftOf lists what is left of the runners whose name match selects: their
// containers, registrations at the fake GitHub and records, one line each
// ("container x", "registration x", "record x"); any error is a line too.
func leftOf(t *testing.T, sys *harness.System, match func(name string) bool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var left []string
	ctrs, err := sys.ContainerRunners(ctx)
	if err != nil {
		left = append(left, err.Error())
	}
	for name := range ctrs {
		if match(name) {
			left = append(left, "container "+name)
		}
	}
	rs, err := sys.Runners(ctx)
	if err != nil {
		left = append(left, err.Error())
	}
	for _, r := range rs {
		if match(r.Name) {
			left = append(left, "registration "+r.Name)
		}
	}
	k := keys.New(sys.Config.Name)
	var cursor uint64
	for {
		found, next, err := sys.RedisClient().Scan(ctx, cursor, k.Runner("*"), 100).Result()
		if err != nil {
			return append(left, err.Error())
		}
		for _, key := range found {
			if name := strings.TrimPrefix(key, k.Runner("")); match(name) {
				left = append(left, "record "+name)
			}
		}
		if cursor = next; cursor == 0 {
			return left
		}
	}
}
