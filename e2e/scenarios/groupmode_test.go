package scenarios

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

// groupView is what the scenario reads of GET /api/v1/groups.
type groupView struct {
	Name   string `json:"name"`
	Mode   string `json:"mode"`
	Total  int64  `json:"total"`
	Demand int64  `json:"demand"`
}

func adminGroup(t *testing.T, sys *harness.System, name string) groupView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out struct {
		Groups []groupView `json:"groups"`
	}
	require.NoError(t, sys.Admin(ctx, http.MethodGet, "/api/v1/groups", &out))
	i := slices.IndexFunc(out.Groups, func(g groupView) bool { return g.Name == name })
	require.GreaterOrEqual(t, i, 0, "group %s in %v", name, out.Groups)
	return out.Groups[i]
}

// modeChange is the answer of POST /api/v1/groups/{name}/{action}.
type modeChange struct {
	Mode     string   `json:"mode"`
	Deleting []string `json:"deleting"`
}

func setMode(t *testing.T, sys *harness.System, group, action string) modeChange {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out modeChange
	require.NoError(t, sys.Admin(ctx, http.MethodPost, "/api/v1/groups/"+group+"/"+action, &out))
	return out
}

// groupRunners lists the fake GitHub's registrations of a group (runner
// names are <manager>-<group>-<suffix>).
func groupRunners(t *testing.T, sys *harness.System, group string) []fakegithub.Runner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := sys.Runners(ctx)
	require.NoError(t, err)
	var out []fakegithub.Runner
	for _, r := range rs {
		if strings.HasPrefix(r.Name, sys.Opts.Name+"-"+group+"-") {
			out = append(out, r)
		}
	}
	return out
}

// schedulerRunners lists the names of a group's runners in a state, as the
// scheduler's records say.
func schedulerRunners(t *testing.T, sys *harness.System, group, state string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out struct {
		Runners []struct {
			Name string `json:"name"`
		} `json:"runners"`
	}
	require.NoError(t, sys.Admin(ctx, http.MethodGet, "/api/v1/runners?group="+group+"&state="+state, &out))
	names := make([]string, 0, len(out.Runners))
	for _, r := range out.Runners {
		names = append(names, r.Name)
	}
	return names
}

// passes is the number of reconcile passes so far (all schedulers).
func passes(t *testing.T, sys *harness.System) float64 {
	return metricSum(t, sys, "runner_manager_scheduler_reconcile_pass_duration_seconds_count")
}

// waitPasses waits until n more reconcile passes ran: every decision the
// loop takes on what Redis held before has been taken.
func waitPasses(t *testing.T, sys *harness.System, n float64) {
	t.Helper()
	from := passes(t, sys)
	eventually(t, 20*time.Second, 100*time.Millisecond, func() bool { return passes(t, sys) >= from+n }, "%v reconcile passes", n)
}

// TestGroupPauseAndDrain (issue 19): a paused group gets no runner for a
// queued job (the job waits, counted as demand) until it is resumed; then
// the job completes. A drained group loses its idle warm runner at once,
// its busy runner finishes its job (success) and is deleted then, and
// nothing is created for it while it drains (min_runners not topped up).
func TestGroupPauseAndDrain(t *testing.T) {
	sys := start(t, harness.Options{
		Groups: []config.RunnerGroup{
			harness.DockerGroup("p", 1, 0, smallLabels...),
			harness.DockerGroup("d", 3, 1, largeLabels...),
		},
		ReconcileInterval:   time.Second,
		HealthCheckInterval: 10 * time.Minute,
		TimeToStart:         time.Minute,
	})
	ctx := context.Background()

	// Pause: the queued job waits, no runner, no container.
	require.Equal(t, "paused", setMode(t, sys, "p", "pause").Mode)
	require.Equal(t, "paused", adminGroup(t, sys, "p").Mode)
	waiting, err := sys.QueueJob(ctx, "app", smallLabels, time.Second)
	require.NoError(t, err)
	eventually(t, 10*time.Second, 100*time.Millisecond, func() bool { return adminGroup(t, sys, "p").Demand == 1 },
		"job %d counted as demand", waiting)
	waitPasses(t, sys, 2)
	g := adminGroup(t, sys, "p")
	require.Zero(t, g.Total, "a runner was reserved for a paused group")
	require.Empty(t, groupRunners(t, sys, "p"))
	ctrs, err := sys.ContainerRunners(ctx)
	require.NoError(t, err)
	for name := range ctrs {
		require.False(t, strings.HasPrefix(name, sys.Opts.Name+"-p-"), "container %s of the paused group", name)
	}
	j, err := sys.Job(ctx, waiting)
	require.NoError(t, err)
	require.Equal(t, fakegithub.StatusQueued, j.Status)

	// Resume: the job gets its runner and completes.
	require.Equal(t, "active", setMode(t, sys, "p", "resume").Mode)
	waitJobs(t, sys, []int64{waiting}, 30*time.Second)

	// Drain: group d has its warm runner; a job makes one busy, and the
	// top-up (min_runners) a new warm one.
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool { return len(groupRunners(t, sys, "d")) == 1 }, "d's warm runner")
	long, err := sys.QueueJob(ctx, "app", largeLabels, 15*time.Second) // outlasts the boot of the next warm runner under load
	require.NoError(t, err)
	var busy, idle string
	eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		busy, idle = "", ""
		for _, r := range groupRunners(t, sys, "d") {
			switch {
			case r.Busy && r.JobID == long:
				busy = r.Name
			case !r.Busy && r.Status == "online":
				idle = r.Name
			}
		}
		return busy != "" && idle != "" && slices.Contains(schedulerRunners(t, sys, "d", "busy"), busy)
	}, "job %d running on one runner of d (busy for the scheduler too), another warm", long)
	registered := runnersTotal(t, sys)

	ch := setMode(t, sys, "d", "drain")
	require.Equal(t, "draining", ch.Mode)
	require.Equal(t, []string{idle}, ch.Deleting, "the idle runner goes at once, not the busy one")
	eventually(t, 15*time.Second, 100*time.Millisecond, func() bool {
		ctrs, err := sys.ContainerRunners(ctx)
		return err == nil && ctrs[idle] == ""
	}, "the idle runner's container deleted")
	ctrs, err = sys.ContainerRunners(ctx)
	require.NoError(t, err)
	require.Equal(t, "running", ctrs[busy], "the busy runner's container runs on")

	waitJobs(t, sys, []int64{long}, 30*time.Second)
	j, err = sys.Job(ctx, long)
	require.NoError(t, err)
	require.Equal(t, fakegithub.ConclusionSuccess, j.Conclusion)
	eventually(t, 15*time.Second, 100*time.Millisecond, func() bool {
		ctrs, err := sys.ContainerRunners(ctx)
		return err == nil && ctrs[busy] == "" && adminGroup(t, sys, "d").Total == 0
	}, "the busy runner deleted after its job")
	waitPasses(t, sys, 2)
	require.Zero(t, adminGroup(t, sys, "d").Total, "min_runners topped up while draining")
	require.Empty(t, groupRunners(t, sys, "d"))
	require.Equal(t, registered, runnersTotal(t, sys), "a runner registered while draining")
	require.Equal(t, 1.0, metricSum(t, sys, `runner_manager_group_mode{group="d",mode="draining"}`))
	require.Equal(t, "draining", adminGroup(t, sys, "d").Mode)
}
