package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/dispatch"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/health"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// Check 1: a runner not online at GitHub within time_to_start is deleted; one
// online and not busy becomes idle, whatever its age.
func TestTimeToStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 0, 5))
	never := e.queued("pool", 1, "")  // pending, never created
	silent := e.queued("pool", 2, "") // started, registered, never online
	online := e.queued("pool", 3, "") // started and online
	e.started(silent)
	e.started(online)
	e.register(silent)
	e.connect(e.register(online))

	e.clock.Advance(timeToStart - time.Second)
	rep := e.runOnce()
	require.Empty(t, rep.TimeToStart, "nothing is deleted before time_to_start")
	require.Equal(t, []string{online}, rep.MarkedIdle, "online and not busy at GitHub: idle")
	require.Equal(t, state.Idle, e.runner(online).State)

	e.clock.Advance(2 * time.Second)
	young := e.queued("pool", 4, "") // reserved just now
	rep = e.runOnce()
	require.ElementsMatch(t, []string{never, silent}, rep.TimeToStart)
	require.Equal(t, state.Deleting, e.runner(never).State)
	require.Equal(t, state.Deleting, e.runner(silent).State)
	require.Equal(t, state.Idle, e.runner(online).State, "online runners are never deleted for time_to_start")
	require.Equal(t, state.Pending, e.runner(young).State)
	dels := e.deletes()
	require.Equal(t, map[string]string{never: state.ReasonTimeToStart, silent: state.ReasonTimeToStart}, dels)
	require.Equal(t, 2.0, e.actions(health.CheckTimeToStart))
}

func (e *env) actions(check string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(e.t, err)
	for _, mf := range mfs {
		if mf.GetName() != "runner_manager_health_actions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "check" && l.GetValue() == check {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// Check 2: a runner older than time_to_live is deleted, busy or not.
func TestTimeToLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	busy := e.queued("pool", 1, "")
	e.started(busy)
	_, err := e.store.InProgress(e.ctx, e.group("pool"), state.JobUpdate{JobID: 1, RunnerName: busy})
	require.NoError(t, err)
	require.Equal(t, state.Busy, e.runner(busy).State)
	// GitHub shows it online and busy, so that nothing else touches it.
	_, err = e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"linux"}, Duration: time.Hour})
	require.NoError(t, err)
	e.connect(e.register(busy))
	e.eventually(func() bool { r, _ := e.fake.RunnerByName(busy); return r.Busy }, "runner busy at GitHub")

	e.clock.Advance(timeToLive - time.Minute)
	young := e.queued("pool", 2, "")
	e.started(young)
	e.connect(e.register(young))
	rep := e.runOnce()
	require.Empty(t, rep.TimeToLive)

	e.clock.Advance(time.Minute)
	rep = e.runOnce()
	require.Equal(t, []string{busy}, rep.TimeToLive)
	require.Equal(t, state.Deleting, e.runner(busy).State)
	require.Equal(t, state.Idle, e.runner(young).State)
	require.Equal(t, map[string]string{busy: state.ReasonTimeToLive}, e.deletes())
}

// Check 3: an instance with the ownership label and no record, older than
// time_to_start, is deleted; a young one and one with a record are not.
func TestBackendOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	kept := e.queued("pool", 1, "")
	e.started(kept)
	orphan := config.RunnerName(e.cfg.Name, "pool", "orphan01")
	_, err := e.backend.Create(e.ctx, backend.RunnerSpec{Name: orphan, Group: "pool"})
	require.NoError(t, err)

	e.clock.Advance(timeToStart)
	youngOrphan := config.RunnerName(e.cfg.Name, "pool", "orphan02")
	_, err = e.backend.Create(e.ctx, backend.RunnerSpec{Name: youngOrphan, Group: "pool"})
	require.NoError(t, err)

	rep := e.runOnce()
	require.Equal(t, []string{"docker"}, rep.ListsSent)
	require.Equal(t, 1, e.count("list"))
	for _, c := range e.commands() {
		if l := c.Cmd.GetList(); l != nil {
			require.Len(t, l.GetInstanceSpecs(), 1, "the list names the groups' instance specifications")
		}
	}

	answered := map[string]bool{}
	reps := e.answerLists(answered)
	require.Len(t, reps, 1)
	require.Equal(t, []string{orphan}, reps[0].Orphans)
	require.Empty(t, reps[0].Vanished)
	deletes := e.count("delete")
	// The same inventory again (a redelivered result): nothing more.
	for id := range answered {
		delete(answered, id)
	}
	reps = e.answerLists(answered)
	require.Empty(t, reps[0].Orphans)
	require.Equal(t, deletes, e.count("delete"))
	require.Equal(t, state.ReasonOrphan, e.deletes()[orphan])
	require.NotContains(t, e.deletes(), youngOrphan)
	require.NotContains(t, e.deletes(), kept, "a runner with a record is never an orphan")
	// Its absence at GitHub confirmed by a second listing: time_to_start.
	e.runOnce()
	require.Equal(t, state.ReasonTimeToStart, e.deletes()[kept], "a runner with a record is never an orphan")
	for _, c := range e.commands() {
		if d := c.Cmd.GetDelete(); d != nil {
			require.Equal(t, "pool", d.GetGroup())
			require.Equal(t, "acme", d.GetOrganization(), "the provisioner also removes its registration")
			require.NotEmpty(t, d.GetInstanceId())
			require.Empty(t, d.GetInstanceSpec(), "the location comes from the record and the provisioner's configuration")
		}
	}
}

