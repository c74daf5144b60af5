package fakegithub_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
)

const (
	testSecret = "webhook-secret-for-tests"
	testToken  = "ghp_testtoken"
)

// event is one webhook the receiver accepted.
type event struct {
	Event, Action, GUID string
	JobID               int64
	Job                 map[string]any
	Body                []byte
}

// receiver is a webhook endpoint that verifies GitHub's signatures.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	events []event
	bad    int
	status int // answer status (default 200)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m256 := hmac.New(sha256.New, []byte(testSecret))
	m256.Write(body)
	m1 := hmac.New(sha1.New, []byte(testSecret))
	m1.Write(body)
	ok := hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte("sha256="+hex.EncodeToString(m256.Sum(nil)))) &&
		hmac.Equal([]byte(r.Header.Get("X-Hub-Signature")), []byte("sha1="+hex.EncodeToString(m1.Sum(nil)))) &&
		strings.HasPrefix(r.Header.Get("User-Agent"), "GitHub-Hookshot/") &&
		r.Header.Get("X-GitHub-Hook-ID") != "" && r.Header.Get("X-GitHub-Delivery") != ""
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !ok {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p struct {
		Action      string         `json:"action"`
		WorkflowJob map[string]any `json:"workflow_job"`
	}
	_ = json.Unmarshal(body, &p)
	ev := event{Event: r.Header.Get("X-GitHub-Event"), Action: p.Action, GUID: r.Header.Get("X-GitHub-Delivery"), Job: p.WorkflowJob, Body: body}
	if id, ok := p.WorkflowJob["id"].(float64); ok {
		ev.JobID = int64(id)
	}
	rc.events = append(rc.events, ev)
	w.WriteHeader(cmpOr(rc.status, http.StatusOK))
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func (rc *receiver) all() []event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.Zero(rc.t, rc.bad, "webhooks with a bad signature or headers")
	return append([]event(nil), rc.events...)
}

// jobEvents returns the actions received for a job, in arrival order.
func (rc *receiver) jobEvents(id int64) []event {
	var out []event
	for _, e := range rc.all() {
		if e.JobID == id {
			out = append(out, e)
		}
	}
	return out
}

type env struct {
	t    *testing.T
	fake *fakegithub.Server
	srv  *httptest.Server
	recv *receiver
	logs *bytes.Buffer
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func setup(t *testing.T, mod func(*fakegithub.Options)) *env {
	t.Helper()
	rc := &receiver{t: t}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	logs := &safeBuffer{}
	opts := fakegithub.Options{
		WebhookURL:         hook.URL,
		WebhookSecret:      testSecret,
		Tokens:             []string{testToken},
		Seed:               7,
		RunnerPingInterval: 200 * time.Millisecond,
		Logger:             slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	fake, err := fakegithub.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(fake)
	t.Cleanup(func() {
		fake.Close()
		srv.Close()
		logs.mu.Lock()
		defer logs.mu.Unlock()
		require.NotContains(t, logs.b.String(), testSecret, "webhook secret in logs")
	})
	return &env{t: t, fake: fake, srv: srv, recv: rc, logs: &logs.b}
}

// call makes an API call with the test token and decodes a JSON answer.
func (e *env) call(method, path string, body any, out any) *http.Response {
	return e.callAuth(method, path, "Bearer "+testToken, body, out)
}

func (e *env) callAuth(method, path, auth string, body any, out any) *http.Response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = e.srv.URL + path
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(e.t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	if out != nil && len(b) > 0 {
		require.NoError(e.t, json.Unmarshal(b, out), string(b))
	}
	return resp
}

type jitAnswer struct {
	Runner struct {
		ID            int64  `json:"id"`
		Name          string `json:"name"`
		Status        string `json:"status"`
		RunnerGroupID int64  `json:"runner_group_id"`
	} `json:"runner"`
	EncodedJITConfig string `json:"encoded_jit_config"`
}

// register makes a JIT runner at org level (repo == "") or repository level.
func (e *env) register(owner, repo, name string, group int64, labels ...string) jitAnswer {
	e.t.Helper()
	path := "/orgs/" + owner + "/actions/runners/generate-jitconfig"
	if repo != "" {
		path = "/repos/" + owner + "/" + repo + "/actions/runners/generate-jitconfig"
	}
	var a jitAnswer
	resp := e.call("POST", path, map[string]any{"name": name, "runner_group_id": group, "labels": labels}, &a)
	require.Equal(e.t, http.StatusCreated, resp.StatusCode)
	return a
}

// start runs a fake runner in-process; the returned channel yields its result.
func (e *env) start(jit string) (<-chan error, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- fakerunner.Run(ctx, fakerunner.Config{JITConfig: jit, ConnectTimeout: 10 * time.Second})
	}()
	e.t.Cleanup(cancel)
	return errc, cancel
}

// startOnline starts a runner and waits until the fake sees it online.
func (e *env) startOnline(a jitAnswer) <-chan error {
	errc, _ := e.start(a.EncodedJITConfig)
	e.waitRunner(a.Runner.Name, "online")
	return errc
}

func (e *env) waitRunner(name, status string) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		r, ok := e.fake.RunnerByName(name)
		return ok && r.Status == status
	}, 10*time.Second, 5*time.Millisecond, "runner %s never %s", name, status)
}

func (e *env) waitJob(id int64, status string) fakegithub.Job {
	e.t.Helper()
	var j fakegithub.Job
	require.Eventually(e.t, func() bool {
		j, _ = e.fake.Job(id)
		return j.Status == status
	}, 10*time.Second, 5*time.Millisecond, "job %d never %s: %+v", id, status, &j)
	return j
}

// waitEvents waits until the receiver has n events for the job.
func (e *env) waitEvents(id int64, n int) []event {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return len(e.recv.jobEvents(id)) >= n }, 10*time.Second, 5*time.Millisecond)
	return e.recv.jobEvents(id)
}

func recvErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("runner did not exit")
		return nil
	}
}

func actions(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Action)
	}
	return out
}
