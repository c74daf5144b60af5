package fakegithub_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
)

func TestJobRunsOnFakeRunnerAndIsReportedBySignedWebhooks(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	a := e.register("acme", "", "rm-small-1", fakegithub.DefaultRunnerGroupID, "self-hosted", "linux", "small")
	require.Equal(t, "offline", a.Runner.Status)

	var list struct {
		TotalCount int              `json:"total_count"`
		Runners    []map[string]any `json:"runners"`
	}
	e.call("GET", "/orgs/acme/actions/runners", nil, &list)
	require.Equal(t, 1, list.TotalCount)
	require.Equal(t, "offline", list.Runners[0]["status"])

	errc := e.startOnline(a)
	e.call("GET", "/orgs/acme/actions/runners", nil, &list)
	require.Equal(t, "online", list.Runners[0]["status"])
	require.Equal(t, false, list.Runners[0]["busy"])

	j, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"Self-Hosted", "linux"}, Duration: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, recvErr(t, errc), "the runner exits 0 after its job")

	done := e.waitJob(j.ID, fakegithub.StatusCompleted)
	require.Equal(t, fakegithub.ConclusionSuccess, done.Conclusion)
	require.Equal(t, a.Runner.Name, done.RunnerName)

	evs := e.waitEvents(j.ID, 3)
	require.Equal(t, []string{"queued", "in_progress", "completed"}, actions(evs))
	guids := map[string]bool{}
	for _, ev := range evs {
		require.Equal(t, "workflow_job", ev.Event)
		guids[ev.GUID] = true
		require.Greater(t, len(ev.Body), 6000, "realistic payload size")
	}
	require.Len(t, guids, 3, "a fresh GUID per delivery")
	require.Nil(t, evs[0].Job["runner_name"])
	for _, ev := range evs[1:] {
		require.Equal(t, a.Runner.Name, ev.Job["runner_name"])
		require.EqualValues(t, a.Runner.ID, ev.Job["runner_id"])
		require.EqualValues(t, fakegithub.DefaultRunnerGroupID, ev.Job["runner_group_id"])
		require.Equal(t, "Default", ev.Job["runner_group_name"])
	}
	require.Equal(t, "success", evs[2].Job["conclusion"])
	require.Greater(t, len(evs[2].Body), 7000, "realistic payload size")

	// ephemeral: gone from the list after its job
	e.call("GET", "/orgs/acme/actions/runners", nil, &list)
	require.Zero(t, list.TotalCount)
	resp := e.call("GET", fmt.Sprintf("/orgs/acme/actions/runners/%d", a.Runner.ID), nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	var apiJob map[string]any
	e.call("GET", fmt.Sprintf("/repos/acme/app/actions/jobs/%d", j.ID), nil, &apiJob)
	require.Equal(t, "completed", apiJob["status"])
	require.Equal(t, a.Runner.Name, apiJob["runner_name"])

	st := e.fake.Stats()
	require.Equal(t, 1, st.Jobs[fakegithub.StatusCompleted])
	require.EqualValues(t, 1, st.RunnersTotal)
	require.Zero(t, st.RunnersRegistered)
	require.EqualValues(t, 1, st.APICalls["POST /orgs/{org}/actions/runners/generate-jitconfig"])
	require.NotContains(t, e.logs.String(), a.EncodedJITConfig)
}