// Check 4: a registration with this manager's prefix, no record and offline
// is removed from GitHub once seen so for time_to_start; one with a record,
// or another manager's, stays.
func TestGitHubOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	withRecord := e.queued("pool", 1, "")
	e.started(withRecord)
	e.register(withRecord)
	orphan := config.RunnerName(e.cfg.Name, "pool", "orphan01")
	e.register(orphan)
	foreign := config.RunnerName("someone-else", "pool", "orphan02")
	e.register(foreign)

	rep := e.runOnce()
	require.Empty(t, rep.GitHubOrphans, "never removed on one sighting")
	_, ok := e.fake.RunnerByName(orphan)
	require.True(t, ok)

	e.clock.Advance(timeToStart)
	rep = e.runOnce()
	require.Equal(t, []string{orphan}, rep.GitHubOrphans)
	_, ok = e.fake.RunnerByName(orphan)
	require.False(t, ok, "the orphan registration is removed")
	_, ok = e.fake.RunnerByName(foreign)
	require.True(t, ok, "another manager's registration stays")
	// withRecord is older than time_to_start and offline: check 1 deletes it
	// through the provisioner, never check 4 directly.
	_, ok = e.fake.RunnerByName(withRecord)
	require.True(t, ok)
	require.Equal(t, state.ReasonTimeToStart, e.deletes()[withRecord])

	rep = e.runOnce()
	require.Empty(t, rep.GitHubOrphans)
	require.Equal(t, int64(1), e.apiCalls("DELETE /orgs/{org}/actions/runners/{runner_id}"))
	require.Equal(t, int64(3), e.apiCalls("GET /orgs/{org}/actions/runners"), "one listing per scope and pass")
}

// Check 5: a started, idle or busy runner whose instance is gone from an
// inventory taken well after it had it gets a delete (instance_vanished);
// its deleted result then releases the capacity.
func TestVanishedInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vanished := e.queued("pool", 1, "")
	e.started(vanished)
	present := e.queued("pool", 2, "")
	e.started(present)
	require.NoError(t, e.backend.Delete(e.ctx, vanished)) // the instance dies
	e.clock.Advance(5 * time.Minute)
	late := e.queued("pool", 3, "")
	e.started(late) // created just now: the inventory may predate it
	require.NoError(t, e.backend.Delete(e.ctx, late))

	e.runOnce()
	reps := e.answerLists(map[string]bool{})
	require.Len(t, reps, 1)
	require.Equal(t, []string{vanished}, reps[0].Vanished)
	require.Equal(t, state.Deleting, e.runner(vanished).State)
	require.Equal(t, state.Started, e.runner(present).State)
	require.Equal(t, state.Started, e.runner(late).State, "younger than the inventory's grace: not judged")
	require.Equal(t, state.ReasonInstanceVanished, e.deletes()[vanished])

	st, err := e.store.GroupStatus(e.ctx, "pool")
	require.NoError(t, err)
	require.Equal(t, int64(3), st.Total, "capacity is held until the deleted result")
	_, err = e.store.Deleted(e.ctx, e.group("pool"), vanished)
	require.NoError(t, err)
	require.True(t, e.gone(vanished))
}

