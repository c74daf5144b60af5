package scenarios

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
)

// TestCompose brings the integration environment of deploy/compose.yaml up
// from the local images, has its fake GitHub's jobs run by runner containers,
// checks that those containers go away, and brings it down with nothing left
// behind (containers, networks, volumes).
func TestCompose(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	sh := func(env []string, name string, args ...string) string {
		// A context of its own: the clean-up runs after ctx is cancelled.
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer ccancel()
		cmd := exec.CommandContext(cctx, name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v:\n%s", name, args, out)
		return string(out)
	}
	sh(nil, "make", "--no-print-directory", "images")

	fakePort, err := harness.FreePort()
	require.NoError(t, err)
	env := []string{
		"SIMULATE_RATE=0",
		fmt.Sprintf("FAKEGITHUB_PORT=%d", fakePort),
		"INGRESS_PORT=0", "SCHEDULER_PORT=0",
	}
	down := func() { sh(env, filepath.Join(root, "scripts", "compose.sh"), "down") }
	t.Cleanup(func() {
		if t.Failed() {
			logs := exec.Command("bash", "-c", "cd deploy && docker-compose -p rm-compose logs --tail 30")
			logs.Dir = root
			out, _ := logs.CombinedOutput()
			t.Logf("compose logs:\n%s", out)
		}
		down()
	})
	sh(env, filepath.Join(root, "scripts", "compose.sh"), "up")

	sys := &harness.System{FakeURL: fmt.Sprintf("http://127.0.0.1:%d", fakePort), Opts: harness.Options{Name: "rm-compose"}}
	var ids []int64
	for i := 0; i < 6; i++ {
		id, err := sys.QueueJob(ctx, "demo", []string{"self-hosted", "linux", "small"}, 2*time.Second)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	// Runners are on their own network, never on the one of Redis and the services.
	var networks string
	require.Eventually(t, func() bool {
		ids, err := sys.Containers(ctx)
		if err != nil || len(ids) == 0 {
			return false
		}
		out, err := exec.Command("docker", append([]string{"inspect", "-f", "{{range $n, $_ := .NetworkSettings.Networks}}{{$n}} {{end}}"}, ids...)...).Output()
		networks = string(out)
		return err == nil && strings.TrimSpace(networks) != ""
	}, 2*time.Minute, 100*time.Millisecond, "a runner container appears")
	for _, n := range strings.Fields(networks) {
		require.Equal(t, "rm-compose-runners", n, "runner containers are only on the runners' network")
	}
	waitJobs(t, sys, ids, 4*time.Minute)
	require.Eventually(t, func() bool {
		ids, err := sys.Containers(ctx)
		return err == nil && len(ids) == 0
	}, 2*time.Minute, time.Second, "runner containers go away after their jobs")

	down()
	left := func(kind string, args ...string) []string {
		out := sh(nil, "docker", args...)
		return strings.Fields(out)
	}
	require.Empty(t, left("containers", "ps", "-aq", "--filter", "label=com.docker.compose.project=rm-compose"))
	require.Empty(t, left("runner containers", "ps", "-aq", "--filter", "label=runner-manager.io/manager=rm-compose"))
	require.Empty(t, left("networks", "network", "ls", "-q", "--filter", "name=^rm-compose$"))
	require.Empty(t, left("networks", "network", "ls", "-q", "--filter", "name=^rm-compose-runners$"))
	require.Empty(t, left("volumes", "volume", "ls", "-q", "--filter", "label=com.docker.compose.project=rm-compose"))
}
