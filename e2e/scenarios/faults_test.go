package scenarios

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// TestWebhookFaults (scenario 6): webhooks duplicated (30 %), reordered
// (30 %), then also dropped (10 %, recoverable through the deliveries API) and
// lost (10 % of in_progress and completed: only polling finds them). Every job
// completes, the health checks heal what was missed, and no job gets a second
// runner while only duplicates and reorders happen.
func TestWebhookFaults(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("small", 8, 0, smallLabels...)},
		HealthCheckInterval: 10 * time.Second,
		TimeToStart:         20 * time.Second,
		FakeArgs:            []string{"--seed", "6"},
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ctx := context.Background()

	// Phase 1: duplicates and reorders only. Demand is a set of job ids and
	// a job's status only moves forward: exactly one runner per job.
	require.NoError(t, sys.SetFaults(ctx, map[string]any{"duplicate": 0.3, "reorder": 0.3}))
	first := queueJobs(t, sys, 30, "app", smallLabels, time.Second)
	waitJobs(t, sys, first, 3*time.Minute)
	allJobsOnce(t, sys, first)
	settled(t, sys, 2*time.Minute)
	require.Equal(t, int64(len(first)), runnersTotal(t, sys), "one runner per job despite duplicated and reordered webhooks")

	// Phase 2: dropped webhooks (recovered through the deliveries API) and
	// lost in_progress and completed ones (healed by the health checks). A
	// lost "queued" is a job nothing can see: lose_actions spares it, its
	// redeliveries included. Turning "lose" on once the queued webhooks
	// were sent did not: the redelivery of a dropped "queued", or one held
	// back by the reorder fault, could still be lost; its job ran only when
	// it took a runner started for another job, and the last one queued
	// waited for ever (the project's CI on 2026-12-05: 1 of 60 jobs).
	require.NoError(t, sys.SetFaults(ctx, map[string]any{
		"duplicate": 0.3, "reorder": 0.3, "drop": 0.1, "lose": 0.1, "lose_actions": []string{"in_progress", "completed"},
	}))
	second := queueJobs(t, sys, 30, "app", smallLabels, 3*time.Second)
	ids := append(slices.Clone(first), second...)
	waitJobs(t, sys, ids, 5*time.Minute)
	require.NoError(t, sys.SetFaults(ctx, map[string]any{}))
	allJobsOnce(t, sys, ids)
	settled(t, sys, 3*time.Minute)
	watch.Stop()
	st, err := sys.Stats(ctx)
	require.NoError(t, err)
	require.Positive(t, st.Faults["drop"], "webhooks were dropped")
	require.Positive(t, st.Faults["lose"], "webhooks were lost")
	require.Positive(t, st.Faults["duplicate"], "webhooks were duplicated")
	require.Positive(t, st.Faults["reorder"], "webhooks were reordered")
	rep.Done(len(ids))
}

// TestGitHubOutage (scenario 11): the GitHub API answers 5xx and rate limits
// for a while; the system waits, then every job completes, and the
// rate-limit metric shows what happened.
func TestGitHubOutage(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("small", 5, 0, smallLabels...)},
		HealthCheckInterval: 10 * time.Second,
		TimeToStart:         30 * time.Second,
		FakeArgs:            []string{"--seed", "11"},
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ctx := context.Background()
	require.NoError(t, sys.SetFaults(ctx, map[string]any{"api_5xx": 0.5, "api_rate_limit": 0.2, "api_rate_limit_seconds": 5}))
	ids := queueJobs(t, sys, 20, "app", smallLabels, time.Second)
	outage := time.Now()
	eventually(t, 2*time.Minute, 500*time.Millisecond, func() bool {
		st, err := sys.Stats(ctx)
		return err == nil && st.Faults["api_5xx"] >= 5 && st.Faults["api_rate_limit"] >= 2
	}, "the API failed with 5xx and rate limits")
	eventually(t, 2*time.Minute, 500*time.Millisecond, func() bool {
		return metricSum(t, sys, "runner_manager_github_rate_limited_total") > 0
	}, "runner_manager_github_rate_limited_total counts the rate limits")
	t.Logf("outage of %s: %d jobs completed meanwhile", time.Since(outage).Round(time.Second), completedJobs(sys))
	require.NoError(t, sys.SetFaults(ctx, map[string]any{}))
	waitJobs(t, sys, ids, 4*time.Minute)
	allJobsOnce(t, sys, ids)
	settled(t, sys, 2*time.Minute)
	watch.Stop()
	t.Logf("runner_manager_github_rate_limited_total=%v runner_manager_github_retries_total=%v",
		metricSum(t, sys, "runner_manager_github_rate_limited_total"), metricSum(t, sys, "runner_manager_github_retries_total"))
	rep.Done(len(ids))
}