// Check 6: jobs in demand longer than time_to_start are looked up at GitHub:
// completed ones drop their demand, in_progress ones are applied, queued
// ones stay (and are not looked up again before JobRecheck).
func TestStaleJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 0, 1))
	// A runner outside the manager takes the in-progress job at GitHub.
	running, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"gpu"}, Duration: time.Hour})
	require.NoError(t, err)
	e.connect(e.register("outsider", "gpu"))
	e.eventually(func() bool { j, _ := e.fake.Job(running.ID); return j.Status == fakegithub.StatusInProgress }, "job in progress")
	cancelled, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"nobody"}})
	require.NoError(t, err)
	_, err = e.fake.CancelJob(cancelled.ID)
	require.NoError(t, err)
	waiting, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"nobody"}})
	require.NoError(t, err)

	for _, id := range []int64{running.ID, cancelled.ID, waiting.ID} {
		e.queued("pool", id, "app")
	}
	rep := e.runOnce()
	require.Empty(t, rep.StaleJobs, "demand younger than time_to_start is not looked up")
	require.Zero(t, e.apiCalls("GET /repos/{owner}/{repo}/actions/jobs/{job_id}"))

	e.clock.Advance(timeToStart)
	rep = e.runOnce()
	require.ElementsMatch(t, []int64{running.ID, cancelled.ID}, rep.StaleJobs)
	demand, err := e.store.Demand(e.ctx, "pool")
	require.NoError(t, err)
	require.Len(t, demand, 1)
	require.Equal(t, waiting.ID, demand[0].JobID)
	j, _, err := e.store.Job(e.ctx, cancelled.ID)
	require.NoError(t, err)
	require.Equal(t, state.JobCompleted, j.Status)
	j, _, err = e.store.Job(e.ctx, running.ID)
	require.NoError(t, err)
	require.Equal(t, state.JobInProgress, j.Status)
	require.Equal(t, "outsider", j.RunnerName)
	require.Equal(t, int64(3), e.apiCalls("GET /repos/{owner}/{repo}/actions/jobs/{job_id}"))

	e.clock.Advance(time.Minute)
	rep = e.runOnce()
	require.Empty(t, rep.StaleJobs)
	require.Equal(t, int64(3), e.apiCalls("GET /repos/{owner}/{repo}/actions/jobs/{job_id}"), "a queued job is not looked up again before JobRecheck")

	e.clock.Advance(health.DefaultJobRecheck)
	e.runOnce()
	require.Equal(t, int64(4), e.apiCalls("GET /repos/{owner}/{repo}/actions/jobs/{job_id}"))

	// Demand GitHub cannot tell about is dropped once older than GitHub keeps a job queued.
	e.queued("pool", 999_999, "gone")
	e.clock.Advance(health.DefaultMaxQueueAge)
	rep = e.runOnce()
	require.Contains(t, rep.StaleJobs, int64(999_999))
}

// Check 6, busy runners: a dropped completed webhook is healed: the busy
// runner GitHub no longer shows busy, whose job is completed at GitHub, is
// deleted and its job completes.
func TestDroppedCompletedHealed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	job, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"linux", "pool"}, Duration: time.Millisecond})
	require.NoError(t, err)
	name := e.queued("pool", job.ID, "app")
	e.started(name)
	e.run(e.register(name, "linux", "pool"))
	// The runner runs the job; the in_progress event arrives, the completed one is lost.
	e.eventually(func() bool { j, _ := e.fake.Job(job.ID); return j.Status == fakegithub.StatusCompleted }, "job completed at GitHub")
	_, err = e.store.InProgress(e.ctx, e.group("pool"), state.JobUpdate{JobID: job.ID, RunnerName: name})
	require.NoError(t, err)
	require.Equal(t, state.Busy, e.runner(name).State)

	rep := e.runOnce()
	require.Empty(t, rep.BusyCompleted, "a runner freshly busy is left to its completed event")

	e.clock.Advance(health.DefaultBusyGrace)
	rep = e.runOnce()
	require.Equal(t, []string{name}, rep.BusyCompleted)
	require.Equal(t, state.Deleting, e.runner(name).State)
	require.Equal(t, state.ReasonJobCompleted, e.deletes()[name])
	j, _, err := e.store.Job(e.ctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, state.JobCompleted, j.Status)

	// The late completed event changes nothing more.
	out, err := e.store.Completed(e.ctx, e.group("pool"), state.JobUpdate{JobID: job.ID, RunnerName: name})
	require.NoError(t, err)
	require.False(t, out.Applied)
	require.Equal(t, 1, e.count("delete"))
}

