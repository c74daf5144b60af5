// Package webhooktest builds realistic, signed GitHub webhook deliveries for
// tests, fakes and load generators: workflow_job payloads shaped like the
// `x-webhooks` schemas of GitHub's OpenAPI description (every required
// property present, nullable ones null where GitHub sends null), the
// X-Hub-Signature-256 header, and the request headers GitHub sends.
//
// It is the one place the project builds GitHub's JSON objects for a
// workflow_job delivery: the workflow job (WorkflowJobObject, also the REST
// API's job object), the repository (RepositoryObject,
// MinimalRepositoryObject), the organization (OrganizationObject) and users
// (UserObject). The fake GitHub (libs/github/fakegithub) maps its model to
// Job and Repo and sends what this package builds.
//
// It uses the standard library only, so any module may import it.
package webhooktest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Workflow job actions of the workflow_job webhook.
const (
	ActionQueued     = "queued"
	ActionWaiting    = "waiting"
	ActionInProgress = "in_progress"
	ActionCompleted  = "completed"
)

// Header names GitHub sets on every delivery.
const (
	HeaderEvent        = "X-GitHub-Event"
	HeaderDelivery     = "X-GitHub-Delivery"
	HeaderSignature256 = "X-Hub-Signature-256"
	HeaderSignature    = "X-Hub-Signature" // legacy SHA-1, still sent by GitHub
	HeaderHookID       = "X-GitHub-Hook-ID"
)

// Job describes one workflow_job delivery. NewJob fills it with values
// consistent with the action; options or direct edits change it; JSON renders it.
type Job struct {
	Action     string
	ID         int64
	RunID      int64
	RunAttempt int64
	// Labels are the job's runs-on labels.
	Labels []string
	// Owner is the repository owner's login (an organization by default).
	Owner        string
	OwnerID      int64
	Repository   string
	RepositoryID int64
	// RepositoryPrivate: the repository is private (visibility "private"),
	// else public.
	RepositoryPrivate bool
	// RepositoryCreatedAt is the repository's creation time; its last push
	// is taken to be the one that started the workflow, just before CreatedAt.
	RepositoryCreatedAt time.Time
	// InstallationID of a GitHub App; 0 leaves the installation property out
	// (an organization or repository webhook).
	InstallationID int64
	// Runner fields; zero values are sent as null (a queued job has no runner).
	RunnerID        int64
	RunnerName      string
	RunnerGroupID   int64
	RunnerGroupName string
	// Status of the job; Conclusion "" is sent as null.
	Status     string
	Conclusion string
	// Name of the job and WorkflowName of its workflow.
	Name         string
	WorkflowName string
	HeadBranch   string
	HeadSHA      string
	CreatedAt    time.Time
	StartedAt    time.Time
	// StartedAt zero is sent as CreatedAt: GitHub reports the creation time
	// until a runner starts the job. CompletedAt zero is sent as null.
	CompletedAt time.Time
	// Steps is the number of steps listed in workflow_job.steps (0 until a
	// runner starts the job). Their states follow the job's (see
	// WorkflowJobObject).
	Steps int
	// Enterprise adds the enterprise property (an organization owned by an
	// enterprise account).
	Enterprise bool
}

// Option changes a Job built by NewJob or Payload.
type Option func(*Job)

// WithRun sets the workflow run id and attempt.
func WithRun(runID, attempt int64) Option {
	return func(j *Job) { j.RunID, j.RunAttempt = runID, attempt }
}

// WithRepository sets the repository owner login, name and id.
func WithRepository(owner, name string, id int64) Option {
	return func(j *Job) { j.Owner, j.Repository, j.RepositoryID = owner, name, id }
}

// WithInstallation adds the GitHub App installation property.
func WithInstallation(id int64) Option { return func(j *Job) { j.InstallationID = id } }

