package scenarios

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

// runnerView is what the scenario reads of a runner's record in the admin
// API (GET /api/v1/runners[/{name}], what rmctl runners shows).
type runnerView struct {
	Name          string `json:"name"`
	Group         string `json:"group"`
	State         string `json:"state"`
	JobID         int64  `json:"job_id"`
	JobRunID      int64  `json:"job_run_id"`
	JobRepository string `json:"job_repository"`
	JobWorkflow   string `json:"job_workflow"`
}

// TestRunnerJobMetadata (issue 17, "The backend is told when a job
// starts"): while a job runs, its runner's record shows the job's id, run
// id, repository and workflow, by name and in the group's listing. The
// runner is a Docker container, whose labels cannot change after its
// creation: the metadata is kept in the record only, and the scheduler emits
// no UpdateRunner command for it (commands_total{type="update"} stays 0).
// The EC2 and GCE updates (tags, labels) are covered by their backends'
// tests against the wire fakes; this harness runs provisioner-docker only.
func TestRunnerJobMetadata(t *testing.T) {
	sys := start(t, harness.Options{
		Groups: []config.RunnerGroup{harness.DockerGroup("meta", 1, 0, smallLabels...)},
	})
	rep := newReport(t, sys)
	ctx := context.Background()

	id, err := sys.QueueJob(ctx, "billing", smallLabels, 10*time.Second, harness.Workflow("Deploy prod"))
	require.NoError(t, err)
	var j fakegithub.Job
	var r runnerView
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		if j, err = sys.Job(ctx, id); err != nil || j.Status != fakegithub.StatusInProgress {
			return false
		}
		r = runnerView{}
		return sys.Admin(ctx, http.MethodGet, "/api/v1/runners/"+j.RunnerName, &r) == nil && r.State == "busy"
	}, "job %d running, its runner busy in its record", id)
	require.NotZero(t, j.RunID)
	want := runnerView{
		Name: j.RunnerName, Group: "meta", State: "busy", JobID: id,
		JobRunID: j.RunID, JobRepository: harness.Org + "/billing", JobWorkflow: "Deploy prod",
	}
	require.Equal(t, want, r, "the runner's record while its job runs")

	var list struct {
		Runners []runnerView `json:"runners"`
	}
	require.NoError(t, sys.Admin(ctx, http.MethodGet, "/api/v1/runners?group=meta", &list))
	i := slices.IndexFunc(list.Runners, func(v runnerView) bool { return v.Name == j.RunnerName })
	require.GreaterOrEqual(t, i, 0, "runner %s listed in %v", j.RunnerName, list.Runners)
	require.Equal(t, want, list.Runners[i], "the runner as rmctl runners lists it")

	l, err := sys.Job(ctx, id)
	require.NoError(t, err)
	require.Equal(t, fakegithub.StatusInProgress, l.Status, "the record was read while the job ran")

	waitJobs(t, sys, []int64{id}, 30*time.Second)
	settled(t, sys, 30*time.Second)
	require.Equal(t, 1.0, metricSum(t, sys, `runner_manager_scheduler_commands_total{reason="queued",type="create"}`))
	require.Zero(t, metricSum(t, sys, `runner_manager_scheduler_commands_total{reason="job_started",type="update"}`),
		"an UpdateRunner command emitted for a Docker runner")
	require.Equal(t, 1.0, metricSum(t, sys, `runner_manager_scheduler_events_total{action="in_progress",outcome="applied"}`))
	rep.Done(1)
}