// Check 6, busy runners: a runner GitHub still shows busy stays busy.
func TestBusyRunnerStillRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	job, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"linux", "pool"}, Duration: time.Hour})
	require.NoError(t, err)
	name := e.queued("pool", job.ID, "app")
	e.started(name)
	e.connect(e.register(name, "linux", "pool"))
	e.eventually(func() bool { r, _ := e.fake.RunnerByName(name); return r.Busy }, "runner busy at GitHub")
	_, err = e.store.InProgress(e.ctx, e.group("pool"), state.JobUpdate{JobID: job.ID, RunnerName: name})
	require.NoError(t, err)
	e.clock.Advance(time.Hour)
	rep := e.runOnce()
	require.Empty(t, rep.BusyCompleted)
	require.Equal(t, state.Busy, e.runner(name).State)
	require.Zero(t, e.count("delete"))
}

// Check 7: every group is topped up to min_runners and its demand.
func TestTopUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 2, 5))
	rep := e.runOnce()
	require.Len(t, rep.Reserved, 2)
	require.Equal(t, 2, e.count("create"))
	rep = e.runOnce()
	require.Empty(t, rep.Reserved)
	require.Equal(t, 2, e.count("create"))
}

// Check 8: runner groups are created or updated at GitHub to match the
// configuration, and their ids stored for the create commands.
func TestRunnerGroups(t *testing.T) {
	t.Parallel()
	noPublic := false
	selected := group("selected", 0, 2)
	selected.RepositoryAccess = config.RepositoryAccess{SelectedRepositories: []string{"app", "gone", "web"}, AllowsPublicRepositories: &noPublic}
	selected.WorkflowAccess = []string{"acme/app/.github/workflows/ci.yml@refs/heads/main"}
	existing := group("existing", 0, 2)
	repoLevel := group("repolevel", 0, 2)
	repoLevel.Repository = "app"
	e := newEnv(t, selected, existing, repoLevel)
	ctx := context.Background()
	pre, err := e.gh.CreateRunnerGroup(ctx, "acme", github.RunnerGroupSettings{Name: "existing", AllowsPublicRepositories: true})
	require.NoError(t, err)
	appID, webID := e.fake.Repository("acme", "app"), e.fake.Repository("acme", "web")

	rep := e.runOnce()
	require.Equal(t, []string{"selected"}, rep.GroupsCreated)
	require.Empty(t, rep.GroupsUpdated, "a group that matches is left alone")
	got, err := e.gh.GetRunnerGroupByName(ctx, "acme", "selected")
	require.NoError(t, err)
	require.Equal(t, github.VisibilitySelected, got.Visibility)
	require.False(t, got.AllowsPublicRepositories)
	require.True(t, got.RestrictedToWorkflows)
	require.Equal(t, selected.WorkflowAccess, got.SelectedWorkflows)
	id, err := e.store.GitHubGroupID(ctx, "selected")
	require.NoError(t, err)
	require.Equal(t, got.ID, id)
	id, err = e.store.GitHubGroupID(ctx, "existing")
	require.NoError(t, err)
	require.Equal(t, pre.ID, id)
	id, err = e.store.GitHubGroupID(ctx, "repolevel")
	require.NoError(t, err)
	require.Zero(t, id, "repository-level groups have no runner group")
	// The runner group admits app and web (gone did not resolve) and no other repository.
	require.ElementsMatch(t, []int64{appID, webID}, e.groupRepos(got.ID))

	// Someone changes it by hand at GitHub: the next pass puts it back.
	_, err = e.gh.UpdateRunnerGroup(ctx, "acme", got.ID, github.RunnerGroupSettings{Name: "selected", Visibility: github.VisibilityAll, AllowsPublicRepositories: true})
	require.NoError(t, err)
	rep = e.runOnce()
	require.Equal(t, []string{"selected"}, rep.GroupsUpdated)
	got, err = e.gh.GetRunnerGroupByName(ctx, "acme", "selected")
	require.NoError(t, err)
	require.Equal(t, github.VisibilitySelected, got.Visibility)
	require.False(t, got.AllowsPublicRepositories)
	require.True(t, got.RestrictedToWorkflows)

	// A pass with nothing to change writes nothing at GitHub.
	writes := func() int64 {
		return e.apiCalls("POST /orgs/{org}/actions/runner-groups") + e.apiCalls("PATCH /orgs/{org}/actions/runner-groups/{runner_group_id}") +
			e.apiCalls("PUT /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories")
	}
	before := writes()
	repoLookups := e.repoLookups.Load()
	rep = e.runOnce()
	require.Empty(t, rep.GroupsCreated)
	require.Empty(t, rep.GroupsUpdated)
	require.Equal(t, before, writes())
	require.Equal(t, repoLookups, e.repoLookups.Load(), "repository ids are cached")

	// A group created with the id in the create commands.
	_, err = e.store.TopUp(ctx, state.Group{Name: "selected", Backend: "docker", MaxRunners: 2, MinRunners: 1})
	require.NoError(t, err)
	for _, c := range e.commands() {
		if cr := c.Cmd.GetCreate(); cr != nil {
			require.Equal(t, got.ID, cr.GetSpec().GetRunnerGroupId())
		}
	}
}

