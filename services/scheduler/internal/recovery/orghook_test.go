package recovery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/recovery"
)

// TestOrganizationHookThroughTheClient runs a pass against an organization
// webhook's deliveries (a token, github.webhook_hook_id and
// github.webhook_organization) through the real client.
func TestOrganizationHookThroughTheClient(t *testing.T) {
	t.Parallel()
	const token = "ghp_ORGHOOKTESTTOKEN"
	now := time.Now().UTC().Truncate(time.Second)
	type delivery struct {
		ID          int64  `json:"id"`
		GUID        string `json:"guid"`
		DeliveredAt string `json:"delivered_at"`
		StatusCode  int    `json:"status_code"`
		Event       string `json:"event"`
		Action      string `json:"action"`
	}
	all := []delivery{ // newest first, as GitHub lists them
		{ID: 5, GUID: "g-c", StatusCode: 202, Event: "workflow_job", Action: "queued"},
		{ID: 4, GUID: "g-b", StatusCode: 503, Event: "workflow_job", Action: "completed"},
		{ID: 3, GUID: "g-a", StatusCode: 200, Event: "workflow_job", Action: "queued"},
		{ID: 2, GUID: "g-x", StatusCode: 500, Event: "ping"},
		{ID: 1, GUID: "g-a", StatusCode: 0, Event: "workflow_job", Action: "queued"},
	}
	for i := range all {
		all[i].DeliveredAt = now.Add(-time.Duration(all[i].ID) * time.Minute).Format(time.RFC3339)
	}
	var (
		mu          sync.Mutex
		redelivered []string
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/acme/hooks/42/deliveries", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(401)
			return
		}
		start := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			start, _ = strconv.Atoi(c)
		}
		end := min(start+2, len(all))
		if end < len(all) {
			w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?cursor=%d&per_page=2>; rel="next"`, r.Host, r.URL.Path, end))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(all[start:end])
	})
	mux.HandleFunc("POST /orgs/acme/hooks/42/deliveries/{id}/attempts", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		redelivered = append(redelivered, r.PathValue("id"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("{}"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	client, err := github.New(github.Options{BaseURL: srv.URL, Token: token})
	require.NoError(t, err)
	cfg := &config.Config{}
	cfg.Secrets.GitHubToken = token
	_, err = recovery.HooksFromConfig(cfg, client)
	require.ErrorIs(t, err, recovery.ErrNoSource, "a token without an organization webhook")
	cfg.GitHub.WebhookHookID, cfg.GitHub.WebhookOrganization = 42, "acme"
	hooks, err := recovery.HooksFromConfig(cfg, client)
	require.NoError(t, err)
	require.Len(t, hooks, 1)
	require.Empty(t, hooks[0].Name, "the one organization webhook keeps the checkpoint of a manager of one webhook")

	rec := recovery.New(recovery.Options{
		Redis: redistest.Client(t), Keys: keys.New(redistest.NewName("recovery")), Hooks: hooks, PerPage: 2,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := rec.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Pages)
	require.Equal(t, []string{"g-b"}, rep.Redelivered, "g-a succeeded on its second attempt; the ping is not a job")
	require.Equal(t, []string{"4"}, redelivered)
}

// TestSeveralOrganizationHooks: github.webhook_hooks lists a webhook per
// organization; one pass reads each (with the client's token), redelivers
// each one's failures through its own organization's route and keeps a
// checkpoint per hook.
func TestSeveralOrganizationHooks(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	var (
		mu          sync.Mutex
		redelivered []string
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/{org}/hooks/{hook}/deliveries", func(w http.ResponseWriter, r *http.Request) {
		org, hook := r.PathValue("org"), r.PathValue("hook")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]map[string]any{
			{"id": 10, "guid": org + "-ok", "delivered_at": now.Format(time.RFC3339), "status_code": 200, "event": "workflow_job", "action": "queued"},
			{"id": 9, "guid": org + "-" + hook + "-lost", "delivered_at": now.Add(-time.Minute).Format(time.RFC3339), "status_code": 503, "event": "workflow_job", "action": "queued"},
		})
	})
	mux.HandleFunc("POST /orgs/{org}/hooks/{hook}/deliveries/{id}/attempts", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		redelivered = append(redelivered, r.PathValue("org")+"/"+r.PathValue("hook")+"/"+r.PathValue("id"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("{}"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := github.New(github.Options{BaseURL: srv.URL, Token: "ghp_ORGHOOKSTESTTOKEN"})
	require.NoError(t, err)
	cfg := &config.Config{GitHub: config.GitHub{WebhookHooks: []config.WebhookHook{{Organization: "acme", HookID: 42}, {Organization: "Beta", HookID: 7}}}}
	hooks, err := recovery.HooksFromConfig(cfg, client)
	require.NoError(t, err)
	require.Equal(t, []string{"org:acme:42", "org:beta:7"}, []string{hooks[0].Name, hooks[1].Name})

	rdb, k := redistest.Client(t), keys.New(redistest.NewName("recovery"))
	rec := recovery.New(recovery.Options{Redis: rdb, Keys: k, Hooks: hooks})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := rec.RunOnce(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"acme-42-lost", "Beta-7-lost"}, rep.Redelivered)
	require.ElementsMatch(t, []string{"acme/42/9", "Beta/7/9"}, redelivered)
	for _, h := range hooks {
		require.Equal(t, int64(1), rdb.Exists(ctx, k.RecoveryCheckpoint(h.Name)).Val(), "checkpoint of %s", h.Name)
	}
	require.Zero(t, rdb.Exists(ctx, k.RecoveryCheckpoint("")).Val(), "no hook named \"\"")
}
