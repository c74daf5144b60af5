package rmctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Group is one runner group as GET /api/v1/groups shows it.
type Group struct {
	Name           string           `json:"name"`
	Organization   string           `json:"organization"`
	Repository     string           `json:"repository,omitempty"`
	Backend        string           `json:"backend"`
	MinRunners     int              `json:"min_runners"`
	MaxRunners     int              `json:"max_runners"`
	Total          int64            `json:"total"`
	Free           int64            `json:"free"`
	Demand         int64            `json:"demand"`
	Runners        map[string]int64 `json:"runners"`
	BackoffSeconds float64          `json:"backoff_seconds"`
	// Mode is the operator's mode of the group: active, paused or draining.
	Mode string `json:"mode"`
}

// ModeChange is the answer of POST /api/v1/groups/{name}/pause, drain and resume.
type ModeChange struct {
	Group        string `json:"group"`
	Mode         string `json:"mode"`
	PreviousMode string `json:"previous_mode"`
	// Deleting are the runners a drain moved to deleting.
	Deleting []string `json:"deleting"`
	// Reserved are the runners a resume reserved for the waiting demand.
	Reserved []string `json:"reserved"`
}

// Runner is one runner's record as the API shows it.
type Runner struct {
	Name           string `json:"name"`
	Group          string `json:"group"`
	Backend        string `json:"backend"`
	State          string `json:"state"`
	JobID          int64  `json:"job_id"`
	ForJob         int64  `json:"for_job"`
	InstanceID     string `json:"instance_id,omitempty"`
	GitHubRunnerID int64  `json:"github_runner_id,omitempty"`
	Attempt        int    `json:"attempt"`
	// The job the runner runs: its run, repository (owner/name) and
	// workflow, from its in_progress event.
	JobRunID      int64  `json:"job_run_id,omitempty"`
	JobRepository string `json:"job_repository,omitempty"`
	JobWorkflow   string `json:"job_workflow,omitempty"`
	// Where the runner is registered and runs, kept from its creation.
	Organization string            `json:"organization,omitempty"`
	Repository   string            `json:"repository,omitempty"`
	Location     map[string]string `json:"location,omitempty"`
	// Failed deletes of the runner and the last one's reason.
	DeleteFailures int       `json:"delete_failures,omitempty"`
	DeleteError    string    `json:"delete_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	StateSince     time.Time `json:"state_since"`
}

// Deletion is the answer of DELETE /api/v1/runners/{name}.
type Deletion struct {
	Runner        string `json:"runner"`
	PreviousState string `json:"previous_state"`
	State         string `json:"state"`
}

// DeadLetter is one entry of the dead-letter queue as GET /api/v1/dlq shows it.
type DeadLetter struct {
	ID           string    `json:"id"`
	OriginStream string    `json:"origin_stream"`
	OriginID     string    `json:"origin_id"`
	Type         string    `json:"type"`
	Reason       string    `json:"reason"`
	Deliveries   int64     `json:"deliveries"`
	Group        string    `json:"group,omitempty"`
	Consumer     string    `json:"consumer,omitempty"`
	Time         time.Time `json:"time,omitzero"`
	DataBytes    int       `json:"data_bytes"`
}

// Retry is the answer of POST /api/v1/dlq/{id}/retry.
type Retry struct {
	Retried string `json:"retried"`
}

// APIError is an error answer of the admin API.
type APIError struct {
	Status  int
	Code    string // "not_found", "unauthorized", "conflict", "bad_request", "internal"
	Message string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, msg)
}

// Client calls the scheduler's admin API.
type Client struct {
	// BaseURL of the scheduler, e.g. http://127.0.0.1:8081.
	BaseURL string
	// Token is sent as a Bearer token.
	Token string
	// HTTP client; nil: one with a 30 s timeout.
	HTTP *http.Client
}

// Groups lists the runner groups with their limits, runners and demand.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	var out struct {
		Groups []Group `json:"groups"`
	}
	return out.Groups, c.do(ctx, http.MethodGet, "/api/v1/groups", nil, &out)
}

// SetGroupMode pauses, drains or resumes a group (action "pause", "drain",
// "resume").
func (c *Client) SetGroupMode(ctx context.Context, name, action string) (ModeChange, error) {
	var out ModeChange
	return out, c.do(ctx, http.MethodPost, "/api/v1/groups/"+url.PathEscape(name)+"/"+url.PathEscape(action), nil, &out)
}

// Runners lists the runners, of one group and one state when they are not "".
func (c *Client) Runners(ctx context.Context, group, state string) ([]Runner, error) {
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	if state != "" {
		q.Set("state", state)
	}
	var out struct {
		Runners []Runner `json:"runners"`
	}
	return out.Runners, c.do(ctx, http.MethodGet, "/api/v1/runners", q, &out)
}

// Runner returns one runner's record.
func (c *Client) Runner(ctx context.Context, name string) (Runner, error) {
	var out Runner
	return out, c.do(ctx, http.MethodGet, "/api/v1/runners/"+url.PathEscape(name), nil, &out)
}

// DeleteRunner asks for a runner's deletion; force deletes a busy runner
// (and kills its job).
func (c *Client) DeleteRunner(ctx context.Context, name string, force bool) (Deletion, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var out Deletion
	return out, c.do(ctx, http.MethodDelete, "/api/v1/runners/"+url.PathEscape(name), q, &out)
}

// DLQ lists up to count dead letters, newest first (count <= 0: the API's default).
func (c *Client) DLQ(ctx context.Context, count int) ([]DeadLetter, error) {
	var q url.Values
	if count > 0 {
		q = url.Values{"count": {strconv.Itoa(count)}}
	}
	var out struct {
		DeadLetters []DeadLetter `json:"dead_letters"`
	}
	return out.DeadLetters, c.do(ctx, http.MethodGet, "/api/v1/dlq", q, &out)
}

// RetryDLQ puts a dead letter back on its stream.
func (c *Client) RetryDLQ(ctx context.Context, id string) (Retry, error) {
	var out Retry
	return out, c.do(ctx, http.MethodPost, "/api/v1/dlq/"+url.PathEscape(id)+"/retry", nil, &out)
}

// UnreachableError: the API gave no answer (connection refused, DNS, TLS,
// timeout).
type UnreachableError struct{ Err error }

func (e *UnreachableError) Error() string { return "admin API unreachable: " + e.Err.Error() }

func (e *UnreachableError) Unwrap() error { return e.Err }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "rmctl")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		// url.Error repeats the URL (never the token, which is a header).
		return &UnreachableError{Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Status: resp.StatusCode}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &eb) == nil {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
		}
		return e
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: decode answer (is %s the scheduler?): %w", method, path, c.BaseURL, err)
	}
	return nil
}
