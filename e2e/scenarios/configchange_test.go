package scenarios

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
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
	for _, p := range append(append([]*harness.Proc(nil), sys.Schedulers...), sys.Provisioners...) {
		p.Stop(15 * time.Second)
	}
	cfg := *sys.Config
	cfg.RunnerGroups = cfg.RunnerGroups[:1]
	b, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(sys.ConfigPath, b, 0o644))
	for _, p := range append(append([]*harness.Proc(nil), sys.Provisioners...), sys.Schedulers...) {
		require.NoError(t, p.Start(ctx))
	}

	eventually(t, 2*time.Minute, 200*time.Millisecond, func() bool {
		ctrs, err := sys.ContainerRunners(ctx)
		if err != nil {
			return false
		}
		for name := range ctrs {
			if ofGone(name) {
				return false
			}
		}
		rs, err := sys.Runners(ctx)
		if err != nil {
			return false
		}
		for _, r := range rs {
			if ofGone(r.Name) {
				return false
			}
		}
		n, err := sys.RedisClient().Exists(ctx, keys.New(sys.Config.Name).Runner(runner)).Result()
		return err == nil && n == 0
	}, "runner %s of the removed group: container, registration or record left", runner)
	drained := metricSum(t, sys, `runner_manager_scheduler_commands_total{reason="group_removed",type="delete"}`)
	require.EqualValues(t, 1, drained, "the runner was drained as of a removed group")
	failures := metricSum(t, sys, `runner_manager_scheduler_delete_failures_total`)
	require.Zero(t, failures, "a delete failed")
}
