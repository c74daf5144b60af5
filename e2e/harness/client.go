package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// doJSON sends a JSON request and decodes a JSON answer into out (when not nil).
func doJSON(ctx context.Context, method, url, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// JobOption changes the job QueueJob queues.
type JobOption func(*fakegithub.JobSpec)

// Workflow names the job's workflow (the fake's default is "CI").
func Workflow(name string) JobOption { return func(s *fakegithub.JobSpec) { s.WorkflowName = name } }

// QueueJob queues a job of a repository of Org at the fake GitHub.
func (s *System) QueueJob(ctx context.Context, repo string, labels []string, duration time.Duration, opts ...JobOption) (int64, error) {
	return s.QueueJobOf(ctx, Org, repo, labels, duration, opts...)
}

// QueueJobOf queues a job of owner/repo at the fake GitHub.
func (s *System) QueueJobOf(ctx context.Context, owner, repo string, labels []string, duration time.Duration, opts ...JobOption) (int64, error) {
	spec := fakegithub.JobSpec{Owner: owner, Repo: repo, Labels: labels, DurationSeconds: duration.Seconds()}
	for _, o := range opts {
		o(&spec)
	}
	var j fakegithub.Job
	err := doJSON(ctx, http.MethodPost, s.FakeURL+"/_fake/jobs", "", spec, &j)
	return j.ID, err
}

// Job returns a job's state at the fake GitHub.
func (s *System) Job(ctx context.Context, id int64) (fakegithub.Job, error) {
	var j fakegithub.Job
	err := doJSON(ctx, http.MethodGet, fmt.Sprintf("%s/_fake/jobs/%d", s.FakeURL, id), "", nil, &j)
	return j, err
}

// FakeStats returns the fake GitHub's /_fake/stats document.
func (s *System) FakeStats(ctx context.Context) (map[string]any, error) {
	var m map[string]any
	err := doJSON(ctx, http.MethodGet, s.FakeURL+"/_fake/stats", "", nil, &m)
	return m, err
}

// SetFaults sets the fake GitHub's faults (see docs/fake-github.md).
func (s *System) SetFaults(ctx context.Context, faults map[string]any) error {
	return doJSON(ctx, http.MethodPost, s.FakeURL+"/_fake/faults", "", faults, nil)
}

// Admin calls the admin API of the first scheduler with the dev token.
func (s *System) Admin(ctx context.Context, method, path string, out any) error {
	return doJSON(ctx, method, s.SchedulerURLs[0]+path, DevAPIToken, nil, out)
}