// WithRunner sets the runner that took the job (in_progress, completed).
func WithRunner(id int64, name string, groupID int64, groupName string) Option {
	return func(j *Job) {
		j.RunnerID, j.RunnerName, j.RunnerGroupID, j.RunnerGroupName = id, name, groupID, groupName
	}
}

// WithoutRunner clears the runner fields (a job cancelled while queued).
func WithoutRunner() Option { return WithRunner(0, "", 0, "") }

// WithStatus overrides the status derived from the action.
func WithStatus(status string) Option { return func(j *Job) { j.Status = status } }

// WithConclusion sets the conclusion ("" for null).
func WithConclusion(c string) Option { return func(j *Job) { j.Conclusion = c } }

// WithNames sets the job and workflow names.
func WithNames(job, workflow string) Option {
	return func(j *Job) { j.Name, j.WorkflowName = job, workflow }
}

// WithTimes sets created_at, started_at and completed_at (zero: null).
func WithTimes(created, started, completed time.Time) Option {
	return func(j *Job) { j.CreatedAt, j.StartedAt, j.CompletedAt = created, started, completed }
}

// WithSteps sets how many steps the payload lists; each adds about 200 bytes.
func WithSteps(n int) Option { return func(j *Job) { j.Steps = n } }

// NewJob returns a job in the state GitHub reports with action: a queued job
// has no runner, no conclusion and no completed_at; an in_progress job has a
// runner; a completed job has a runner, the conclusion "success" and
// completed_at. Options apply last.
func NewJob(action string, jobID int64, labels []string, opts ...Option) Job {
	created := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC).Add(time.Duration(jobID%86400) * time.Second)
	j := Job{
		Action:              action,
		ID:                  jobID,
		RunID:               jobID/4 + 9_000_000_000,
		RunAttempt:          1,
		Labels:              append([]string(nil), labels...),
		Owner:               "octo-org",
		OwnerID:             6_811_672,
		Repository:          "octo-repo",
		RepositoryID:        186_853_002,
		RepositoryPrivate:   true,
		RepositoryCreatedAt: time.Date(2024, 3, 11, 8, 2, 17, 0, time.UTC),
		Status:              action,
		Name:                "build (ubuntu, " + strconv.FormatInt(jobID%7, 10) + ")",
		WorkflowName:        "CI",
		HeadBranch:          "main",
		HeadSHA:             fmt.Sprintf("%040x", jobID*2654435761),
		CreatedAt:           created,
		StartedAt:           created,
		Steps:               6,
		Enterprise:          true,
	}
	switch action {
	case ActionQueued, ActionWaiting:
		j.Steps = 0
	case ActionInProgress:
		j.StartedAt = created.Add(7 * time.Second)
		j.RunnerID, j.RunnerName = 23_000+jobID%1000, fmt.Sprintf("runner-manager-linux-small-%06d", jobID%1_000_000)
		j.RunnerGroupID, j.RunnerGroupName = 2, "linux-small"
	case ActionCompleted:
		j.StartedAt = created.Add(7 * time.Second)
		j.CompletedAt = created.Add(3*time.Minute + 12*time.Second)
		j.Conclusion = "success"
		j.RunnerID, j.RunnerName = 23_000+jobID%1000, fmt.Sprintf("runner-manager-linux-small-%06d", jobID%1_000_000)
		j.RunnerGroupID, j.RunnerGroupName = 2, "linux-small"
	}
	for _, o := range opts {
		o(&j)
	}
	return j
}

// Payload returns the JSON body of a workflow_job delivery (7 to 12 KB with
// the default steps, like GitHub's). See NewJob for the defaults.
func Payload(action string, jobID int64, labels []string, opts ...Option) []byte {
	return NewJob(action, jobID, labels, opts...).JSON()
}