func (e *env) groupRepos(groupID int64) []int64 {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/orgs/acme/actions/runner-groups/"+strconv.FormatInt(groupID, 10)+"/repositories", nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	var body struct {
		Repositories []struct {
			ID int64 `json:"id"`
		} `json:"repositories"`
	}
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&body))
	ids := []int64{}
	for _, r := range body.Repositories {
		ids = append(ids, r.ID)
	}
	return ids
}

// The lease makes one checker of two act per interval; when the holder
// stops, the other takes over within one lease TTL.
func TestLeaseOneCheckerAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 1, 5))
	// Long enough that a renewal is never late on a loaded machine.
	e.cfg.Scheduler.LeaseTTL = 2 * time.Second
	e.cfg.HealthCheckInterval = time.Hour
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	ctxs := make([]context.Context, 2)
	cancels := make([]context.CancelFunc, 2)
	var wg sync.WaitGroup
	runErrs := make([]error, 2)
	for i := range 2 {
		c := e.newChecker("replica-"+strconv.Itoa(i), regs[i])
		ctxs[i], cancels[i] = context.WithCancel(e.ctx)
		wg.Go(func() { runErrs[i] = c.Run(ctxs[i]) })
	}
	t.Cleanup(func() {
		cancels[0]()
		cancels[1]()
		wg.Wait()
		require.NoError(t, errors.Join(runErrs...))
	})
	passes := func(i int) uint64 { return passCount(t, regs[i]) }
	e.eventually(func() bool { return passes(0)+passes(1) == 1 }, "one pass")
	holder := 0
	if passes(1) == 1 {
		holder = 1
	}
	// Several renewals of the lease later, still one pass: the other
	// replica never acted while the lease was held.
	time.Sleep(2 * e.cfg.Scheduler.LeaseTTL)
	require.Equal(t, uint64(1), passes(0)+passes(1), "passes: %d and %d", passes(0), passes(1))
	require.Equal(t, 1, e.count("create"), "min_runners reserved once")

	cancels[holder]()
	e.eventually(func() bool { return passes(1-holder) == 1 }, "the other replica takes over")
	require.Equal(t, 1, e.count("create"), "the second pass finds nothing to reserve")
}

// A pass run twice (and an inventory handled twice) emits no command twice.
func TestIdempotentPass(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 1, 6))
	stale := e.queued("pool", 1, "") // never online
	vanished := e.queued("pool", 2, "")
	e.started(vanished)
	require.NoError(t, e.backend.Delete(e.ctx, vanished))
	_, err := e.backend.Create(e.ctx, backend.RunnerSpec{Name: config.RunnerName(e.cfg.Name, "pool", "orphan01"), Group: "pool"})
	require.NoError(t, err)
	e.clock.Advance(timeToStart)

	e.runOnce()
	answered := map[string]bool{}
	e.answerLists(answered)
	e.runOnce() // a second listing confirms the stale runner's absence
	first := e.commands()
	require.Equal(t, state.ReasonTimeToStart, e.deletes()[stale])

	e.runOnce()
	for id := range answered {
		delete(answered, id) // a redelivered inventory
	}
	e.answerLists(answered)
	e.runOnce()
	require.Len(t, e.commands(), len(first), "no command emitted twice")
}

// Without a GitHub client the checks that need none still run.
func TestWithoutGitHub(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 0, 3))
	old := e.queued("pool", 1, "")
	e.clock.Advance(timeToLive)
	c := health.New(health.Options{Config: e.cfg, Store: e.store, Logger: quiet})
	rep, err := c.RunOnce(e.ctx)
	require.NoError(t, err)
	require.Equal(t, []string{old}, rep.TimeToLive)
	require.Empty(t, rep.TimeToStart, "nothing is deleted for time_to_start without GitHub's word")
	require.Equal(t, []string{"docker"}, rep.ListsSent)
}

