// Package fakerunnerimage_test runs the fake-runner image (scripts/build-fake-runner-image.sh)
// against the fake GitHub, in a container started by testcontainers-go.
package fakerunnerimage_test

import (
	"context"
	"io"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub/fakegithubtest"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
)

const token = "t0ken"

// newFake serves a fake GitHub on 127.0.0.1.
func newFake(t *testing.T) (*fakegithub.Server, *httptest.Server) {
	return fakegithubtest.Start(t, fakegithub.Options{Tokens: []string{token}, RunnerPingInterval: 200 * time.Millisecond})
}

// register returns the encoded JIT config of a new runner of acme.
func register(t *testing.T, url, name string, labels ...string) string {
	return fakegithubtest.RegisterOrgRunner(t, url, token, "acme", name, labels...)
}

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

// runContainer starts the fake runner image with host networking; the JIT
// config travels in the container's environment (the engine API's create
// request), never on a command line. The container is removed at cleanup.
func runContainer(t *testing.T, image, name, jit string) *testcontainers.DockerContainer {
	t.Helper()
	return harness.RunContainer(t, image,
		testcontainers.WithName(name),
		testcontainers.WithEnv(map[string]string{fakerunner.EnvJITConfig: jit}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" }),
	)
}

// exitCode waits for the container to stop and returns its exit status.
func exitCode(t *testing.T, c *testcontainers.DockerContainer) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, err := harness.ExitCode(ctx, c.GetContainerID())
	require.NoError(t, err)
	return code
}

func TestImageRunsAJobWithHostNetworking(t *testing.T) {
	image := buildImage(t)
	fake, srv := newFake(t) // listens on 127.0.0.1, reachable with host networking
	jit := register(t, srv.URL, "in-docker", "self-hosted", "linux")
	c := runContainer(t, image, "rm-fake-runner-test-job", jit)
	waitStatus(t, fake, "in-docker", "online")
	j, err := fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"linux"}, Duration: 100 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, int64(0), exitCode(t, c), "exits 0 after its one job")
	got, _ := fake.Job(j.ID)
	require.Equal(t, fakegithub.StatusCompleted, got.Status)
	require.Equal(t, fakegithub.ConclusionSuccess, got.Conclusion)
	require.Equal(t, "in-docker", got.RunnerName)
	_, registered := fake.RunnerByName("in-docker")
	require.False(t, registered, "ephemeral runner removed")
	r, err := c.Logs(context.Background())
	require.NoError(t, err)
	logs, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NotContains(t, string(logs), jit)

	// SIGTERM: exits by itself (143), not killed by docker after the grace period (137)
	jit = register(t, srv.URL, "stopped-in-docker", "self-hosted")
	c = runContainer(t, image, "rm-fake-runner-test-term", jit)
	waitStatus(t, fake, "stopped-in-docker", "online")
	grace := 30 * time.Second
	require.NoError(t, c.Stop(context.Background(), &grace))
	require.Equal(t, int64(143), exitCode(t, c))
	waitStatus(t, fake, "stopped-in-docker", "offline")
}

// waitStatus waits until the fake GitHub lists the runner with status.
func waitStatus(t *testing.T, fake *fakegithub.Server, name, status string) {
	t.Helper()
	require.Eventually(t, func() bool {
		r, ok := fake.RunnerByName(name)
		return ok && r.Status == status
	}, 30*time.Second, 10*time.Millisecond, "runner %s never %s", name, status)
}