// Sign returns the X-Hub-Signature-256 value of body under secret: "sha256=" and
// the hex HMAC-SHA256.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// NewDeliveryID returns a random GUID like GitHub's X-GitHub-Delivery.
func NewDeliveryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Header returns the headers GitHub sends with a delivery of event, signed
// with secret (no signature header when secret is empty).
func Header(event, delivery, secret string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/5f6a4b3")
	h.Set(HeaderEvent, event)
	h.Set(HeaderHookID, "512345678")
	if delivery != "" {
		h.Set(HeaderDelivery, delivery)
	}
	if secret != "" {
		h.Set(HeaderSignature256, Sign(secret, body))
	}
	return h
}

// NewRequest returns a POST of body to url with the headers of Header.
func NewRequest(ctx context.Context, url, event, delivery, secret string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook request to %s: %w", url, err)
	}
	req.Header = Header(event, delivery, secret, body)
	return req, nil
}

// PingPayload returns the body of the ping delivery GitHub sends when an
// organization webhook is created.
func PingPayload(hookID int64) []byte {
	return Hook{
		ID: hookID, Org: "octo-org", OrgID: 6_811_672, URL: "https://runner-manager.example.com/webhook",
		CreatedAt: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
	}.PingJSON()
}

// Hook describes the webhook a ping delivery announces: a GitHub App's
// (AppID set) or an organization's.
type Hook struct {
	ID    int64
	AppID int64
	// Org and OrgID: the organization of an organization webhook.
	Org   string
	OrgID int64
	// URL deliveries go to; Secret: the hook has a secret (shown masked).
	URL       string
	Secret    bool
	CreatedAt time.Time
}

// PingJSON renders the body of the ping delivery of h.
func (h Hook) PingJSON() []byte {
	config := map[string]any{"content_type": "json", "insecure_ssl": "0", "url": h.URL}
	if h.Secret {
		config["secret"] = "********"
	}
	hook := map[string]any{
		"id":         h.ID,
		"name":       "web",
		"active":     true,
		"events":     []string{"workflow_job"},
		"config":     config,
		"updated_at": ts(h.CreatedAt),
		"created_at": ts(h.CreatedAt),
	}
	v := map[string]any{"zen": "Keep it logically awesome.", "hook_id": h.ID, "hook": hook, "sender": Sender()}
	if h.AppID != 0 {
		hook["type"], hook["app_id"], hook["deliveries_url"] = "App", h.AppID, apiBase+"/app/hook/deliveries"
	} else {
		api := apiBase + "/orgs/" + h.Org + "/hooks/" + strconv.FormatInt(h.ID, 10)
		hook["type"], hook["url"], hook["ping_url"], hook["deliveries_url"] = "Organization", api, api+"/pings", api+"/deliveries"
		hook["last_response"] = map[string]any{"code": nil, "status": "unused", "message": nil}
		v["organization"] = OrganizationObject(h.Org, h.OrgID)
	}
	return mustJSON(v)
}

// JSON renders the delivery body: action, workflow_job (WorkflowJobObject),
// repository (RepositoryObject), organization, sender, and enterprise and
// installation when the job has them.
func (j Job) JSON() []byte {
	v := map[string]any{
		"action":       j.Action,
		"workflow_job": WorkflowJobObject(j),
		"repository":   RepositoryObject(j.Repo()),
		"organization": OrganizationObject(j.Owner, j.OwnerID),
		"sender":       Sender(),
	}
	if j.Enterprise {
		v["enterprise"] = enterpriseObject()
	}
	if j.InstallationID != 0 {
		v["installation"] = map[string]any{"id": j.InstallationID, "node_id": NodeID("IntegrationInstallation", j.InstallationID)}
	}
	return mustJSON(v)
}

// Repo returns the descriptor of the job's repository. Its last push is the
// one that started the workflow, 9 seconds before the job was created (never
// before the repository was).
func (j Job) Repo() Repo {
	pushed := j.CreatedAt.Add(-9 * time.Second)
	if pushed.Before(j.RepositoryCreatedAt) {
		pushed = j.RepositoryCreatedAt
	}
	return Repo{
		Owner: j.Owner, OwnerID: j.OwnerID, Name: j.Repository, ID: j.RepositoryID,
		Private: j.RepositoryPrivate, CreatedAt: j.RepositoryCreatedAt, PushedAt: pushed,
	}
}

