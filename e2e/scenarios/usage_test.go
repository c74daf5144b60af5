package scenarios

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// usageRow is one row of GET /api/v1/usage.
type usageRow struct {
	Group          string  `json:"group"`
	Repository     string  `json:"repository"`
	Workflow       string  `json:"workflow"`
	Jobs           int64   `json:"jobs"`
	BusySeconds    float64 `json:"busy_seconds"`
	IdleSeconds    float64 `json:"idle_seconds"`
	Boots          int64   `json:"boots"`
	BootP50Seconds float64 `json:"boot_p50_seconds"`
	Waits          int64   `json:"waits"`
	WaitP95Seconds float64 `json:"wait_p95_seconds"`
}

// TestUsageReport: jobs of known durations in two repositories and two
// workflows; the usage report counts each job once, per repository and
// workflow, and its busy seconds add up to the jobs' run times.
func TestUsageReport(t *testing.T) {
	sys := start(t, harness.Options{
		GitHubApp: true,
		Groups:    []config.RunnerGroup{harness.DockerGroup("usage", 4, 0, smallLabels...)},
	})
	rep := newReport(t, sys)
	ctx := context.Background()
	type spec struct {
		repo, workflow string
		d              time.Duration
	}
	specs := []spec{
		{"app", "CI", 3 * time.Second}, {"app", "CI", 2 * time.Second}, {"app", "Nightly", 4 * time.Second},
		{"lib", "CI", 2 * time.Second}, {"lib", "CI", time.Second},
	}
	var ids []int64
	for _, s := range specs {
		id, err := sys.QueueJob(ctx, s.repo, smallLabels, s.d, harness.Workflow(s.workflow))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	waitJobs(t, sys, ids, 40*time.Second)

	// What GitHub (the fake) saw: per repository, the jobs' run times.
	ran := map[string]time.Duration{}
	jobs := map[[2]string]int64{}
	for i, id := range ids {
		j, err := sys.Job(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "success", j.Conclusion)
		run := j.CompletedAt.Sub(*j.StartedAt)
		require.GreaterOrEqual(t, run, specs[i].d)
		ran[harness.Org+"/"+specs[i].repo] += run
		jobs[[2]string{harness.Org + "/" + specs[i].repo, specs[i].workflow}]++
	}

	var rows []usageRow
	eventually(t, 15*time.Second, 200*time.Millisecond, func() bool {
		var r struct {
			Rows []usageRow `json:"rows"`
		}
		if err := sys.Admin(ctx, http.MethodGet, "/api/v1/usage?since=1h", &r); err != nil {
			return false
		}
		rows = r.Rows
		var busyJobs int64
		for _, row := range rows {
			if row.BusySeconds > 0 {
				busyJobs += row.Jobs
			}
		}
		return busyJobs == int64(len(ids))
	}, "every job counted with its run")

	busy := map[string]float64{}
	got := map[[2]string]int64{}
	for _, row := range rows {
		require.Equal(t, "usage", row.Group)
		if row.Repository == "" {
			continue // runners that ran no job (none expected, but a surplus is allowed)
		}
		busy[row.Repository] += row.BusySeconds
		got[[2]string{row.Repository, row.Workflow}] += row.Jobs
		require.Equal(t, row.Jobs, row.Waits, "%s/%s: every job's wait is known", row.Repository, row.Workflow)
		require.Equal(t, row.Jobs, row.Boots, "%s/%s: every job's runner has a boot time", row.Repository, row.Workflow)
		require.Positive(t, row.BootP50Seconds)
		require.Less(t, row.BootP50Seconds, 40.0)
		require.Positive(t, row.WaitP95Seconds)
		require.Less(t, row.WaitP95Seconds, 40.0)
		require.Positive(t, row.IdleSeconds, "the runners booted before their job")
	}
	require.Equal(t, jobs, got, "job counts per repository and workflow")
	// Busy is completed_at - started_at of the webhooks, whose timestamps
	// are whole seconds: each job is within 1 s of its run time.
	for repo, d := range ran {
		n := 0
		for k, c := range jobs {
			if k[0] == repo {
				n += int(c)
			}
		}
		require.InDelta(t, d.Seconds(), busy[repo], float64(n), "busy seconds of %s (%d jobs)", repo, n)
	}
	t.Logf("usage rows: %+v", rows)
	rep.Done(len(ids))
}
