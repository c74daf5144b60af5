package scenarios

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// TestSlice is the vertical slice of `make run`: 20 jobs queued at the fake
// GitHub all complete on Docker containers, no container is left, and no
// secret reached a log, Redis or a metric.
func TestSlice(t *testing.T) {
	sys := start(t, harness.Options{
		Groups: []config.RunnerGroup{harness.DockerGroup("small", 5, 0, "self-hosted", "linux", "small")},
	})
	watch := watchLimits(t, sys)
	ctx := context.Background()
	var ids []int64
	for i := 0; i < 20; i++ {
		id, err := sys.QueueJob(ctx, "app", []string{"self-hosted", "linux", "small"}, 2*time.Second)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	waitJobs(t, sys, ids, 3*time.Minute)
	settled(t, sys, time.Minute)
	watch.Stop()
	noSecretsAnywhere(t, sys)
}