func passCount(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "runner_manager_health_pass_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// Check 1, idle runners: one whose registration GitHub no longer lists (used
// up, its events lost) is deleted; one still listed stays idle.
func TestIdleRegistrationGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 0, 5))
	gone := e.queued("pool", 1, "")
	e.started(gone)
	kept := e.queued("pool", 2, "")
	e.started(kept)
	jit := e.register(gone)
	e.connect(jit)
	e.connect(e.register(kept))
	rep := e.runOnce()
	require.ElementsMatch(t, []string{gone, kept}, rep.MarkedIdle)

	require.NoError(t, e.gh.DeleteRunner(e.ctx, github.OrgScope("acme"), jit.RunnerID))
	rep = e.runOnce()
	require.Empty(t, rep.RegistrationGone, "not before BusyGrace in idle")
	e.clock.Advance(health.DefaultBusyGrace)
	rep = e.runOnce()
	require.Equal(t, []string{gone}, rep.RegistrationGone)
	require.Equal(t, state.ReasonRegistrationGone, e.deletes()[gone])
	require.Equal(t, state.Idle, e.runner(kept).State)
}

// A runner deleting with no news for long gets its delete again, once per period.
func TestStuckDeleting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 0, 5))
	name := e.queued("pool", 1, "")
	e.started(name)
	_, err := e.store.RequestDelete(e.ctx, name, []state.State{state.Started}, state.ReasonAdmin)
	require.NoError(t, err)
	require.Equal(t, 1, e.count("delete"))

	stuckAfter := max(timeToStart, 2*e.cfg.Streams.ReclaimMinIdle)
	e.clock.Advance(stuckAfter - time.Second)
	rep := e.runOnce()
	require.Empty(t, rep.StuckDeleting)
	e.clock.Advance(2 * time.Second)
	rep = e.runOnce()
	require.Equal(t, []string{name}, rep.StuckDeleting)
	require.Equal(t, 2, e.count("delete"))
	rep = e.runOnce()
	require.Empty(t, rep.StuckDeleting, "once per period")
	require.Equal(t, 2, e.count("delete"))
	require.Equal(t, state.Deleting, e.runner(name).State)
}

// GitHub failing: what needs its word is skipped (nothing is deleted for
// time_to_start), the rest runs, and the pass reports the error.
func TestGitHubDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 1, 5))
	pending := e.queued("pool", 1, "app")
	e.clock.Advance(timeToStart)
	require.NoError(t, e.fake.SetFaults(fakegithub.Faults{API5xx: 1}))
	rep, err := e.checker.RunOnce(e.ctx)
	require.Error(t, err)
	require.ErrorIs(t, err, github.ErrRetryable)
	require.Empty(t, rep.TimeToStart)
	require.Empty(t, rep.StaleJobs)
	require.Equal(t, state.Pending, e.runner(pending).State)
	require.Equal(t, []string{"docker"}, rep.ListsSent, "the inventory needs no GitHub")

	require.NoError(t, e.fake.SetFaults(fakegithub.Faults{}))
	rep = e.runOnce()
	require.Empty(t, rep.TimeToStart, "absent from one listing only")
	rep = e.runOnce()
	require.Contains(t, rep.TimeToStart, pending)
}

// Dispatch, wired as the scheduler wires it, records the job's repository
// with its event and hands inventories to the health checks.
func TestDispatchFeedsTheChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := dispatch.New(e.cfg, e.store, quiet, nil)
	h.OnInventory(e.checker.HandleInventory)
	events, results := h.Event, h.Result

	ev := &rmv1.WorkflowJobEvent{Action: "queued", JobId: 42, Owner: "acme", Repository: "app", Labels: []string{"linux", "pool"}}
	data, err := proto.Marshal(ev)
	require.NoError(t, err)
	require.NoError(t, events(e.ctx, stream.Message{Stream: e.keys.Events(), ID: "1-0", Type: stream.TypeWorkflowJob, Data: data}))
	demand, err := e.store.Demand(e.ctx, "pool")
	require.NoError(t, err)
	require.Len(t, demand, 1, "dispatch handled the event")
	owner, repo, err := e.store.JobRepository(e.ctx, 42)
	require.NoError(t, err)
	require.Equal(t, "acme/app", owner+"/"+repo)

	orphan := config.RunnerName(e.cfg.Name, "pool", "orphan01")
	_, err = e.backend.Create(e.ctx, backend.RunnerSpec{Name: orphan, Group: "pool"})
	require.NoError(t, err)
	e.clock.Advance(timeToStart)
	e.runOnce()
	var listID string
	for _, c := range e.commands() {
		if c.Cmd.GetList() != nil {
			listID = c.Cmd.GetCommandId()
		}
	}
	require.NotEmpty(t, listID)
	list, err := e.backend.List(e.ctx)
	require.NoError(t, err)
	inv := &rmv1.Inventory{TakenAt: timestamppb.New(e.clock.Now())}
	for _, i := range list {
		inv.Instances = append(inv.Instances, &rmv1.Instance{Name: i.Name, InstanceId: i.ID, Group: i.Group, CreatedAt: timestamppb.New(i.CreatedAt)})
	}
	data, err = proto.Marshal(&rmv1.ProvisionResult{CommandId: listID, BackendType: "docker", Outcome: &rmv1.ProvisionResult_Inventory{Inventory: inv}})
	require.NoError(t, err)
	require.NoError(t, results(e.ctx, stream.Message{Stream: e.keys.Results(), ID: "2-0", Type: stream.TypeResult, Data: data}))
	require.Equal(t, state.ReasonOrphan, e.deletes()[orphan])
}

