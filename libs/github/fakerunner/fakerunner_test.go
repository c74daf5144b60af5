package fakerunner_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub/fakegithubtest"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub/runnerapi"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
)

const token = "t0ken"

// newFake serves a fake GitHub on 127.0.0.1.
func newFake(t *testing.T) (*fakegithub.Server, *httptest.Server) {
	return fakegithubtest.Start(t, fakegithub.Options{Tokens: []string{token}, RunnerPingInterval: 200 * time.Millisecond})
}

// register returns the encoded JIT config of a new runner of acme.
func register(t *testing.T, url, name string, labels ...string) string {
	return fakegithubtest.RegisterOrgRunner(t, url, token, "acme", name, labels...)
}

func waitStatus(t *testing.T, fake *fakegithub.Server, name, status string) {
	t.Helper()
	require.Eventually(t, func() bool {
		r, ok := fake.RunnerByName(name)
		return ok && r.Status == status
	}, 30*time.Second, 10*time.Millisecond, "runner %s never %s", name, status)
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	_, err := fakerunner.ConfigFromEnv(env(nil))
	require.ErrorContains(t, err, fakerunner.EnvJITConfig)
	c, err := fakerunner.ConfigFromEnv(env(map[string]string{fakerunner.EnvNeverConnect: "1"}))
	require.NoError(t, err)
	require.True(t, c.NeverConnect)
	c, err = fakerunner.ConfigFromEnv(env(map[string]string{fakerunner.EnvJITConfig: "abc", fakerunner.EnvGitHubURL: "http://x:1", fakerunner.EnvConnectTimeout: "3s"}))
	require.NoError(t, err)
	require.Equal(t, "http://x:1", c.GitHubURL)
	require.Equal(t, 3*time.Second, c.ConnectTimeout)
}

func TestConfigFromEnvNeverConnectUntil(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name  string
		until string
		never bool
	}{
		{"before the instant", time.Now().Add(time.Hour).Format(time.RFC3339Nano), true},
		{"after the instant", time.Now().Add(-time.Hour).Format(time.RFC3339Nano), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := fakerunner.ConfigFromEnv(env(map[string]string{fakerunner.EnvJITConfig: "abc", fakerunner.EnvNeverConnectUntil: tc.until}))
			require.NoError(t, err)
			require.Equal(t, tc.never, c.NeverConnect)
		})
	}
	_, err := fakerunner.ConfigFromEnv(env(map[string]string{fakerunner.EnvJITConfig: "abc", fakerunner.EnvNeverConnectUntil: "soon"}))
	require.ErrorContains(t, err, fakerunner.EnvNeverConnectUntil)
}

func TestBadJITConfigIsAnErrorWithoutTheSecret(t *testing.T) {
	t.Parallel()
	err := fakerunner.Run(context.Background(), fakerunner.Config{JITConfig: "not-base64-secret!"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret!")
}

func TestNeverConnectWaitsForCancellation(t *testing.T) {
	t.Parallel()
	fake, srv := newFake(t)
	jit := register(t, srv.URL, "never", "x")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- fakerunner.Run(ctx, fakerunner.Config{JITConfig: jit, NeverConnect: true}) }()
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	r, ok := fake.RunnerByName("never")
	require.True(t, ok)
	require.Equal(t, "offline", r.Status)
}

func TestCancellationDuringAJobReportsNothing(t *testing.T) {
	t.Parallel()
	fake, srv := newFake(t)
	jit := register(t, srv.URL, "stopped", "x")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- fakerunner.Run(ctx, fakerunner.Config{JITConfig: jit}) }()
	waitStatus(t, fake, "stopped", "online")
	j, err := fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"x"}, Duration: time.Hour})
	require.NoError(t, err)
	require.Eventually(t, func() bool { j, _ = fake.Job(j.ID); return j.Status == fakegithub.StatusInProgress }, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	// the fake sees the connection drop, not a completion: the job fails
	require.Eventually(t, func() bool { j, _ = fake.Job(j.ID); return j.Status == fakegithub.StatusCompleted }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, fakegithub.ConclusionFailure, j.Conclusion)
}

func TestGivesUpWhenTheFakeIsUnreachable(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	jit := register(t, srv.URL, "patient", "x")
	// the override replaces the JIT config's URL: here a port nobody listens on
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	err := fakerunner.Run(context.Background(), fakerunner.Config{JITConfig: jit, GitHubURL: deadURL, ConnectTimeout: 300 * time.Millisecond})
	require.ErrorContains(t, err, "connect to "+deadURL)
	require.False(t, errors.Is(err, fakerunner.ErrRefused))
}

func TestSilentSessionIsTakenAsLost(t *testing.T) {
	t.Parallel()
	var connects atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "Bearer sekret", r.Header.Get("Authorization"))
		if connects.Add(1) > 1 {
			http.Error(w, "gone", http.StatusGone)
			return
		}
		_ = json.NewEncoder(w).Encode(runnerapi.Message{Type: runnerapi.TypeHello})
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then silence, like a dead peer
	}))
	defer srv.Close()
	jit := runnerapi.JITConfig{RunnerID: 1, RunnerName: "r", Secret: "sekret", URL: srv.URL}.Encode()
	err := fakerunner.Run(context.Background(), fakerunner.Config{JITConfig: jit, IdleTimeout: 200 * time.Millisecond})
	require.ErrorIs(t, err, fakerunner.ErrRemoved)
	require.EqualValues(t, 2, connects.Load(), "reconnected after the silence")
}