func TestDuplicateRunnerNameIsAConflict(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.register("acme", "", "dup", 1, "self-hosted")
	var body map[string]any
	resp := e.call("POST", "/orgs/acme/actions/runners/generate-jitconfig", map[string]any{"name": "dup", "runner_group_id": 1, "labels": []string{"x"}}, &body)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Contains(t, body["message"], "Already exists")
	// the same name is free in another scope (a repository)
	e.register("acme", "app", "dup", 1, "self-hosted")
	// unknown group
	resp = e.call("POST", "/orgs/acme/actions/runners/generate-jitconfig", map[string]any{"name": "other", "runner_group_id": 999, "labels": []string{"x"}}, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp = e.call("POST", "/orgs/acme/actions/runners/generate-jitconfig", map[string]any{"name": "other", "labels": []string{"x"}}, nil)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
}

func TestLabelAndGroupMatching(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	appID := e.fake.Repository("acme", "app")
	var sel map[string]any
	resp := e.call("POST", "/orgs/acme/actions/runner-groups", map[string]any{"name": "only-app", "visibility": "selected", "selected_repository_ids": []int64{appID}}, &sel)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	selID := int64(sel["id"].(float64))

	// Each runner is started alone with a job that only it may take, queued
	// behind a job that no runner may take; dispatch is synchronous, so when the
	// matching job is done the others were considered too.
	tests := []struct {
		name        string
		repo        string // repository-level runner when set
		group       int64
		labels      []string
		jobRepo     string
		jobLabels   []string
		wrongRepo   string
		wrongLabels []string
	}{
		{name: "labels subset, case-insensitive", group: 1, labels: []string{"self-hosted", "Linux", "large"}, jobRepo: "app", jobLabels: []string{"LINUX", "large"}, wrongRepo: "app", wrongLabels: []string{"linux", "gpu"}},
		{name: "selected group only for its repository", group: selID, labels: []string{"self-hosted", "sel"}, jobRepo: "app", jobLabels: []string{"sel"}, wrongRepo: "other", wrongLabels: []string{"sel"}},
		{name: "repository runner only for its repository", repo: "app", group: 1, labels: []string{"self-hosted", "repo"}, jobRepo: "app", jobLabels: []string{"repo"}, wrongRepo: "lib", wrongLabels: []string{"repo"}},
	}
	for i, tt := range tests {
		wrong, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: tt.wrongRepo, Labels: tt.wrongLabels})
		require.NoError(t, err)
		a := e.register("acme", tt.repo, fmt.Sprintf("match-%d", i), tt.group, tt.labels...)
		errc := e.startOnline(a)
		require.Equal(t, fakegithub.StatusQueued, e.fake.Jobs("")[len(e.fake.Jobs(""))-1].Status, tt.name)
		right, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: tt.jobRepo, Labels: tt.jobLabels})
		require.NoError(t, err)
		require.NoError(t, recvErr(t, errc), tt.name)
		done := e.waitJob(right.ID, fakegithub.StatusCompleted)
		require.Equal(t, a.Runner.Name, done.RunnerName, tt.name)
		require.Equal(t, tt.group, done.RunnerGroupID, tt.name)
		w, _ := e.fake.Job(wrong.ID)
		require.Equal(t, fakegithub.StatusQueued, w.Status, tt.name)
		_, err = e.fake.CancelJob(wrong.ID)
		require.NoError(t, err)
	}
	var group map[string]any
	e.call("GET", fmt.Sprintf("/orgs/acme/actions/runner-groups/%d", selID), nil, &group)
	require.Equal(t, "only-app", group["name"])

	// opening the group to all repositories lets a waiting job run
	job, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "other", Labels: []string{"sel2"}})
	require.NoError(t, err)
	a := e.register("acme", "", "late", selID, "sel2")
	errc := e.startOnline(a)
	require.Equal(t, fakegithub.StatusQueued, mustJob(t, e, job.ID).Status)
	resp = e.call("PATCH", fmt.Sprintf("/orgs/acme/actions/runner-groups/%d", selID), map[string]any{"name": "only-app", "visibility": "all"}, &group)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, recvErr(t, errc))
	require.Equal(t, "late", e.waitJob(job.ID, fakegithub.StatusCompleted).RunnerName)
}

func mustJob(t *testing.T, e *env, id int64) fakegithub.Job {
	j, ok := e.fake.Job(id)
	require.True(t, ok)
	return j
}

func TestRunnerGroupsAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	var g map[string]any
	require.Equal(t, http.StatusCreated, e.call("POST", "/orgs/acme/actions/runner-groups", map[string]any{"name": "g1"}, &g).StatusCode)
	id := int64(g["id"].(float64))
	require.Equal(t, "all", g["visibility"])
	require.Equal(t, http.StatusUnprocessableEntity, e.call("POST", "/orgs/acme/actions/runner-groups", map[string]any{"name": "G1"}, nil).StatusCode, "names are unique")

	r1, r2 := e.fake.Repository("acme", "r1"), e.fake.Repository("acme", "r2")
	path := fmt.Sprintf("/orgs/acme/actions/runner-groups/%d", id)
	require.Equal(t, http.StatusNoContent, e.call("PUT", path+"/repositories", map[string]any{"selected_repository_ids": []int64{r2, r1}}, nil).StatusCode)
	var repos struct {
		TotalCount   int              `json:"total_count"`
		Repositories []map[string]any `json:"repositories"`
	}
	e.call("GET", path+"/repositories", nil, &repos)
	require.Equal(t, 2, repos.TotalCount)
	require.Equal(t, "acme/r1", repos.Repositories[0]["full_name"])

	a := e.register("acme", "", "in-g1", id, "x")
	var runners struct {
		TotalCount int `json:"total_count"`
	}
	e.call("GET", path+"/runners", nil, &runners)
	require.Equal(t, 1, runners.TotalCount)

	var groups struct {
		TotalCount   int              `json:"total_count"`
		RunnerGroups []map[string]any `json:"runner_groups"`
	}
	e.call("GET", "/orgs/acme/actions/runner-groups", nil, &groups)
	require.Equal(t, 2, groups.TotalCount)
	require.Equal(t, "Default", groups.RunnerGroups[0]["name"])
	require.Equal(t, true, groups.RunnerGroups[0]["default"])

	require.Equal(t, http.StatusNoContent, e.call("DELETE", path, nil, nil).StatusCode)
	require.Equal(t, http.StatusNotFound, e.call("GET", path, nil, nil).StatusCode)
	var rn map[string]any
	e.call("GET", fmt.Sprintf("/orgs/acme/actions/runners/%d", a.Runner.ID), nil, &rn)
	require.EqualValues(t, fakegithub.DefaultRunnerGroupID, rn["runner_group_id"], "runners of a deleted group move to Default")
	require.Equal(t, http.StatusUnprocessableEntity, e.call("DELETE", "/orgs/acme/actions/runner-groups/1", nil, nil).StatusCode)
}