// listEdit is the GitHub client whose runner lists pass through edit: a
// listing that misses an entry (GitHub pages by offset, and churn shifts
// entries between pages), or shows a runner busy and offline.
type listEdit struct {
	*github.Client
	mu   sync.Mutex
	edit func([]github.Runner) []github.Runner
}

func (l *listEdit) ListRunners(ctx context.Context, scope github.Scope) ([]github.Runner, error) {
	rs, err := l.Client.ListRunners(ctx, scope)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.edit != nil {
		rs = l.edit(rs)
	}
	return rs, err
}

func (l *listEdit) set(edit func([]github.Runner) []github.Runner) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.edit = edit
}

func without(name string) func([]github.Runner) []github.Runner {
	return func(rs []github.Runner) []github.Runner {
		return slices.DeleteFunc(rs, func(r github.Runner) bool { return r.Name == name })
	}
}

func (e *env) editedChecker() *listEdit {
	l := &listEdit{Client: e.gh}
	e.checker = health.New(health.Options{
		Config: e.cfg, Store: e.store, GitHub: l, Registerer: prometheus.NewRegistry(), Owner: "replica-edit",
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return l
}

// Item 7 of issue 16: a runner absent from one listing is not deleted; a
// second listing in a row confirms its absence. One listing that shows it
// again starts the count over.
func TestAbsenceIsConfirmedByASecondListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 0, 5))
	l := e.editedChecker()
	idle := e.queued("pool", 1, "")
	e.started(idle)
	e.connect(e.register(idle))
	rep := e.runOnce()
	require.Equal(t, []string{idle}, rep.MarkedIdle)
	e.clock.Advance(timeToStart)
	never := e.queued("pool", 2, "") // pending, never registered
	e.clock.Advance(timeToStart)

	// The idle runner missed by one listing (shifted between pages).
	l.set(without(idle))
	rep = e.runOnce()
	require.Empty(t, rep.RegistrationGone, "deleted on one listing's word")
	require.Empty(t, rep.TimeToStart, "deleted on one listing's word")
	require.Equal(t, state.Idle, e.runner(idle).State)
	require.Equal(t, state.Pending, e.runner(never).State)

	// Listed again: its count starts over. The never registered runner is
	// absent a second time: confirmed.
	l.set(nil)
	rep = e.runOnce()
	require.Equal(t, []string{never}, rep.TimeToStart)
	require.Equal(t, state.ReasonTimeToStart, e.deletes()[never])

	l.set(without(idle))
	rep = e.runOnce()
	require.Empty(t, rep.RegistrationGone, "one absence after a sighting is not confirmed")
	rep = e.runOnce()
	require.Equal(t, []string{idle}, rep.RegistrationGone, "two absences in a row are")
	require.Equal(t, state.ReasonRegistrationGone, e.deletes()[idle])
}

// A runner GitHub reports busy is never deleted for time_to_start, whatever
// its online status (GitHub shows a busy runner offline while it has lost
// its connection), nor taken for idle.
func TestBusyOfflineRunnerIsKeptAtTimeToStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 0, 5))
	l := e.editedChecker()
	name := e.queued("pool", 1, "")
	e.started(name)
	e.register(name)
	l.set(func(rs []github.Runner) []github.Runner {
		for i := range rs {
			if rs[i].Name == name {
				rs[i].Busy, rs[i].Status = true, github.RunnerOffline
			}
		}
		return rs
	})
	e.clock.Advance(timeToStart + time.Minute)
	for range 3 {
		rep := e.runOnce()
		require.Empty(t, rep.TimeToStart)
		require.Empty(t, rep.MarkedIdle)
	}
	require.Equal(t, state.Started, e.runner(name).State)
	require.NotContains(t, e.deletes(), name)
}

