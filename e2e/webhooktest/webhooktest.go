// Package webhooktest builds realistic, signed GitHub webhook deliveries for
// tests, fakes and load generators: workflow_job payloads shaped like the
// `x-webhooks` schemas of GitHub's OpenAPI description (every required
// property present, nullable ones null where GitHub sends null), the
// X-Hub-Signature-256 header, and the request headers GitHub sends.
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
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	// CompletedAt zero is sent as null.
	CompletedAt time.Time
	// Steps is the number of steps listed in workflow_job.steps.
	Steps int
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
		Action:       action,
		ID:           jobID,
		RunID:        jobID/4 + 9_000_000_000,
		RunAttempt:   1,
		Labels:       append([]string(nil), labels...),
		Owner:        "octo-org",
		OwnerID:      6_811_672,
		Repository:   "octo-repo",
		RepositoryID: 186_853_002,
		Status:       action,
		Name:         "build (ubuntu, " + strconv.FormatInt(jobID%7, 10) + ")",
		WorkflowName: "CI",
		HeadBranch:   "main",
		HeadSHA:      fmt.Sprintf("%040x", jobID*2654435761),
		CreatedAt:    created,
		StartedAt:    created,
		Steps:        6,
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

// PingPayload returns the body of the ping delivery GitHub sends when a
// webhook is created.
func PingPayload(hookID int64) []byte {
	o := org("octo-org", 6_811_672)
	v := map[string]any{
		"zen":     "Keep it logically awesome.",
		"hook_id": hookID,
		"hook": map[string]any{
			"type":   "Organization",
			"id":     hookID,
			"name":   "web",
			"active": true,
			"events": []string{"workflow_job"},
			"config": map[string]any{
				"content_type": "json",
				"insecure_ssl": "0",
				"url":          "https://runner-manager.example.com/webhook",
			},
			"updated_at":     "2026-11-27T09:00:00Z",
			"created_at":     "2026-11-27T09:00:00Z",
			"url":            "https://api.github.com/orgs/octo-org/hooks/" + strconv.FormatInt(hookID, 10),
			"ping_url":       "https://api.github.com/orgs/octo-org/hooks/" + strconv.FormatInt(hookID, 10) + "/pings",
			"deliveries_url": "https://api.github.com/orgs/octo-org/hooks/" + strconv.FormatInt(hookID, 10) + "/deliveries",
			"last_response":  map[string]any{"code": nil, "status": "unused", "message": nil},
		},
		"organization": o,
		"sender":       user("octocat", 1, "User"),
	}
	return mustJSON(v)
}

