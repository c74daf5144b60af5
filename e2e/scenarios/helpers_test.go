package scenarios

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// Labels of the scenarios' groups.
var (
	smallLabels = []string{"self-hosted", "linux", "small"}
	largeLabels = []string{"self-hosted", "linux", "large"}
)

// eventually polls cond every interval until it holds, failing the test with
// what after within.
func eventually(t *testing.T, within, interval time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, fmt.Sprintf(what, args...))
		}
		time.Sleep(interval)
	}
}

// queueJobsConcurrently queues n jobs with 8 clients at once (a burst).
func queueJobsConcurrently(t *testing.T, sys *harness.System, n int, repo string, labels []string, d time.Duration) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := range next {
				ids[i], errs[i] = sys.QueueJob(ctx, repo, labels, d)
			}
		})
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	return ids
}

// runnersTotal is the number of registrations the fake GitHub ever made.
func runnersTotal(t *testing.T, sys *harness.System) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := sys.Stats(ctx)
	require.NoError(t, err)
	return st.RunnersTotal
}

// completedJobs counts the jobs completed at the fake GitHub.
func completedJobs(sys *harness.System) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := sys.Stats(ctx)
	if err != nil {
		return 0
	}
	return st.Jobs["completed"]
}

// withEnv returns the group with extra environment for its runner containers.
func withEnv(g config.RunnerGroup, env map[string]string) config.RunnerGroup {
	spec := *g.Backend.Docker
	spec.Env = env
	g.Backend.Docker = &spec
	return g
}

// dockerRun starts a container of the fake-runner image that never connects,
// with labels (and a name, when not empty), and removes it at cleanup; it
// returns the container's id.
func dockerRun(t *testing.T, containerName string, labels map[string]string) string {
	t.Helper()
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(map[string]string{"FAKE_RUNNER_NEVER_CONNECT": "1"}),
		testcontainers.WithLabels(labels),
	}
	if containerName != "" {
		opts = append(opts, testcontainers.WithName(containerName))
	}
	return harness.RunContainer(t, "runner-manager/fake-runner:dev", opts...).GetContainerID()
}

// containerState returns a container's state ("running", "exited"...), or
// "gone" when it no longer exists.
func containerState(t *testing.T, id string) string {
	t.Helper()
	d, err := harness.Docker()
	require.NoError(t, err)
	c, err := d.ContainerInspect(context.Background(), id)
	if cerrdefs.IsNotFound(err) {
		return "gone"
	}
	require.NoError(t, err, "inspect container %s", id)
	return string(c.State.Status)
}