// The inventory request names the locations runner records still reference
// that no configured group lists (a Docker host changed, here), so that
// their instances stay in sight; those of the configuration are not
// repeated.
func TestInventoryCoversRecordedLocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	moved, here := e.queued("pool", 1, ""), e.queued("pool", 2, "")
	for name, host := range map[string]string{moved: "unix:///old.sock", here: ""} {
		r := e.runner(name)
		_, err := e.store.Created(e.ctx, state.Runner{Name: name, Group: r.Group, Backend: r.Backend, InstanceID: "c-" + name,
			Organization: "acme", Location: map[string]string{"host": host}})
		require.NoError(t, err)
	}
	rep := e.runOnce()
	require.Equal(t, []string{"docker"}, rep.ListsSent)
	var lists int
	for _, c := range e.commands() {
		if l := c.Cmd.GetList(); l != nil {
			lists++
			require.Len(t, l.GetLocations(), 1)
			require.Equal(t, map[string]string{"host": "unix:///old.sock"}, l.GetLocations()[0].GetValues())
		}
	}
	require.Equal(t, 1, lists)
}

// A pass with GitHub's budget spent (the window resets in 30 s, beyond the
// pass's interval of 3 s, within the client's own call deadline) completes
// within its interval: the steps that need GitHub are skipped, said once in
// the log and counted, and min_runners is still topped up.
func TestZeroBudgetPassCompletesWithinItsInterval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, group("pool", 2, 5))
	e.cfg.HealthCheckInterval = 3 * time.Second
	e.cfg.Scheduler.LeaseTTL = 2 * time.Second
	e.queued("pool", 1, "app")
	e.clock.Advance(timeToStart) // the job is stale: check 6 wants GitHub
	require.NoError(t, e.fake.SetFaults(fakegithub.Faults{APIBudgetSeconds: 30, APIBudgetRemaining: 0}))

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.checker.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	start := time.Now()
	e.eventually(func() bool { return passCount(t, e.reg) >= 1 }, "a pass done")
	require.Less(t, time.Since(start), 2*e.cfg.HealthCheckInterval, "the pass ended within its interval")
	require.Less(t, passMax(t, e.reg), e.cfg.HealthCheckInterval.Seconds(), "no pass took longer than its interval")
	require.Equal(t, 3, e.count("create"), "min_runners (2) and the job's runner reserved")
	require.Greater(t, skipped(t, e.reg), 0.0, "the skipped steps are counted")
	require.Equal(t, 1, strings.Count(e.logs.String(), "GitHub rate limited: steps skipped"),
		"one line for the pass, not one per call:\n%s", e.logs.String())
}

// passMax is the upper bound of the histogram bucket holding the longest
// health pass (seconds).
func passMax(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "runner_manager_health_pass_duration_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		for _, b := range h.GetBucket() {
			if b.GetCumulativeCount() == h.GetSampleCount() {
				return b.GetUpperBound()
			}
		}
	}
	return math.Inf(1)
}

// skipped sums runner_manager_health_steps_skipped_total.
func skipped(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "runner_manager_health_steps_skipped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// Item 4 of issue 16: a repository lookup that fails for a transient reason
// (a 502) never shrinks a runner group's access; a repository that is gone
// (404) is still left out.
func TestRunnerGroupRepositoriesKeptOnTransientLookupFailure(t *testing.T) {
	t.Parallel()
	selected := group("selected", 0, 2)
	selected.RepositoryAccess = config.RepositoryAccess{SelectedRepositories: []string{"app", "gone", "web"}}
	e := newEnv(t, selected)
	ctx := context.Background()
	appID, webID := e.fake.Repository("acme", "app"), e.fake.Repository("acme", "web")
	e.runOnce()
	got, err := e.gh.GetRunnerGroupByName(ctx, "acme", "selected")
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{appID, webID}, e.groupRepos(got.ID))
	puts := func() int64 {
		return e.apiCalls("PUT /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories")
	}
	before := puts()

	// Hours later (cached ids expired, refresh due), GitHub answers 502 to
	// repository lookups: the group keeps its repositories.
	e.clock.Advance(health.DefaultRepositoriesRefresh + time.Minute)
	e.repoStatus.Store(http.StatusBadGateway)
	_, err = e.checker.RunOnce(e.ctx)
	require.ErrorIs(t, err, github.ErrRetryable, "the failed lookup is reported")
	require.Equal(t, before, puts(), "no shorter list was set")
	require.ElementsMatch(t, []int64{appID, webID}, e.groupRepos(got.ID))

	// GitHub is back: the same repositories resolve, nothing to set.
	e.repoStatus.Store(0)
	e.runOnce()
	require.Equal(t, before, puts())
	require.ElementsMatch(t, []int64{appID, webID}, e.groupRepos(got.ID))
}
