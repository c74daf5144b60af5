package github

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
)

// pagedRunners serves n runners named runner-<i> with GitHub's Link
// pagination, honouring per_page, page and name.
func pagedRunners(t *testing.T, n int, seen *[]string, mu *sync.Mutex) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/{org}/actions/runners", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*seen = append(*seen, r.URL.RawQuery)
		mu.Unlock()
		require.Equal(t, "Bearer "+testToken, r.Header.Get("Authorization"))
		perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		name := r.URL.Query().Get("name")
		var all []map[string]any
		for i := 1; i <= n; i++ {
			rn := fmt.Sprintf("runner-%d", i)
			if name == "" || name == rn {
				all = append(all, runnerJSON(int64(i), rn, "online", i%2 == 0))
			}
		}
		lo, hi := min((page-1)*perPage, len(all)), min(page*perPage, len(all))
		if hi < len(all) {
			w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?per_page=%d&page=%d>; rel="next"`, r.Host, r.URL.Path, perPage, page+1))
		}
		writeJSON(w, 200, map[string]any{"total_count": len(all), "runners": all[lo:hi]})
	})
	return mux
}

func TestListRunnersReadsEveryPage(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	b := setup(t, pagedRunners(t, 250, &seen, &mu))

	runners, err := b.client.ListRunners(context.Background(), OrgScope("acme"))
	require.NoError(t, err)
	require.Len(t, runners, 250)
	require.Equal(t, Runner{
		ID: 2, Name: "runner-2", OS: "linux", Status: "online", Busy: true,
		Labels: []string{"self-hosted", "linux"}, RunnerGroupID: 3, Ephemeral: true,
	}, runners[1])
	require.True(t, runners[249].Online())
	require.Equal(t, []string{"page=1&per_page=100", "page=2&per_page=100", "page=3&per_page=100"}, seen)
	// Metrics carry the route template, not the path.
	require.Equal(t, 3.0, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "token",
		"route", "/orgs/{org}/actions/runners", "method", "GET", "code", "200"))
}

func TestFindRunnersByPrefixAndByName(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	b := setup(t, pagedRunners(t, 120, &seen, &mu))
	ctx := context.Background()

	found, err := b.client.FindRunnersByPrefix(ctx, OrgScope("acme"), "runner-11")
	require.NoError(t, err)
	var names []string
	for _, r := range found {
		names = append(names, r.Name)
	}
	require.Equal(t, []string{"runner-11", "runner-110", "runner-111", "runner-112", "runner-113",
		"runner-114", "runner-115", "runner-116", "runner-117", "runner-118", "runner-119"}, names)

	r, err := b.client.GetRunnerByName(ctx, OrgScope("acme"), "runner-42")
	require.NoError(t, err)
	require.Equal(t, int64(42), r.ID)
	mu.Lock()
	require.Equal(t, "name=runner-42&page=1&per_page=100", seen[len(seen)-1], "the name filter of the listing is used")
	mu.Unlock()

	_, err = b.client.GetRunnerByName(ctx, OrgScope("acme"), "runner-999")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestRepositoryScopeAndRunnerCalls(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/acme/app/actions/runners/7", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, runnerJSON(7, "rm-small-7", "offline", false))
	})
	mux.HandleFunc("DELETE /repos/acme/app/actions/runners/7", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /repos/acme/app/actions/runners/8", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, map[string]string{"message": "Not Found"})
	})
	mux.HandleFunc("POST /repos/acme/app/actions/runners/generate-jitconfig", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		require.Equal(t, map[string]any{"name": "rm-small-9", "runner_group_id": 1.0, "labels": []any{"self-hosted", "small"}, "work_folder": "_w"}, body)
		writeJSON(w, 201, map[string]any{"runner": runnerJSON(9, "rm-small-9", "offline", false), "encoded_jit_config": "ZW5jb2RlZA=="})
	})
	b := setup(t, mux)
	ctx := context.Background()
	scope := RepoScope("acme", "app")

	r, err := b.client.GetRunner(ctx, scope, 7)
	require.NoError(t, err)
	require.Equal(t, "rm-small-7", r.Name)
	require.False(t, r.Online())

	require.NoError(t, b.client.DeleteRunner(ctx, scope, 7))
	err = b.client.DeleteRunner(ctx, scope, 8)
	require.ErrorIs(t, err, ErrNotFound)
	require.EqualError(t, err, "delete runner 8 of acme/app: DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}: 404 Not Found: Not Found")

	jit, err := b.client.GenerateJITConfig(ctx, scope, JITRequest{Name: "rm-small-9", RunnerGroupID: 1, Labels: []string{"self-hosted", "small"}, WorkFolder: "_w"})
	require.NoError(t, err)
	require.Equal(t, int64(9), jit.RunnerID)
	require.Equal(t, "rm-small-9", jit.Name)
	require.Equal(t, "ZW5jb2RlZA==", jit.Encoded.Value())
}

func TestInvalidCallsAreRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
	}))
	ctx := context.Background()
	_, err := b.client.GenerateJITConfig(ctx, OrgScope("acme"), JITRequest{Name: "x", RunnerGroupID: 1})
	require.ErrorIs(t, err, ErrPermanent)
	_, err = b.client.GenerateJITConfig(ctx, Scope{}, JITRequest{Name: "x", RunnerGroupID: 1, Labels: []string{"a"}})
	require.ErrorIs(t, err, ErrPermanent)
	_, err = b.client.ListRunners(ctx, Scope{Repo: "app"})
	require.ErrorIs(t, err, ErrPermanent)
	require.Contains(t, err.Error(), "list runners of /app")
}

func TestJITAnswerWithoutAConfigIsRetryable(t *testing.T) {
	t.Parallel()
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, map[string]any{"runner": runnerJSON(1, "rm-1", "offline", false)})
	}))
	_, err := b.client.GenerateJITConfig(context.Background(), RepoScope("acme", "app"), JITRequest{Name: "rm-1", RunnerGroupID: 1, Labels: []string{"x"}})
	require.ErrorIs(t, err, ErrRetryable)
	require.EqualError(t, err, "generate jit config for runner rm-1: POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig: invalid response body")
}

func TestClientsShareTheirMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	}))
	// A second client on the same registry registers nothing new and counts
	// into the same series.
	other, err := New(Options{BaseURL: b.server.URL, Token: testToken, Registerer: b.reg})
	require.NoError(t, err)
	_, err = b.client.GetRunner(context.Background(), OrgScope("acme"), 1)
	require.NoError(t, err)
	_, err = other.GetRunner(context.Background(), OrgScope("acme"), 1)
	require.NoError(t, err)
	require.Equal(t, 2.0, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "token",
		"route", "/orgs/{org}/actions/runners/{runner_id}", "method", "GET", "code", "200"))
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{}
	cfg.SetDefaults()
	cfg.Secrets.GitHubToken = testToken
	opts := FromConfig(cfg)
	require.Equal(t, config.DefaultGitHubBaseURL, opts.BaseURL)
	require.Equal(t, config.DefaultAPIReserve, opts.Reserve)
	c, err := New(opts)
	require.NoError(t, err)
	require.Equal(t, config.DefaultAPIReserve, c.tr.reserve)
}
