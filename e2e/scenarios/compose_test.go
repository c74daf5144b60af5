package scenarios

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go/modules/compose"

	"github.com/runner-manager/runner-manager/e2e/harness"
)

// composeProject is the compose project name, as `make up` names it.
const composeProject = "rm-compose"

// TestCompose brings the integration environment of deploy/compose.yaml up
// from the local images with testcontainers-go's compose module, has its fake
// GitHub's jobs run by runner containers, checks that those containers go
// away, and brings it down with nothing left behind (containers, networks,
// volumes).
func TestCompose(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	sh := func(name string, args ...string) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v:\n%s", name, args, out)
	}
	sh("make", "--no-print-directory", "images")
	// The Redis password files compose.yaml reads, made as `make up` makes them.
	sh(filepath.Join(root, "scripts", "compose.sh"), "secrets")
	// The local images only (compose pulls only what is missing): the Redis
	// stand-in that `make images` builds rather than redis:7 from Docker Hub.
	for _, img := range []string{"runner-manager/redis:local", "runner-manager/fakegithub:dev", "runner-manager/ingress:dev",
		"runner-manager/scheduler:dev", "runner-manager/provisioner-docker:dev", "runner-manager/fake-runner:dev"} {
		harness.RequireImage(t, img)
	}

	fakePort, err := harness.FreePort()
	require.NoError(t, err)
	stack, err := compose.NewDockerComposeWith(
		compose.WithStackFiles(filepath.Join(root, "deploy", "compose.yaml")),
		compose.StackIdentifier(composeProject),
	)
	require.NoError(t, err)
	stack.WithEnv(map[string]string{
		"REDIS_IMAGE":     "runner-manager/redis:local",
		"SIMULATE_RATE":   "0",
		"FAKEGITHUB_PORT": strconv.Itoa(fakePort),
		"INGRESS_PORT":    "0",
		"SCHEDULER_PORT":  "0",
	})
	sys := &harness.System{FakeURL: fmt.Sprintf("http://127.0.0.1:%d", fakePort), Opts: harness.Options{Name: composeProject}}

	// As scripts/compose.sh down: runner containers are made by
	// provisioner-docker, not by compose; stop it first, remove them, then the
	// runners' network can go with the rest.
	downed := false
	down := func() {
		if downed {
			return
		}
		downed = true
		// A context of its own: the clean-up runs after ctx is cancelled.
		dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer dcancel()
		if p, err := stack.ServiceContainer(dctx, "provisioner-docker"); err == nil {
			grace := 20 * time.Second
			require.NoError(t, p.Stop(dctx, &grace))
		}
		require.NoError(t, sys.RemoveContainers(dctx))
		require.NoError(t, stack.Down(dctx, compose.RemoveOrphans(true), compose.RemoveVolumes(true)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			logServices(t, stack)
		}
		down()
		require.NoError(t, stack.Close())
	})
	// Wait: every service with a health check reports healthy.
	require.NoError(t, stack.Up(ctx, compose.Wait(true)), "compose up")

	var ids []int64
	for i := 0; i < 6; i++ {
		id, err := sys.QueueJob(ctx, "demo", []string{"self-hosted", "linux", "small"}, 2*time.Second)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	d, err := harness.Docker()
	require.NoError(t, err)
	// Runners are on their own network, never on the one of Redis and the services.
	var networks []string
	require.Eventually(t, func() bool {
		ids, err := sys.Containers(ctx)
		if err != nil || len(ids) == 0 {
			return false
		}
		networks = networks[:0]
		for _, id := range ids {
			c, err := d.ContainerInspect(ctx, id)
			if err != nil {
				return false
			}
			for n := range c.NetworkSettings.Networks {
				networks = append(networks, n)
			}
		}
		return len(networks) > 0
	}, 2*time.Minute, 100*time.Millisecond, "a runner container appears")
	for _, n := range networks {
		require.Equal(t, "rm-compose-runners", n, "runner containers are only on the runners' network")
	}
	waitJobs(t, sys, ids, 4*time.Minute)
	require.Eventually(t, func() bool {
		ids, err := sys.Containers(ctx)
		return err == nil && len(ids) == 0
	}, 2*time.Minute, time.Second, "runner containers go away after their jobs")

	down()
	project := filters.Arg("label", "com.docker.compose.project="+composeProject)
	cs, err := d.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(project)})
	require.NoError(t, err)
	require.Empty(t, cs, "the project's containers")
	runners, err := sys.Containers(ctx)
	require.NoError(t, err)
	require.Empty(t, runners, "runner containers")
	for _, name := range []string{"^rm-compose$", "^rm-compose-runners$"} {
		ns, err := d.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
		require.NoError(t, err)
		require.Empty(t, ns, "network %s", name)
	}
	vs, err := d.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(project)})
	require.NoError(t, err)
	require.Empty(t, vs.Volumes, "the project's volumes")
}

// logServices logs the last lines of every service's output.
func logServices(t *testing.T, stack *compose.DockerCompose) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Named here: the stack knows its services only once its project loaded.
	for _, svc := range []string{"redis", "fakegithub", "ingress", "scheduler", "provisioner-docker"} {
		c, err := stack.ServiceContainer(ctx, svc)
		if err != nil {
			t.Logf("%s: %v", svc, err)
			continue
		}
		r, err := c.Logs(ctx)
		if err != nil {
			t.Logf("%s: logs: %v", svc, err)
			continue
		}
		b, _ := io.ReadAll(r)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("%s (last lines):\n%s", svc, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}
