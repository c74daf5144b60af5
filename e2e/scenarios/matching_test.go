package scenarios

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/keys"
)

// jobGroup is the group a job was counted in, as the scheduler's job record
// says (the group matching chose; its demand held the job).
func jobGroup(t *testing.T, sys *harness.System, id int64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := sys.RedisClient().HGet(ctx, keys.New(sys.Opts.Name).Job(id), "group").Result()
	require.NoError(t, err, "job %d's record", id)
	return g
}

// ranIn checks that a job completed successfully on a runner of group: the
// runner's name and its GitHub runner group say so.
func ranIn(t *testing.T, sys *harness.System, id int64, group string) fakegithub.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := sys.Job(ctx, id)
	require.NoError(t, err)
	require.Equal(t, fakegithub.ConclusionSuccess, j.Conclusion, "job %d", id)
	require.Equal(t, group, j.RunnerGroupName, "job %d ran in group %s", id, group)
	require.True(t, strings.HasPrefix(j.RunnerName, sys.Opts.Name+"-"+group+"-"), "job %d's runner %s is of group %s", id, j.RunnerName, group)
	return j
}

// TestMatchWorkflowName (issue 17): two groups with the same labels, the
// second restricted to the workflow "release" (workflow_name). The
// restricted group comes first for the jobs of that workflow although it is
// second in the file; every other workflow, "Release" included (the name is
// compared case-sensitively), goes to the unrestricted group. The jobs run
// one after another: GitHub (and the fake) gives a job to any idle runner
// whose labels fit, so only one runner may exist at a time for the runner
// group that ran a job to be the one matching chose.
func TestMatchWorkflowName(t *testing.T) {
	release := harness.DockerGroup("release", 1, 0, smallLabels...)
	release.WorkflowName = "release"
	sys := start(t, harness.Options{
		Groups: []config.RunnerGroup{harness.DockerGroup("general", 1, 0, smallLabels...), release},
	})
	rep := newReport(t, sys)
	limits := watchLimits(t, sys)
	ctx := context.Background()

	cases := []struct{ workflow, group string }{
		{"release", "release"},
		{"CI", "general"},
		{"Release", "general"},
	}
	for _, c := range cases {
		id, err := sys.QueueJob(ctx, "app", smallLabels, time.Second, harness.Workflow(c.workflow))
		require.NoError(t, err)
		waitJobs(t, sys, []int64{id}, 30*time.Second)
		ranIn(t, sys, id, c.group)
		require.Equal(t, c.group, jobGroup(t, sys, id), "workflow %q: the group counting job %d", c.workflow, id)
		// The runner is gone before the next job is queued (ephemeral: one
		// job each, then deleted).
		eventually(t, 20*time.Second, 100*time.Millisecond, func() bool {
			rs, err := sys.Runners(ctx)
			return err == nil && len(rs) == 0
		}, "job %d's runner removed", id)
	}
	limits.Stop()
	require.EqualValues(t, len(cases), runnersTotal(t, sys), "one runner per job")
	settled(t, sys, 30*time.Second)
	rep.Done(len(cases))
}

// TestMatchSpillOver (issue 17): three groups match a job's labels, ranked
// by the labels the job did not ask for: "best" (none extra, max_runners 1),
// "nospill" (one extra, spill_over false) and "spill" (two extra,
// spill_over true). While a long job keeps best's only runner busy, a second
// job has candidates [best, spill] (config.JobGroups): nospill, although
// ranked before spill and with room, never takes another group's job. The
// job is counted in spill alone, gets a runner there and completes while
// best is still full; no group exceeds max_runners, and when both jobs are
// done no demand is left anywhere (a second count in best would have left a
// demand that its completed event, which releases the recorded group only,
// does not drop).
func TestMatchSpillOver(t *testing.T) {
	spill := harness.DockerGroup("spill", 1, 0, append(slices.Clone(smallLabels), "ssd", "fast")...)
	spill.SpillOver = true
	sys := start(t, harness.Options{
		Groups: []config.RunnerGroup{
			spill,
			harness.DockerGroup("nospill", 1, 0, append(slices.Clone(smallLabels), "ssd")...),
			harness.DockerGroup("best", 1, 0, smallLabels...),
		},
	})
	rep := newReport(t, sys)
	limits := watchLimits(t, sys)
	ctx := context.Background()

	// A long job fills best (its only runner busy, for the scheduler too).
	long, err := sys.QueueJob(ctx, "app", smallLabels, 15*time.Second)
	require.NoError(t, err)
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		j, err := sys.Job(ctx, long)
		return err == nil && j.Status == fakegithub.StatusInProgress &&
			slices.Contains(schedulerRunners(t, sys, "best", "busy"), j.RunnerName)
	}, "job %d running on best's runner", long)
	require.Equal(t, "best", jobGroup(t, sys, long))

	// The second job spills over to spill; it is never counted in best or
	// nospill while it waits for its runner.
	spilled, err := sys.QueueJob(ctx, "app", smallLabels, time.Second)
	require.NoError(t, err)
	var samples int
	var demand []string
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		samples++
		for _, g := range []string{"best", "nospill", "spill"} {
			want := int64(0)
			if g == "spill" {
				want = 1 // at most: until its in_progress
			}
			if d := adminGroup(t, sys, g).Demand; d > want {
				demand = append(demand, fmt.Sprintf("%s=%d", g, d))
			}
		}
		j, err := sys.Job(ctx, spilled)
		return err == nil && j.Status == fakegithub.StatusCompleted
	}, "job %d completed", spilled)
	require.Empty(t, demand, "demand beyond the spilled job's one count, in %d samples", samples)
	require.Equal(t, "spill", jobGroup(t, sys, spilled))
	j := ranIn(t, sys, spilled, "spill")
	l, err := sys.Job(ctx, long)
	require.NoError(t, err)
	require.Equal(t, fakegithub.StatusInProgress, l.Status, "job %d ran while best was full", spilled)
	t.Logf("spilled job %d: queued→completed %s, long job still running", spilled, j.CompletedAt.Sub(j.CreatedAt))

	waitJobs(t, sys, []int64{long}, 30*time.Second)
	ranIn(t, sys, long, "best")
	limits.Stop()
	settled(t, sys, 30*time.Second)
	for _, g := range []string{"best", "nospill", "spill"} {
		require.Zero(t, adminGroup(t, sys, g).Demand, "demand of %s", g)
	}
	require.EqualValues(t, 2, runnersTotal(t, sys), "one runner per job, none in nospill")
	for g, n := range map[string]float64{"best": 1, "spill": 1, "nospill": 0} {
		require.Equal(t, n, metricSum(t, sys, `runner_manager_scheduler_queued_to_create_seconds_count{group="`+g+`"}`),
			"create commands of queued events in %s", g)
	}
	rep.Done(2)
}