func TestRunnerListPagination(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	for i := range 5 {
		e.register("acme", "", fmt.Sprintf("r-%d", i), 1, "x")
	}
	var names []string
	next := "/orgs/acme/actions/runners?per_page=2"
	pages := 0
	for next != "" {
		var list struct {
			TotalCount int              `json:"total_count"`
			Runners    []map[string]any `json:"runners"`
		}
		resp := e.call("GET", next, nil, &list)
		require.Equal(t, 5, list.TotalCount)
		for _, r := range list.Runners {
			names = append(names, r["name"].(string))
		}
		next = linkRel(resp.Header.Get("Link"), "next")
		if pages > 0 {
			require.NotEmpty(t, linkRel(resp.Header.Get("Link"), "first"))
			require.NotEmpty(t, linkRel(resp.Header.Get("Link"), "prev"))
		}
		if next != "" {
			require.Contains(t, linkRel(resp.Header.Get("Link"), "last"), "page=3")
		}
		pages++
	}
	require.Equal(t, 3, pages)
	require.Equal(t, []string{"r-0", "r-1", "r-2", "r-3", "r-4"}, names)

	var filtered struct {
		TotalCount int              `json:"total_count"`
		Runners    []map[string]any `json:"runners"`
	}
	e.call("GET", "/orgs/acme/actions/runners?name=r-3", nil, &filtered)
	require.Equal(t, 1, filtered.TotalCount)
	require.Equal(t, "r-3", filtered.Runners[0]["name"])

	// the GHES prefix serves the same API, and its links keep the prefix
	resp := e.call("GET", "/api/v3/orgs/acme/actions/runners?per_page=4", nil, &filtered)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, linkRel(resp.Header.Get("Link"), "next"), "/api/v3/orgs/acme/actions/runners")
}

// linkRel extracts the URL of a relation from a Link header.
func linkRel(h, rel string) string {
	for _, part := range strings.Split(h, ",") {
		u, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if ok && strings.Contains(params, `rel="`+rel+`"`) {
			return strings.Trim(strings.TrimSpace(u), "<>")
		}
	}
	return ""
}

func TestCancelQueuedJobSendsCompletedWithoutRunner(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	j, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"nobody"}})
	require.NoError(t, err)
	resp := e.call("POST", fmt.Sprintf("%s/_fake/jobs/%d/cancel", e.srv.URL, j.ID), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	evs := e.waitEvents(j.ID, 2)
	require.Equal(t, []string{"queued", "completed"}, actions(evs))
	require.Equal(t, "cancelled", evs[1].Job["conclusion"])
	require.Nil(t, evs[1].Job["runner_id"])
	require.Nil(t, evs[1].Job["runner_name"])
}

func TestCancelRunningJobStopsRunner(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	a := e.register("acme", "", "long", 1, "x")
	errc := e.startOnline(a)
	j, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"x"}, Duration: time.Hour})
	require.NoError(t, err)
	e.waitJob(j.ID, fakegithub.StatusInProgress)
	// a busy runner cannot be deleted
	require.Equal(t, http.StatusUnprocessableEntity, e.call("DELETE", fmt.Sprintf("/orgs/acme/actions/runners/%d", a.Runner.ID), nil, nil).StatusCode)
	_, err = e.fake.CancelJob(j.ID)
	require.NoError(t, err)
	require.NoError(t, recvErr(t, errc))
	evs := e.waitEvents(j.ID, 3)
	require.Equal(t, "cancelled", evs[2].Job["conclusion"])
	require.Equal(t, "long", evs[2].Job["runner_name"])
	require.Empty(t, e.fake.Runners())
}

