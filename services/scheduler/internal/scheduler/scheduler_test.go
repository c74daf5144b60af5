package scheduler_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/scheduler"
)

// The wired scheduler: ready once both consumer groups exist, turns a queued
// event into a create command, serves the admin API, stops on cancel.
func TestRunWiresEverything(t *testing.T) {
	rdb := redistest.Client(t)
	cfg := &config.Config{
		Name: redistest.NewName("sched"),
		RunnerGroups: []config.RunnerGroup{{
			Name: "pool", Organization: "acme", MinRunners: 1, MaxRunners: 3, Labels: []string{"linux"},
			Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}},
		}},
	}
	cfg.SetDefaults()
	cfg.Scheduler.ReconcileInterval = 50 * time.Millisecond
	cfg.Secrets.APIToken = "tok"
	app := service.NewApp("scheduler", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), rdb)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- scheduler.Run(ctx, app) }()

	get := func(path, auth string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, req) // as the listener serves it, while Run adds routes
		return rec.Code
	}
	require.Eventually(t, func() bool { return get("/readyz", "") == http.StatusOK }, 20*time.Second, 20*time.Millisecond)

	_, err := app.Publisher.Publish(ctx, app.Keys.Events(), stream.TypeWorkflowJob, &rmv1.WorkflowJobEvent{
		Action: "queued", JobId: 1, Labels: []string{"linux"}, Owner: "acme", Repository: "app",
	})
	require.NoError(t, err)
	// min_runners 1 (reconcile loop) + the job's runner (events consumer).
	// The health checks also send list commands: count the creates.
	creates := func() int {
		n := 0
		for _, e := range rdb.XRange(ctx, app.Keys.Provision("docker"), "-", "+").Val() {
			data, _ := e.Values[stream.FieldData].(string)
			var cmd rmv1.ProvisionCommand
			if proto.Unmarshal([]byte(data), &cmd) == nil && cmd.GetCreate() != nil {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return creates() == 2 }, 20*time.Second, 20*time.Millisecond)

	require.Equal(t, http.StatusUnauthorized, get("/api/v1/groups", ""))
	require.Equal(t, http.StatusOK, get("/api/v1/groups", "Bearer tok"))

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
}

// The scheduler's start log warns about each group that lets public
// repositories (so forks' pull requests) use it.
func TestStartLogWarnsAboutPublicRepositories(t *testing.T) {
	rdb := redistest.Client(t)
	cfg := &config.Config{
		Name: redistest.NewName("sched"),
		RunnerGroups: []config.RunnerGroup{{
			Name: "pool", Organization: "acme", MaxRunners: 1, Labels: []string{"linux"},
			Backend: config.Backend{Type: "docker"},
		}},
	}
	cfg.SetDefaults()
	var logs logbuf.Buffer
	app := service.NewApp("scheduler", cfg, slog.New(slog.NewJSONHandler(&logs, nil)), rdb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- scheduler.Run(ctx, app) }()
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), `group \"pool\" allows public repositories`)
	}, 20*time.Second, 20*time.Millisecond, "logs:\n%s", &logs)
	require.Contains(t, logs.String(), `"level":"WARN"`)
	require.Contains(t, logs.String(), "pull requests from forks")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the scheduler did not stop")
	}
}
