package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime/runtimetest"
)

// Serve wires the runtime into a service: readiness of the consumer group
// and of the backend, metrics on the service's registry.
func TestServeReadiness(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Name: redistest.NewName("serve")}
	cfg.SetDefaults()
	app := service.NewApp("provisioner-mem", cfg, slog.New(slog.DiscardHandler), redistest.Client(t))
	var backendDown atomic.Bool
	backendDown.Store(true)
	setup := runtime.BackendSetup{
		Factory: func([]byte) (backend.Backend, error) { return memory.New(memory.Options{}), nil },
		Ping: func(context.Context) error {
			if backendDown.Load() {
				return errors.New("engine unreachable")
			}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runtime.Serve(ctx, app, "mem", setup, runtimetest.NewGitHub()) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		app.HTTP.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	// The backend is down: not ready, and said which check fails (its error
	// goes to the log, not into the answer).
	require.Eventually(t, func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "backend: not ready") &&
			!strings.Contains(body, "engine unreachable") &&
			!strings.Contains(body, "consumer-group")
	}, 10*time.Second, 10*time.Millisecond)
	backendDown.Store(false)
	code, body := readyz()
	require.Equal(t, http.StatusOK, code, body)

	rec := httptest.NewRecorder()
	app.HTTP.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Contains(t, rec.Body.String(), `runner_manager_provisioner_commands_total{backend="mem",command="create",outcome="created"} 0`)
}
