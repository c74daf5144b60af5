package github

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestListRunnerApplicationsOfOrgAndRepo(t *testing.T) {
	var orgCalls, repoCalls atomic.Int32
	apps := []map[string]any{
		{"os": "linux", "architecture": "x64", "download_url": "https://example.test/actions-runner-linux-x64-2.330.0.tar.gz",
			"filename": "actions-runner-linux-x64-2.330.0.tar.gz", "sha256_checksum": "aa", "temp_download_token": "secret-token"},
		{"os": "linux", "architecture": "arm64", "download_url": "https://example.test/actions-runner-linux-arm64-2.330.0.tar.gz",
			"filename": "actions-runner-linux-arm64-2.330.0.tar.gz", "sha256_checksum": "bb"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/{org}/actions/runners/downloads", func(w http.ResponseWriter, r *http.Request) {
		orgCalls.Add(1)
		require.Equal(t, "acme", r.PathValue("org"))
		writeJSON(w, 200, apps)
	})
	mux.HandleFunc("GET /repos/{owner}/{repo}/actions/runners/downloads", func(w http.ResponseWriter, r *http.Request) {
		repoCalls.Add(1)
		require.Equal(t, "acme/app", r.PathValue("owner")+"/"+r.PathValue("repo"))
		writeJSON(w, 200, apps[:1])
	})
	b := setup(t, mux)
	got, err := b.client.ListRunnerApplications(context.Background(), OrgScope("acme"))
	require.NoError(t, err)
	require.Equal(t, []RunnerApplication{
		{OS: "linux", Architecture: "x64", DownloadURL: "https://example.test/actions-runner-linux-x64-2.330.0.tar.gz",
			Filename: "actions-runner-linux-x64-2.330.0.tar.gz", SHA256Checksum: "aa"},
		{OS: "linux", Architecture: "arm64", DownloadURL: "https://example.test/actions-runner-linux-arm64-2.330.0.tar.gz",
			Filename: "actions-runner-linux-arm64-2.330.0.tar.gz", SHA256Checksum: "bb"},
	}, got)
	got, err = b.client.ListRunnerApplications(context.Background(), RepoScope("acme", "app"))
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.EqualValues(t, 1, orgCalls.Load())
	require.EqualValues(t, 1, repoCalls.Load())
	require.Contains(t, metricsText(t, b.reg), `value:"/orgs/{org}/actions/runners/downloads"`)
}

func TestListRunnerApplicationsServerErrorIsRetryable(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/{org}/actions/runners/downloads", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 502, map[string]any{"message": "bad gateway"})
	})
	b := setup(t, mux)
	_, err := b.client.ListRunnerApplications(context.Background(), OrgScope("acme"))
	require.ErrorIs(t, err, ErrRetryable)
}
