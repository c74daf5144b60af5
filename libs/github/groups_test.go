package github

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRunnerGroups(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		bodies = map[string]map[string]any{}
	)
	record := func(key string, r *http.Request) {
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		mu.Lock()
		bodies[key] = body
		mu.Unlock()
	}
	group := func(id int, name string) map[string]any {
		return map[string]any{"id": id, "name": name, "visibility": "all", "default": id == 1,
			"allows_public_repositories": false, "restricted_to_workflows": false, "inherited": false}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/acme/actions/runner-groups", func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "100", r.URL.Query().Get("per_page"))
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page == 1 {
			w.Header().Set("Link", fmt.Sprintf(`<http://%s/orgs/acme/actions/runner-groups?per_page=100&page=2>; rel="next"`, r.Host))
			writeJSON(w, 200, map[string]any{"total_count": 2, "runner_groups": []any{group(1, "Default")}})
			return
		}
		writeJSON(w, 200, map[string]any{"total_count": 2, "runner_groups": []any{group(4, "linux-small")}})
	})
	mux.HandleFunc("POST /orgs/acme/actions/runner-groups", func(w http.ResponseWriter, r *http.Request) {
		record("create", r)
		writeJSON(w, 201, group(5, "gpu"))
	})
	mux.HandleFunc("PATCH /orgs/acme/actions/runner-groups/4", func(w http.ResponseWriter, r *http.Request) {
		record("update", r)
		g := group(4, "linux-small")
		g["visibility"], g["restricted_to_workflows"], g["selected_workflows"] = "selected", true, []string{"acme/app/.github/workflows/ci.yml@main"}
		writeJSON(w, 200, g)
	})
	mux.HandleFunc("PUT /orgs/acme/actions/runner-groups/4/repositories", func(w http.ResponseWriter, r *http.Request) {
		record("repos", r)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /repos/acme/app", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": 1296269, "name": "app", "full_name": "acme/app"})
	})
	b := setup(t, mux)
	ctx := context.Background()

	groups, err := b.client.ListRunnerGroups(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, groups, 2)
	g, err := b.client.GetRunnerGroupByName(ctx, "acme", "linux-small")
	require.NoError(t, err)
	require.Equal(t, int64(4), g.ID)
	_, err = b.client.GetRunnerGroupByName(ctx, "acme", "nope")
	require.ErrorIs(t, err, ErrNotFound)

	created, err := b.client.CreateRunnerGroup(ctx, "acme", RunnerGroupSettings{Name: "gpu"})
	require.NoError(t, err)
	require.Equal(t, int64(5), created.ID)

	updated, err := b.client.UpdateRunnerGroup(ctx, "acme", 4, RunnerGroupSettings{
		Name: "linux-small", Visibility: VisibilitySelected, RestrictedToWorkflows: true,
		SelectedWorkflows: []string{"acme/app/.github/workflows/ci.yml@main"},
	})
	require.NoError(t, err)
	require.True(t, updated.RestrictedToWorkflows)

	id, err := b.client.GetRepositoryID(ctx, "acme", "app")
	require.NoError(t, err)
	require.Equal(t, int64(1296269), id)
	require.NoError(t, b.client.SetRunnerGroupRepositories(ctx, "acme", 4, []int64{id}))
	require.NoError(t, b.client.SetRunnerGroupRepositories(ctx, "acme", 4, nil))

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]any{
		"name": "gpu", "visibility": "all", "allows_public_repositories": false,
		"restricted_to_workflows": false, "selected_workflows": []any{},
	}, bodies["create"], "every setting is sent, an empty workflow list as []")
	require.Equal(t, map[string]any{
		"name": "linux-small", "visibility": "selected", "allows_public_repositories": false,
		"restricted_to_workflows": true, "selected_workflows": []any{"acme/app/.github/workflows/ci.yml@main"},
	}, bodies["update"])
	require.Equal(t, map[string]any{"selected_repository_ids": []any{}}, bodies["repos"], "nil clears, as []")
}

func TestGetJob(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/acme/app/actions/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "399444496" {
			writeJSON(w, 404, map[string]string{"message": "Not Found"})
			return
		}
		writeJSON(w, 200, map[string]any{
			"id": 399444496, "run_id": 29679449, "status": "completed", "conclusion": "success",
			"name": "build", "labels": []string{"self-hosted", "small"},
			"runner_id": 1, "runner_name": "rm-small-1", "runner_group_id": 2, "runner_group_name": "small",
			"created_at": "2026-01-02T03:04:05Z", "started_at": "2026-01-02T03:05:05Z", "completed_at": "2026-01-02T03:06:05Z",
			"run_attempt": 1, "workflow_name": "CI", "head_branch": "main",
		})
	})
	b := setup(t, mux)
	j, err := b.client.GetJob(context.Background(), "acme", "app", 399444496)
	require.NoError(t, err)
	require.Equal(t, &Job{
		ID: 399444496, RunID: 29679449, Name: "build", Status: JobCompleted, Conclusion: "success",
		Labels: []string{"self-hosted", "small"}, RunnerID: 1, RunnerName: "rm-small-1", RunnerGroupID: 2,
		RunnerGroupName: "small", RunAttempt: 1, WorkflowName: "CI", HeadBranch: "main",
		CreatedAt:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		StartedAt:   time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC),
		CompletedAt: time.Date(2026, 1, 2, 3, 6, 5, 0, time.UTC),
	}, normalizeJobTimes(j))
	require.True(t, j.Done())

	_, err = b.client.GetJob(context.Background(), "acme", "app", 1)
	require.ErrorIs(t, err, ErrNotFound)
}

func normalizeJobTimes(j *Job) *Job {
	c := *j
	c.CreatedAt, c.StartedAt, c.CompletedAt = c.CreatedAt.UTC(), c.StartedAt.UTC(), c.CompletedAt.UTC()
	return &c
}
