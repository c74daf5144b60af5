package fakerunner_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/fakegithub"
	"github.com/runner-manager/runner-manager/e2e/fakerunner"
)

// buildImage builds the image with the project's script, as CI does.
func buildImage(t *testing.T) string {
	t.Helper()
	image := "runner-manager/fake-runner:dev"
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "build-fake-runner-image.sh"))
	require.NoError(t, err)
	out, err := exec.Command(script, image).CombinedOutput()
	require.NoError(t, err, "build image: %s", out)
	return image
}

// runContainer starts the fake runner image with host networking; the JIT config
// travels in the environment of the docker client, never on a command line.
func runContainer(t *testing.T, image, name, jit string) {
	t.Helper()
	_ = exec.Command("docker", "rm", "-f", name).Run()
	cmd := exec.Command("docker", "run", "-d", "--name", name, "--network", "host", "-e", fakerunner.EnvJITConfig, image)
	cmd.Env = append(os.Environ(), fakerunner.EnvJITConfig+"="+jit)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "docker run: %s", out)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
}

// exitCode waits for the container to stop and returns its exit status.
func exitCode(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "wait", name).Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

func TestImageRunsAJobWithHostNetworking(t *testing.T) {
	image := buildImage(t)
	fake, srv := newFake(t) // listens on 127.0.0.1, reachable with host networking
	jit := register(t, srv.URL, "in-docker", "self-hosted", "linux")
	name := "rm-fake-runner-test-job"
	runContainer(t, image, name, jit)
	waitStatus(t, fake, "in-docker", "online")
	j, err := fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"linux"}, Duration: 100 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, "0", exitCode(t, name), "exits 0 after its one job")
	got, _ := fake.Job(j.ID)
	require.Equal(t, fakegithub.StatusCompleted, got.Status)
	require.Equal(t, fakegithub.ConclusionSuccess, got.Conclusion)
	require.Equal(t, "in-docker", got.RunnerName)
	_, registered := fake.RunnerByName("in-docker")
	require.False(t, registered, "ephemeral runner removed")
	logs, err := exec.Command("docker", "logs", name).CombinedOutput()
	require.NoError(t, err)
	require.NotContains(t, string(logs), jit)

	// SIGTERM: exits by itself (143), not killed by docker after the grace period (137)
	jit = register(t, srv.URL, "stopped-in-docker", "self-hosted")
	name = "rm-fake-runner-test-term"
	runContainer(t, image, name, jit)
	waitStatus(t, fake, "stopped-in-docker", "online")
	require.NoError(t, exec.Command("docker", "stop", "-t", "30", name).Run())
	require.Equal(t, "143", exitCode(t, name))
	waitStatus(t, fake, "stopped-in-docker", "offline")
}