func TestDisconnectedRunnerGoesOfflineAndItsJobFails(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	a := e.register("acme", "", "dies", 1, "x")
	errc := e.startOnline(a)
	j, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"x"}, Duration: time.Hour})
	require.NoError(t, err)
	e.waitJob(j.ID, fakegithub.StatusInProgress)
	require.Equal(t, http.StatusNoContent, e.call("POST", e.srv.URL+"/_fake/runners/dies/disconnect", nil, nil).StatusCode)
	require.ErrorContains(t, recvErr(t, errc), "lost connection")
	require.Equal(t, fakegithub.ConclusionFailure, e.waitJob(j.ID, fakegithub.StatusCompleted).Conclusion)

	// an idle runner that is disconnected stays registered, offline
	b := e.register("acme", "", "idle", 1, "y")
	errc = e.startOnline(b)
	require.NoError(t, e.fake.DisconnectRunner("idle"))
	require.ErrorIs(t, recvErr(t, errc), fakerunner.ErrRefused)
	e.waitRunner("idle", "offline")
}

func TestDeleteIdleRunnerStopsIt(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	a := e.register("acme", "app", "idle", 1, "x")
	errc := e.startOnline(a)
	require.Equal(t, http.StatusNoContent, e.call("DELETE", fmt.Sprintf("/repos/acme/app/actions/runners/%d", a.Runner.ID), nil, nil).StatusCode)
	require.ErrorIs(t, recvErr(t, errc), fakerunner.ErrRemoved)
	require.Empty(t, e.fake.Runners())
	// its JIT config is now useless
	errc, _ = e.start(a.EncodedJITConfig)
	require.ErrorIs(t, recvErr(t, errc), fakerunner.ErrRemoved)
}

func TestControlAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	var j fakegithub.Job
	resp := e.call("POST", e.srv.URL+"/_fake/jobs", map[string]any{"owner": "acme", "repo": "app", "labels": []string{"a"}, "duration_seconds": 0.01}, &j)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, fakegithub.StatusQueued, j.Status)
	var got fakegithub.Job
	e.call("GET", fmt.Sprintf("%s/_fake/jobs/%d", e.srv.URL, j.ID), nil, &got)
	require.Equal(t, j.ID, got.ID)
	require.Equal(t, 10*time.Millisecond, time.Duration(got.DurationSeconds*float64(time.Second)).Round(time.Millisecond))
	var list []fakegithub.Job
	e.call("GET", e.srv.URL+"/_fake/jobs?status=queued", nil, &list)
	require.Len(t, list, 1)
	e.call("GET", e.srv.URL+"/_fake/jobs?status=completed", nil, &list)
	require.Empty(t, list)
	var st fakegithub.Stats
	e.call("GET", e.srv.URL+"/_fake/stats", nil, &st)
	require.Equal(t, 1, st.Jobs["queued"])
	require.Equal(t, http.StatusBadRequest, e.call("POST", e.srv.URL+"/_fake/faults", map[string]any{"drop": 2}, nil).StatusCode)
	require.Equal(t, http.StatusBadRequest, e.call("POST", e.srv.URL+"/_fake/faults", map[string]any{"nope": 1}, nil).StatusCode)
	require.Equal(t, http.StatusNotFound, e.call("POST", e.srv.URL+"/_fake/runners/ghost/disconnect", nil, nil).StatusCode)
}

func TestSimulationQueuesJobsFromTheLabelSets(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	sets := fakegithub.ParseLabelSets("self-hosted,linux,small; self-hosted,linux,large;")
	require.Equal(t, [][]string{{"self-hosted", "linux", "small"}, {"self-hosted", "linux", "large"}}, sets)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.fake.Simulate(ctx, fakegithub.Simulation{Rate: 200, LabelSets: sets, Owner: "sim", Repo: "demo", MinDuration: time.Second, MaxDuration: 2 * time.Second})
	}()
	require.Eventually(t, func() bool { return len(e.fake.Jobs("")) >= 10 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	for _, j := range e.fake.Jobs("") {
		require.Contains(t, sets, j.Labels)
		require.Equal(t, "sim/demo", j.Owner+"/"+j.Repo)
		require.GreaterOrEqual(t, j.DurationSeconds, 1.0)
		require.Less(t, j.DurationSeconds, 2.0)
	}
	require.Error(t, e.fake.Simulate(context.Background(), fakegithub.Simulation{}))
}
