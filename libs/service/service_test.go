package service_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

const validConfig = `
name: rm-test
runner_groups:
  - name: small
    organization: acme
    max_runners: 2
    labels: [linux]
    backend:
      type: docker
      docker:
        image: runner-manager/fake-runner:dev
`

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func setSecrets(t *testing.T) {
	t.Setenv("RM_GITHUB_TOKEN", "ghp_secret_token_value")
	t.Setenv("RM_GITHUB_WEBHOOK_SECRET", "webhook-secret-value")
}

func noRun(context.Context, *service.App) error { return nil }

func TestCheckConfigValid(t *testing.T) {
	setSecrets(t)
	var out, errOut bytes.Buffer
	code := service.Run(service.Options{Binary: "ingress"}, []string{"--config", writeFile(t, validConfig), "--check-config"}, &out, &errOut, noRun)
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "configuration is valid")
}

func TestCheckConfigInvalid(t *testing.T) {
	setSecrets(t)
	var out, errOut bytes.Buffer
	bad := strings.Replace(validConfig, "max_runners: 2", "max_runner: 2", 1)
	code := service.Run(service.Options{Binary: "scheduler"}, []string{"--config", writeFile(t, bad), "--check-config"}, &out, &errOut, noRun)
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "max_runner")
	require.Contains(t, errOut.String(), "line 6")
	require.NotContains(t, errOut.String(), "ghp_secret_token_value")
	require.NotContains(t, errOut.String(), "webhook-secret-value")
}

func TestNoConfigIsAUsageError(t *testing.T) {
	t.Setenv("RM_CONFIG", "")
	var out, errOut bytes.Buffer
	code := service.Run(service.Options{Binary: "ingress"}, nil, &out, &errOut, noRun)
	require.Equal(t, 2, code)
	require.Contains(t, errOut.String(), "--config")
}

func TestHealthReadinessMetrics(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	setSecrets(t)
	cfg, err := config.Parse([]byte(validConfig), mustSecrets(t))
	require.NoError(t, err)
	app := service.NewApp("ingress", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), rdb)
	h := httptest.NewServer(app.HTTP)
	t.Cleanup(h.Close)

	get := func(path string) (int, string) {
		resp, err := http.Get(h.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, _ := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	code, _ = get("/readyz")
	require.Equal(t, http.StatusOK, code)
	code, body := get("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `runner_manager_build_info{service="ingress"`)

	srv.Stop()
	code, body = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "redis")
	code, _ = get("/healthz")
	require.Equal(t, http.StatusOK, code, "liveness does not depend on Redis")

	srv.Restart()
	require.Eventually(t, func() bool { c, _ := get("/readyz"); return c == http.StatusOK }, 10e9, 50e6,
		"ready again by itself once Redis is back")
}

func mustSecrets(t *testing.T) config.Secrets {
	t.Helper()
	s, err := config.LoadSecrets()
	require.NoError(t, err)
	return s
}

// --check-config passes a valid configuration and warns about each group
// that lets public repositories (so forks' pull requests) use it.
func TestCheckConfigWarnsAboutPublicRepositories(t *testing.T) {
	setSecrets(t)
	var out, errOut bytes.Buffer
	code := service.Run(service.Options{Binary: "scheduler"}, []string{"--config", writeFile(t, validConfig), "--check-config"}, &out, &errOut, noRun)
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "configuration is valid")
	require.Contains(t, errOut.String(), `warning: runner_groups[0]: group "small" allows public repositories`)
	require.Contains(t, errOut.String(), "pull requests from forks")
}
