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
	_, err = recovery.SourceFromConfig(cfg, client)
	require.ErrorIs(t, err, recovery.ErrNoSource, "a token without an organization webhook")
	cfg.GitHub.WebhookHookID, cfg.GitHub.WebhookOrganization = 42, "acme"
	src, err := recovery.SourceFromConfig(cfg, client)
	require.NoError(t, err)

	rec := recovery.New(recovery.Options{
		Redis: redistest.Client(t), Keys: keys.New(redistest.NewName("recovery")), Source: src, PerPage: 2,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := rec.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Pages)
	require.Equal(t, []string{"g-b"}, rep.Redelivered, "g-a succeeded on its second attempt; the ping is not a job")
	require.Equal(t, []string{"4"}, redelivered)
}
