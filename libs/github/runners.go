package github

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v62/github"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Runner statuses reported by GitHub.
const (
	RunnerOnline  = "online"
	RunnerOffline = "offline"
)

// Runner is a self-hosted runner registered at GitHub.
type Runner struct {
	ID   int64
	Name string
	OS   string
	// Status is RunnerOnline or RunnerOffline.
	Status string
	// Busy: the runner is running a job.
	Busy   bool
	Labels []string
	// RunnerGroupID, 0 when GitHub did not say.
	RunnerGroupID int64
	Ephemeral     bool
}

// Online tells whether the runner is connected to GitHub.
func (r Runner) Online() bool { return r.Status == RunnerOnline }

// apiRunner is the runner of the REST API: go-github v62's Runner lacks
// runner_group_id and ephemeral, so the runner reads (GetRunner, the
// listing) keep raw routes decoded into it.
type apiRunner struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	OS            string `json:"os"`
	Status        string `json:"status"`
	Busy          bool   `json:"busy"`
	RunnerGroupID int64  `json:"runner_group_id"`
	Ephemeral     bool   `json:"ephemeral"`
	Labels        []struct {
		Name string `json:"name"`
	} `json:"labels"`
}

func (a apiRunner) runner() Runner {
	r := Runner{
		ID: a.ID, Name: a.Name, OS: a.OS, Status: a.Status, Busy: a.Busy,
		RunnerGroupID: a.RunnerGroupID, Ephemeral: a.Ephemeral,
		Labels: make([]string, 0, len(a.Labels)),
	}
	for _, l := range a.Labels {
		r.Labels = append(r.Labels, l.Name)
	}
	return r
}

type apiRunners struct {
	TotalCount int         `json:"total_count"`
	Runners    []apiRunner `json:"runners"`
}

// JITRequest asks for a just-in-time runner configuration.
type JITRequest struct {
	// Name of the runner; unique within the scope.
	Name string
	// RunnerGroupID of the group the runner joins (1: the default group).
	RunnerGroupID int64
	// Labels of the runner, at least one, at most 100.
	Labels []string
	// WorkFolder relative to the runner's directory; GitHub's default "_work".
	WorkFolder string
}

// JITConfig is a just-in-time runner configuration. Encoded is the
// credential the runner starts with: hand it to the instance, never to a
// log, Redis or a stream.
type JITConfig struct {
	RunnerID int64
	Name     string
	Encoded  config.Secret
}

// maxJITLabels is GitHub's limit on the labels of a JIT runner.
const maxJITLabels = 100