// JSON renders the delivery body.
func (j Job) JSON() []byte {
	repoURL := "https://api.github.com/repos/" + j.Owner + "/" + j.Repository
	htmlURL := "https://github.com/" + j.Owner + "/" + j.Repository
	jobURL := repoURL + "/actions/jobs/" + strconv.FormatInt(j.ID, 10)
	runURL := repoURL + "/actions/runs/" + strconv.FormatInt(j.RunID, 10)

	steps := make([]map[string]any, 0, j.Steps)
	for i := 1; i <= j.Steps; i++ {
		st := map[string]any{
			"name":         stepName(i, j.Steps),
			"number":       i,
			"status":       "completed",
			"conclusion":   "success",
			"started_at":   ts(j.StartedAt.Add(time.Duration(i) * time.Second)),
			"completed_at": ts(j.StartedAt.Add(time.Duration(i+1) * time.Second)),
		}
		if j.Status != "completed" && i > j.Steps/2 {
			st["status"], st["conclusion"], st["completed_at"] = "queued", nil, nil
			if i == j.Steps/2+1 {
				st["status"] = "in_progress"
			} else {
				st["started_at"] = nil
			}
		}
		steps = append(steps, st)
	}

	wj := map[string]any{
		"id":                j.ID,
		"run_id":            j.RunID,
		"workflow_name":     nullString(j.WorkflowName),
		"head_branch":       nullString(j.HeadBranch),
		"run_url":           runURL,
		"run_attempt":       j.RunAttempt,
		"node_id":           "CR_kwDOCyM" + strconv.FormatInt(j.ID, 36),
		"head_sha":          j.HeadSHA,
		"url":               jobURL,
		"html_url":          htmlURL + "/actions/runs/" + strconv.FormatInt(j.RunID, 10) + "/job/" + strconv.FormatInt(j.ID, 10),
		"status":            j.Status,
		"conclusion":        nullString(j.Conclusion),
		"created_at":        ts(j.CreatedAt),
		"started_at":        ts(j.StartedAt),
		"completed_at":      nullTime(j.CompletedAt),
		"name":              j.Name,
		"steps":             steps,
		"check_run_url":     repoURL + "/check-runs/" + strconv.FormatInt(j.ID, 10),
		"labels":            nonNil(j.Labels),
		"runner_id":         nullInt(j.RunnerID),
		"runner_name":       nullString(j.RunnerName),
		"runner_group_id":   nullInt(j.RunnerGroupID),
		"runner_group_name": nullString(j.RunnerGroupName),
	}
	v := map[string]any{
		"action":       j.Action,
		"workflow_job": wj,
		"repository":   repository(j),
		"organization": org(j.Owner, j.OwnerID),
		"enterprise": map[string]any{
			"id": 1_234, "slug": "octo-enterprise", "name": "Octo Enterprise", "node_id": "MDEwOkVudGVycHJpc2Ux",
			"avatar_url": "https://avatars.githubusercontent.com/b/1234?v=4", "description": nil,
			"website_url": nil, "html_url": "https://github.com/enterprises/octo-enterprise",
			"created_at": "2019-05-01T12:00:00Z", "updated_at": "2026-01-01T12:00:00Z",
		},
		"sender": user("octocat", 583_231, "User"),
	}
	if j.InstallationID != 0 {
		v["installation"] = map[string]any{"id": j.InstallationID, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u" + strconv.FormatInt(j.InstallationID, 36)}
	}
	return mustJSON(v)
}

func repository(j Job) map[string]any {
	api := "https://api.github.com/repos/" + j.Owner + "/" + j.Repository
	r := map[string]any{
		"id":                          j.RepositoryID,
		"node_id":                     "R_kgDOCyM" + strconv.FormatInt(j.RepositoryID, 36),
		"name":                        j.Repository,
		"full_name":                   j.Owner + "/" + j.Repository,
		"private":                     true,
		"owner":                       user(j.Owner, j.OwnerID, "Organization"),
		"html_url":                    "https://github.com/" + j.Owner + "/" + j.Repository,
		"description":                 "The " + j.Repository + " service, its tests and its deployment.",
		"fork":                        false,
		"url":                         api,
		"homepage":                    nil,
		"language":                    "Go",
		"forks":                       3,
		"forks_count":                 3,
		"stargazers_count":            42,
		"watchers_count":              42,
		"watchers":                    42,
		"size":                        18_734,
		"default_branch":              "main",
		"open_issues":                 17,
		"open_issues_count":           17,
		"is_template":                 false,
		"topics":                      []string{"ci", "golang"},
		"has_issues":                  true,
		"has_projects":                true,
		"has_wiki":                    false,
		"has_pages":                   false,
		"has_downloads":               true,
		"has_discussions":             false,
		"archived":                    false,
		"disabled":                    false,
		"visibility":                  "private",
		"mirror_url":                  nil,
		"license":                     map[string]any{"key": "mit", "name": "MIT License", "spdx_id": "MIT", "url": "https://api.github.com/licenses/mit", "node_id": "MDc6TGljZW5zZTEz"},
		"pushed_at":                   "2026-11-27T09:29:51Z",
		"created_at":                  "2024-03-11T08:02:17Z",
		"updated_at":                  "2026-11-27T09:29:55Z",
		"allow_forking":               false,
		"web_commit_signoff_required": false,
		"git_url":                     "git://github.com/" + j.Owner + "/" + j.Repository + ".git",
		"ssh_url":                     "git@github.com:" + j.Owner + "/" + j.Repository + ".git",
		"clone_url":                   "https://github.com/" + j.Owner + "/" + j.Repository + ".git",
		"svn_url":                     "https://github.com/" + j.Owner + "/" + j.Repository,
	}
	for _, u := range []string{
		"archive_url:/{archive_format}{/ref}", "assignees_url:/assignees{/user}", "blobs_url:/git/blobs{/sha}",
		"branches_url:/branches{/branch}", "collaborators_url:/collaborators{/collaborator}",
		"comments_url:/comments{/number}", "commits_url:/commits{/sha}", "compare_url:/compare/{base}...{head}",
		"contents_url:/contents/{+path}", "contributors_url:/contributors", "deployments_url:/deployments",
		"downloads_url:/downloads", "events_url:/events", "forks_url:/forks", "git_commits_url:/git/commits{/sha}",
		"git_refs_url:/git/refs{/sha}", "git_tags_url:/git/tags{/sha}", "hooks_url:/hooks",
		"issue_comment_url:/issues/comments{/number}", "issue_events_url:/issues/events{/number}",
		"issues_url:/issues{/number}", "keys_url:/keys{/key_id}", "labels_url:/labels{/name}",
		"languages_url:/languages", "merges_url:/merges", "milestones_url:/milestones{/number}",
		"notifications_url:/notifications{?since,all,participating}", "pulls_url:/pulls{/number}",
		"releases_url:/releases{/id}", "stargazers_url:/stargazers", "statuses_url:/statuses/{sha}",
		"subscribers_url:/subscribers", "subscription_url:/subscription", "tags_url:/tags",
		"teams_url:/teams", "trees_url:/git/trees{/sha}",
	} {
		k, path, _ := strings.Cut(u, ":")
		r[k] = api + path
	}
	return r
}

func user(login string, id int64, typ string) map[string]any {
	api := "https://api.github.com/users/" + login
	return map[string]any{
		"login":               login,
		"id":                  id,
		"node_id":             "MDQ6VXNlcj" + strconv.FormatInt(id, 36),
		"avatar_url":          "https://avatars.githubusercontent.com/u/" + strconv.FormatInt(id, 10) + "?v=4",
		"gravatar_id":         "",
		"url":                 api,
		"html_url":            "https://github.com/" + login,
		"followers_url":       api + "/followers",
		"following_url":       api + "/following{/other_user}",
		"gists_url":           api + "/gists{/gist_id}",
		"starred_url":         api + "/starred{/owner}{/repo}",
		"subscriptions_url":   api + "/subscriptions",
		"organizations_url":   api + "/orgs",
		"repos_url":           api + "/repos",
		"events_url":          api + "/events{/privacy}",
		"received_events_url": api + "/received_events",
		"type":                typ,
		"user_view_type":      "public",
		"site_admin":          false,
	}
}

func org(login string, id int64) map[string]any {
	api := "https://api.github.com/orgs/" + login
	return map[string]any{
		"login":              login,
		"id":                 id,
		"node_id":            "MDEyOk9yZ2FuaXphdGlvbj" + strconv.FormatInt(id, 36),
		"url":                api,
		"repos_url":          api + "/repos",
		"events_url":         api + "/events",
		"hooks_url":          api + "/hooks",
		"issues_url":         api + "/issues",
		"members_url":        api + "/members{/member}",
		"public_members_url": api + "/public_members{/member}",
		"avatar_url":         "https://avatars.githubusercontent.com/u/" + strconv.FormatInt(id, 10) + "?v=4",
		"description":        "The Octo organization.",
	}
}

func stepName(i, n int) string {
	switch {
	case i == 1:
		return "Set up job"
	case i == n:
		return "Complete job"
	case i == 2:
		return "Run actions/checkout@v4"
	case i == n-1:
		return "Post Run actions/checkout@v4"
	default:
		return "Run make test-" + strconv.Itoa(i)
	}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("webhooktest: " + err.Error()) // only maps of plain values: cannot fail
	}
	return b
}
