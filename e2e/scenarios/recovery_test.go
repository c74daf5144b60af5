package scenarios

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// TestIngressDownRecovery (issue "Operations"): the ingress is down while jobs
// are queued, so GitHub records failed deliveries and never retries them. When
// the ingress returns, the missed-webhook recovery (GitHub App mode) asks for
// redeliveries and every job is served, with health checks and time_to_start
// set far beyond the test, so no health-check timeout is involved.
func TestIngressDownRecovery(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("small", 5, 0, smallLabels...)},
		HealthCheckInterval: time.Hour,
		TimeToStart:         time.Hour,
	})
	rep := newReport(t, sys)
	ctx := context.Background()

	sys.Ingress.Stop(10 * time.Second)
	ids := queueJobs(t, sys, 5, "app", smallLabels, time.Second)
	eventually(t, time.Minute, 200*time.Millisecond, func() bool {
		st, err := sys.Stats(ctx)
		return err == nil && st.WebhooksPending == 0 && st.WebhooksFailed >= int64(len(ids))
	}, "the queued webhooks failed while the ingress was down")
	for _, id := range ids {
		j, err := sys.Job(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "queued", j.Status, "job %d waits for a runner", id)
	}

	require.NoError(t, sys.Ingress.Start(ctx))
	back := time.Now()
	// The recovery runs every 15 s in the harness: the jobs are served
	// within a pass or two.
	waitJobs(t, sys, ids, 2*time.Minute)
	t.Logf("every job served %s after the ingress came back", time.Since(back).Round(time.Second))
	allJobsOnce(t, sys, ids)
	settled(t, sys, 2*time.Minute)
	require.GreaterOrEqual(t, metricSum(t, sys, "runner_manager_recovery_redeliveries_total"), float64(len(ids)),
		"the jobs came back through redeliveries")
	rep.Done(len(ids))
}