// GenerateJITConfig registers a runner and returns its JIT configuration.
// The call has PriorityHigh unless ctx says otherwise. A name already taken
// fails with ErrConflict. The error never holds GitHub's answer.
func (c *Client) GenerateJITConfig(ctx context.Context, scope Scope, req JITRequest) (*JITConfig, error) {
	op := "generate jit config for runner " + req.Name
	switch {
	case req.Name == "":
		return nil, invalid(op, "empty runner name")
	case len(req.Labels) == 0 || len(req.Labels) > maxJITLabels:
		return nil, invalid(op, "%d labels, want 1 to %d", len(req.Labels), maxJITLabels)
	case req.RunnerGroupID <= 0:
		return nil, invalid(op, "runner group id %d", req.RunnerGroupID)
	}
	if _, err := scope.path(); err != nil {
		return nil, invalid(op, "%v", err)
	}
	ctx = withDefaultPriority(ctx, PriorityHigh)
	body := &gh.GenerateJITConfigRequest{Name: req.Name, RunnerGroupID: req.RunnerGroupID, Labels: req.Labels}
	if req.WorkFolder != "" {
		body.WorkFolder = gh.String(req.WorkFolder)
	}
	var out *gh.JITRunnerConfig
	err := c.callAs(ctx, op, true, scopeAccount(scope), func(ctx context.Context, g *gh.Client) error {
		var err error
		if scope.IsOrg() {
			out, _, err = g.Actions.GenerateOrgJITConfig(ctx, url.PathEscape(scope.Org), body)
		} else {
			out, _, err = g.Actions.GenerateRepoJITConfig(ctx, url.PathEscape(scope.Owner), url.PathEscape(scope.Repo), body)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.EncodedJITConfig == nil || *out.EncodedJITConfig == "" || out.Runner == nil || out.Runner.GetID() == 0 {
		return nil, &Error{Op: op, Method: http.MethodPost, Route: "/" + scopeTemplate(scope) + "/actions/runners/generate-jitconfig",
			kind: ErrRetryable, cause: errInvalidBody}
	}
	return &JITConfig{
		RunnerID: out.Runner.GetID(),
		Name:     out.Runner.GetName(),
		Encoded:  config.Secret(*out.EncodedJITConfig),
	}, nil
}

// ListRunners returns every runner of the scope, reading all pages. The
// call has PriorityLow unless ctx says otherwise.
func (c *Client) ListRunners(ctx context.Context, scope Scope) ([]Runner, error) {
	runners, err := c.listRunners(withDefaultPriority(ctx, PriorityLow), scope, "")
	if err != nil {
		return nil, wrapOp("list runners of "+scope.String(), err)
	}
	return runners, nil
}

// FindRunnersByPrefix returns the runners of the scope whose name starts
// with prefix. The call has PriorityLow unless ctx says otherwise.
func (c *Client) FindRunnersByPrefix(ctx context.Context, scope Scope, prefix string) ([]Runner, error) {
	all, err := c.listRunners(withDefaultPriority(ctx, PriorityLow), scope, "")
	if err != nil {
		return nil, wrapOp(fmt.Sprintf("find runners %s* of %s", prefix, scope), err)
	}
	var found []Runner
	for _, r := range all {
		if strings.HasPrefix(r.Name, prefix) {
			found = append(found, r)
		}
	}
	return found, nil
}

// GetRunnerByName returns the runner of that name (GitHub's name filter of
// the runner listing), or ErrNotFound.
func (c *Client) GetRunnerByName(ctx context.Context, scope Scope, name string) (*Runner, error) {
	op := fmt.Sprintf("get runner %s of %s", name, scope)
	if name == "" {
		return nil, invalid(op, "empty runner name")
	}
	runners, err := c.listRunners(ctx, scope, name)
	if err != nil {
		return nil, wrapOp(op, err)
	}
	for _, r := range runners {
		if r.Name == name {
			return &r, nil
		}
	}
	return nil, &Error{Op: op, kind: ErrNotFound}
}

// GetRunner returns the runner of that id, or ErrNotFound.
func (c *Client) GetRunner(ctx context.Context, scope Scope, id int64) (*Runner, error) {
	op := fmt.Sprintf("get runner %d of %s", id, scope)
	prefix, err := scope.path()
	if err != nil {
		return nil, invalid(op, "%v", err)
	}
	var out apiRunner
	err = c.callAs(ctx, op, false, scopeAccount(scope), func(ctx context.Context, g *gh.Client) error {
		// Raw route: v62's GetOrganizationRunner/GetRunner lack runner_group_id and ephemeral.
		_, err := c.do(ctx, g, http.MethodGet, fmt.Sprintf("%s/actions/runners/%d", prefix, id), nil, &out)
		return err
	})
	if err != nil {
		return nil, err
	}
	r := out.runner()
	return &r, nil
}

// DeleteRunner removes a runner's registration. ErrNotFound means it was
// already gone (callers treat it as done); ErrRunnerBusy that it runs a job.
func (c *Client) DeleteRunner(ctx context.Context, scope Scope, id int64) error {
	op := fmt.Sprintf("delete runner %d of %s", id, scope)
	if _, err := scope.path(); err != nil {
		return invalid(op, "%v", err)
	}
	return c.callAs(ctx, op, false, scopeAccount(scope), func(ctx context.Context, g *gh.Client) error {
		var err error
		if scope.IsOrg() {
			_, err = g.Actions.RemoveOrganizationRunner(ctx, url.PathEscape(scope.Org), id)
		} else {
			_, err = g.Actions.RemoveRunner(ctx, url.PathEscape(scope.Owner), url.PathEscape(scope.Repo), id)
		}
		return err
	})
}

// listRunners lists every page of runners, filtered by name when not empty.
// Its errors are wrapped by wrapOp.
func (c *Client) listRunners(ctx context.Context, scope Scope, name string) ([]Runner, error) {
	prefix, err := scope.path()
	if err != nil {
		return nil, invalid("", "%v", err)
	}
	var all []Runner
	err = c.callAs(ctx, "", false, scopeAccount(scope), func(ctx context.Context, g *gh.Client) error {
		all = nil
		return listPages(ctx, func(ctx context.Context, page int) (*gh.Response, error) {
			q := url.Values{"per_page": {fmt.Sprint(DefaultPerPage)}, "page": {fmt.Sprint(page)}}
			if name != "" {
				q.Set("name", name)
			}
			var out apiRunners
			// Raw route: v62's ListOrganizationRunners/ListRunners lack runner_group_id and ephemeral.
			resp, err := c.do(ctx, g, http.MethodGet, prefix+"/actions/runners?"+q.Encode(), nil, &out)
			if err != nil {
				return nil, err
			}
			for _, r := range out.Runners {
				all = append(all, r.runner())
			}
			return resp, nil
		})
	})
	return all, err
}

func scopeTemplate(s Scope) string {
	if s.IsOrg() {
		return "orgs/{org}"
	}
	return "repos/{owner}/{repo}"
}

// wrapOp sets the operation of an *Error made without one.
func wrapOp(op string, err error) error {
	if e, ok := err.(*Error); ok && e.Op == "" {
		e.Op = op
		return e
	}
	return err
}

// RunnerApplication is one runner package GitHub offers for download: the
// archive of the current runner version for an OS and architecture.
type RunnerApplication struct {
	// OS: linux, osx or win.
	OS string `json:"os"`
	// Architecture: x64, arm64 or arm.
	Architecture string `json:"architecture"`
	DownloadURL  string `json:"download_url"`
	Filename     string `json:"filename"`
	// SHA256Checksum of the archive, in hexadecimal; GitHub may omit it.
	SHA256Checksum string `json:"sha256_checksum"`
}

// ListRunnerApplications returns the runner packages GitHub offers the scope
// (GET .../actions/runners/downloads). A VM runner cannot start without
// it, so the call has PriorityHigh (the reserve is for the calls that start
// runners) unless ctx says otherwise; the provisioner makes it about once an
// hour per scope. temp_download_token is not kept: it is a credential.
func (c *Client) ListRunnerApplications(ctx context.Context, scope Scope) ([]RunnerApplication, error) {
	op := "list runner downloads of " + scope.String()
	if _, err := scope.path(); err != nil {
		return nil, invalid(op, "%v", err)
	}
	ctx = withDefaultPriority(ctx, PriorityHigh)
	var out []*gh.RunnerApplicationDownload
	err := c.callAs(ctx, op, false, scopeAccount(scope), func(ctx context.Context, g *gh.Client) error {
		var err error
		if scope.IsOrg() {
			out, _, err = g.Actions.ListOrganizationRunnerApplicationDownloads(ctx, url.PathEscape(scope.Org))
		} else {
			out, _, err = g.Actions.ListRunnerApplicationDownloads(ctx, url.PathEscape(scope.Owner), url.PathEscape(scope.Repo))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	apps := make([]RunnerApplication, 0, len(out))
	for _, a := range out {
		apps = append(apps, RunnerApplication{
			OS: a.GetOS(), Architecture: a.GetArchitecture(), DownloadURL: a.GetDownloadURL(),
			Filename: a.GetFilename(), SHA256Checksum: a.GetSHA256Checksum(),
		})
	}
	return apps, nil
}