// WorkflowJobObject returns the workflow job object of j: workflow_job in a
// webhook, and the answer of GET /repos/{owner}/{repo}/actions/jobs/{job_id}.
// Zero values are sent as null where GitHub sends null: conclusion,
// completed_at and the runner fields (a queued job has no runner); a zero
// StartedAt is sent as CreatedAt.
//
// The Steps steps follow the job's state: while it runs, the first step has
// completed, the second runs and the rest are queued, all at StartedAt; once
// it completed, the steps share its run time evenly and all succeed, or, with
// another conclusion, the middle step ends with it and the later ones are
// skipped.
func WorkflowJobObject(j Job) map[string]any {
	repoURL := apiBase + "/repos/" + j.Owner + "/" + j.Repository
	htmlURL := webBase + "/" + j.Owner + "/" + j.Repository
	id, run := strconv.FormatInt(j.ID, 10), strconv.FormatInt(j.RunID, 10)
	started := j.StartedAt
	if started.IsZero() {
		started = j.CreatedAt
	}
	return map[string]any{
		"id":                j.ID,
		"run_id":            j.RunID,
		"workflow_name":     nullString(j.WorkflowName),
		"head_branch":       nullString(j.HeadBranch),
		"run_url":           repoURL + "/actions/runs/" + run,
		"run_attempt":       j.RunAttempt,
		"node_id":           NodeID("Workflow Job", j.ID),
		"head_sha":          j.HeadSHA,
		"url":               repoURL + "/actions/jobs/" + id,
		"html_url":          htmlURL + "/actions/runs/" + run + "/job/" + id,
		"status":            j.Status,
		"conclusion":        nullString(j.Conclusion),
		"created_at":        ts(j.CreatedAt),
		"started_at":        ts(started),
		"completed_at":      nullTime(j.CompletedAt),
		"name":              j.Name,
		"steps":             stepObjects(j.Steps, j.Status, j.Conclusion, started, j.CompletedAt),
		"check_run_url":     repoURL + "/check-runs/" + id,
		"labels":            nonNil(j.Labels),
		"runner_id":         nullInt(j.RunnerID),
		"runner_name":       nullString(j.RunnerName),
		"runner_group_id":   nullInt(j.RunnerGroupID),
		"runner_group_name": nullString(j.RunnerGroupName),
	}
}

// stepObjects returns n steps of a job in status (see WorkflowJobObject).
func stepObjects(n int, status, conclusion string, started, completed time.Time) []map[string]any {
	steps := make([]map[string]any, 0, n)
	failed := n/2 + 1 // the step a job that did not succeed ended in
	var each time.Duration
	if n > 0 && completed.After(started) {
		each = completed.Sub(started) / time.Duration(n)
	}
	for i := 1; i <= n; i++ {
		st := map[string]any{"name": stepName(i, n), "number": i}
		switch {
		case status == "completed":
			c := "success"
			if conclusion != "" && conclusion != "success" {
				switch {
				case i == failed:
					c = conclusion
				case i > failed:
					c = "skipped"
				}
			}
			st["status"], st["conclusion"] = "completed", c
			st["started_at"] = ts(started.Add(time.Duration(i-1) * each))
			st["completed_at"] = ts(started.Add(time.Duration(i) * each))
		case i == 1 && n > 1:
			st["status"], st["conclusion"], st["started_at"], st["completed_at"] = "completed", "success", ts(started), ts(started)
		case i <= 2:
			st["status"], st["conclusion"], st["started_at"], st["completed_at"] = "in_progress", nil, ts(started), nil
		default:
			st["status"], st["conclusion"], st["started_at"], st["completed_at"] = "queued", nil, nil, nil
		}
		steps = append(steps, st)
	}
	return steps
}
