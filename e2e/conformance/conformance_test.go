package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/golang-jwt/jwt/v4"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
	"github.com/runner-manager/runner-manager/libs/github/reference"
)

// routesToCover are the operations the fake must serve, each seen at least once
// with a documented success status.
var routesToCover = []string{
	"POST /orgs/{org}/actions/runners/generate-jitconfig",
	"POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig",
	"GET /orgs/{org}/actions/runners",
	"GET /repos/{owner}/{repo}/actions/runners",
	"GET /orgs/{org}/actions/runners/{runner_id}",
	"GET /repos/{owner}/{repo}/actions/runners/{runner_id}",
	"DELETE /orgs/{org}/actions/runners/{runner_id}",
	"DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}",
	"GET /orgs/{org}/actions/runners/downloads",
	"GET /repos/{owner}/{repo}/actions/runners/downloads",
	"GET /orgs/{org}/actions/runners/{runner_id}/labels",
	"GET /repos/{owner}/{repo}/actions/runners/{runner_id}/labels",
	"GET /orgs/{org}/actions/runner-groups",
	"POST /orgs/{org}/actions/runner-groups",
	"GET /orgs/{org}/actions/runner-groups/{runner_group_id}",
	"PATCH /orgs/{org}/actions/runner-groups/{runner_group_id}",
	"DELETE /orgs/{org}/actions/runner-groups/{runner_group_id}",
	"GET /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories",
	"PUT /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories",
	"PUT /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories/{repository_id}",
	"DELETE /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories/{repository_id}",
	"GET /orgs/{org}/actions/runner-groups/{runner_group_id}/runners",
	"PUT /orgs/{org}/actions/runner-groups/{runner_group_id}/runners",
	"GET /repos/{owner}/{repo}/actions/jobs/{job_id}",
	"GET /orgs/{org}/installation",
	"GET /repos/{owner}/{repo}/installation",
	"GET /app",
	"GET /app/hook/deliveries",
	"GET /app/hook/deliveries/{delivery_id}",
	"POST /app/hook/deliveries/{delivery_id}/attempts",
	"POST /app/installations/{installation_id}/access_tokens",
}

// webhookSchemas maps "event/action" to the x-webhooks key of its schema.
var webhookSchemas = map[string]string{
	"workflow_job/queued":      "workflow-job-queued",
	"workflow_job/in_progress": "workflow-job-in-progress",
	"workflow_job/completed":   "workflow-job-completed",
	"ping/":                    "ping",
}

type spec struct {
	doc      *openapi3.T
	router   routers.Router
	webhooks map[string]*openapi3.Schema
	basic    *openapi3.Schema
}

func init() {
	openapi3.DefineStringFormatValidator("uri", openapi3.NewCallbackValidator(func(v string) error {
		u, err := url.Parse(v)
		if err != nil || u.Scheme == "" {
			return fmt.Errorf("not an absolute URI: %q", v)
		}
		return nil
	}))
}

func loadSpec(t *testing.T, serverURL string) *spec {
	t.Helper()
	raw, err := reference.OpenAPI()
	require.NoError(t, err, "the OpenAPI reference (libs/github/reference, or $RM_REFERENCE_DIR)")
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	require.NoError(t, err)
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)

	var top struct {
		Webhooks map[string]struct {
			Post struct {
				RequestBody struct {
					Content map[string]struct {
						Schema json.RawMessage `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
			} `json:"post"`
		} `json:"x-webhooks"`
	}
	require.NoError(t, json.Unmarshal(raw, &top))
	s := &spec{doc: doc, router: router, webhooks: map[string]*openapi3.Schema{}}
	for name, wh := range top.Webhooks {
		var sch openapi3.Schema
		require.NoError(t, json.Unmarshal(wh.Post.RequestBody.Content["application/json"].Schema, &sch), name)
		s.webhooks[name] = &sch
	}
	for _, key := range webhookSchemas {
		require.Contains(t, s.webhooks, key)
	}
	// GitHub's basic-error, for statuses an operation does not document (401, 404, 429...)
	basic := doc.Paths.Value("/app/installations/{installation_id}/access_tokens").Post.Responses.Status(404).Value.Content.Get("application/json").Schema.Value
	s.basic = &openapi3.Schema{Type: basic.Type, Properties: basic.Properties, Required: []string{"message", "documentation_url"}}
	return s
}

// checker validates every API response passing through it.
type checker struct {
	t      *testing.T
	spec   *spec
	base   http.RoundTripper
	mu     sync.Mutex
	errs   []string
	seen   map[string]bool // "METHOD template" answered with a documented 2xx
	checks int
}

func (c *checker) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil || strings.HasPrefix(req.URL.Path, "/_") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.validate(req, resp, body)
	return resp, nil
}

func (c *checker) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *checker) validate(req *http.Request, resp *http.Response, body []byte) {
	route, params, err := c.spec.router.FindRoute(req)
	if err != nil {
		c.fail("%s %s: no such operation in the reference: %v", req.Method, req.URL.Path, err)
		return
	}
	c.mu.Lock()
	c.checks++
	c.mu.Unlock()
	op := route.Operation
	documented := op.Responses.Status(resp.StatusCode) != nil
	key := req.Method + " " + route.Path
	if !documented {
		// an error status the reference does not list: it must be GitHub's basic error
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			c.fail("%s -> %d: body is not JSON: %v", key, resp.StatusCode, err)
			return
		}
		if resp.StatusCode < 400 {
			c.fail("%s -> %d: undocumented success status", key, resp.StatusCode)
		}
		if err := c.spec.basic.VisitJSON(v, openapi3.MultiErrors()); err != nil {
			c.fail("%s -> %d: not a basic error: %v", key, resp.StatusCode, err)
		}
		return
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		c.fail("%s -> %d: %v", key, resp.StatusCode, err)
		return
	}
	if resp.StatusCode < 300 {
		c.mu.Lock()
		c.seen[key] = true
		c.mu.Unlock()
	}
}

// hooks records the webhooks the fake sends.
type hooks struct {
	mu  sync.Mutex
	got []webhook
}

type webhook struct {
	key  string // event/action
	body []byte
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p struct {
		Action string `json:"action"`
	}
	_ = json.Unmarshal(body, &p)
	h.mu.Lock()
	h.got = append(h.got, webhook{key: r.Header.Get("X-GitHub-Event") + "/" + p.Action, body: body})
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (h *hooks) all() []webhook {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

func validateWebhook(s *spec, w webhook) error {
	name, ok := webhookSchemas[w.key]
	if !ok {
		return fmt.Errorf("webhook %s has no schema in the reference", w.key)
	}
	var v any
	if err := json.Unmarshal(w.body, &v); err != nil {
		return fmt.Errorf("webhook %s: %w", w.key, err)
	}
	if err := s.webhooks[name].VisitJSON(v, openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("webhook %s against %s: %w", w.key, name, err)
	}
	return nil
}

type harness struct {
	t     *testing.T
	url   string
	token string
	jwt   string
	http  *http.Client
}

func (h *harness) do(method, path, auth string, body any, out any) *http.Response {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(h.t, err)
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = h.url + path
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(h.t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.http.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	if out != nil && len(b) > 0 {
		require.NoError(h.t, json.Unmarshal(b, out))
	}
	return resp
}

func (h *harness) api(method, path string, body, out any) int {
	return h.do(method, path, "token "+h.token, body, out).StatusCode
}

func (h *harness) app(method, path string, body, out any) int {
	return h.do(method, path, "Bearer "+h.jwt, body, out).StatusCode
}

func TestFakeConformsToGitHubOpenAPI(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	hk := &hooks{}
	hookSrv := httptest.NewServer(hk)
	defer hookSrv.Close()
	fake, err := fakegithub.New(fakegithub.Options{
		WebhookURL: hookSrv.URL, WebhookSecret: "s3cret", AppID: 1234, InstallationID: 55,
		AppPublicKey: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	})
	require.NoError(t, err)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.Close()

	sp := loadSpec(t, srv.URL)
	chk := &checker{t: t, spec: sp, base: http.DefaultTransport, seen: map[string]bool{}}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer: "1234", IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(time.Now().Add(5 * time.Minute)),
	}).SignedString(key)
	require.NoError(t, err)
	h := &harness{t: t, url: srv.URL, jwt: signed, http: &http.Client{Transport: chk}}

	// the App: token, identity
	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(t, 201, h.app("POST", "/app/installations/55/access_tokens", map[string]any{}, &tok))
	h.token = tok.Token
	require.Equal(t, 200, h.app("GET", "/app", nil, nil))
	require.Equal(t, 404, h.app("POST", "/app/installations/1/access_tokens", nil, nil))
	require.Equal(t, 401, h.do("GET", "/app", "", nil, nil).StatusCode)
	require.Equal(t, 401, h.do("GET", "/orgs/acme/actions/runners", "token wrong", nil, nil).StatusCode)
	require.Equal(t, 200, h.app("GET", "/orgs/acme/installation", nil, nil))
	require.Equal(t, 200, h.app("GET", "/repos/acme/app/installation", nil, nil))
	require.Equal(t, 401, h.api("GET", "/orgs/acme/installation", nil, nil), "the installation routes take the App's JWT")
	fake.SendPing()

	// runner groups
	appRepo, libRepo := fake.Repository("acme", "app"), fake.Repository("acme", "lib")
	var g struct {
		ID int64 `json:"id"`
	}
	require.Equal(t, 201, h.api("POST", "/orgs/acme/actions/runner-groups", map[string]any{"name": "small", "visibility": "selected", "selected_repository_ids": []int64{appRepo}, "allows_public_repositories": true}, &g))
	grp := fmt.Sprintf("/orgs/acme/actions/runner-groups/%d", g.ID)
	require.Equal(t, 200, h.api("GET", grp, nil, nil))
	require.Equal(t, 200, h.api("PATCH", grp, map[string]any{"name": "small", "visibility": "selected", "restricted_to_workflows": false}, nil))
	require.Equal(t, 422, h.api("POST", "/orgs/acme/actions/runner-groups", map[string]any{"name": "small"}, nil))
	require.Equal(t, 204, h.api("PUT", grp+"/repositories", map[string]any{"selected_repository_ids": []int64{appRepo, libRepo}}, nil))
	require.Equal(t, 204, h.api("DELETE", fmt.Sprintf("%s/repositories/%d", grp, libRepo), nil, nil))
	require.Equal(t, 204, h.api("PUT", fmt.Sprintf("%s/repositories/%d", grp, libRepo), nil, nil))
	require.Equal(t, 200, h.api("GET", grp+"/repositories?per_page=1", nil, nil))
	require.Equal(t, 200, h.api("GET", "/orgs/acme/actions/runner-groups?per_page=1", nil, nil))
	require.Equal(t, 200, h.api("GET", "/orgs/acme/actions/runner-groups?visible_to_repository=app", nil, nil))
	require.Equal(t, 404, h.api("GET", "/orgs/acme/actions/runner-groups/999999", nil, nil))

	// runners: JIT at both levels, listing, labels, errors
	var org, repo struct {
		Runner struct {
			ID int64 `json:"id"`
		} `json:"runner"`
		EncodedJITConfig string `json:"encoded_jit_config"`
	}
	require.Equal(t, 201, h.api("POST", "/orgs/acme/actions/runners/generate-jitconfig", map[string]any{"name": "rm-small-1", "runner_group_id": g.ID, "labels": []string{"self-hosted", "linux", "small"}}, &org))
	require.Equal(t, 409, h.api("POST", "/orgs/acme/actions/runners/generate-jitconfig", map[string]any{"name": "rm-small-1", "runner_group_id": g.ID, "labels": []string{"x"}}, nil))
	require.Equal(t, 422, h.api("POST", "/orgs/acme/actions/runners/generate-jitconfig", map[string]any{"runner_group_id": g.ID, "labels": []string{"x"}}, nil))
	require.Equal(t, 404, h.api("POST", "/orgs/acme/actions/runners/generate-jitconfig", map[string]any{"name": "n", "runner_group_id": 999999, "labels": []string{"x"}}, nil))
	require.Equal(t, 201, h.api("POST", "/repos/acme/app/actions/runners/generate-jitconfig", map[string]any{"name": "rm-repo-1", "runner_group_id": 1, "labels": []string{"self-hosted", "repo"}}, &repo))
	require.Equal(t, 201, h.api("POST", "/orgs/acme/actions/runners/generate-jitconfig", map[string]any{"name": "spare", "runner_group_id": 1, "labels": []string{"self-hosted"}}, nil))
	require.Equal(t, 200, h.api("GET", "/orgs/acme/actions/runners?per_page=1&page=2", nil, nil))
	require.Equal(t, 200, h.api("GET", "/orgs/acme/actions/runners?name=rm-small-1", nil, nil))
	require.Equal(t, 200, h.api("GET", "/repos/acme/app/actions/runners", nil, nil))
	require.Equal(t, 200, h.api("GET", "/orgs/acme/actions/runners/downloads", nil, nil))
	require.Equal(t, 200, h.api("GET", "/repos/acme/app/actions/runners/downloads", nil, nil))
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/orgs/acme/actions/runners/%d", org.Runner.ID), nil, nil))
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/orgs/acme/actions/runners/%d/labels", org.Runner.ID), nil, nil))
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/repos/acme/app/actions/runners/%d", repo.Runner.ID), nil, nil))
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/repos/acme/app/actions/runners/%d/labels", repo.Runner.ID), nil, nil))
	require.Equal(t, 404, h.api("GET", "/orgs/acme/actions/runners/1", nil, nil))
	require.Equal(t, 204, h.api("PUT", grp+"/runners", map[string]any{"runners": []int64{org.Runner.ID}}, nil))
	require.Equal(t, 200, h.api("GET", grp+"/runners", nil, nil))

	// a job runs on the org runner: queued, in_progress, completed
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- fakerunner.Run(ctx, fakerunner.Config{JITConfig: org.EncodedJITConfig}) }()
	require.Eventually(t, func() bool { r, _ := fake.RunnerByName("rm-small-1"); return r.Status == "online" }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/orgs/acme/actions/runners/%d", org.Runner.ID), nil, nil))
	job, err := fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "small"}, Duration: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/repos/acme/app/actions/jobs/%d", job.ID), nil, nil))
	require.Eventually(t, func() bool { j, _ := fake.Job(job.ID); return j.Status == fakegithub.StatusInProgress }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/repos/acme/app/actions/jobs/%d", job.ID), nil, nil))
	require.Equal(t, 422, h.api("DELETE", fmt.Sprintf("/orgs/acme/actions/runners/%d", org.Runner.ID), nil, nil), "busy runner")
	require.NoError(t, <-errc)
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/repos/acme/app/actions/jobs/%d", job.ID), nil, nil))
	require.Equal(t, 404, h.api("GET", fmt.Sprintf("/repos/acme/other/actions/jobs/%d", job.ID), nil, nil))
	// and one is cancelled while queued
	cancelled, err := fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"nobody"}})
	require.NoError(t, err)
	_, err = fake.CancelJob(cancelled.ID)
	require.NoError(t, err)
	require.Equal(t, 200, h.api("GET", fmt.Sprintf("/repos/acme/app/actions/jobs/%d", cancelled.ID), nil, nil))

	require.Equal(t, 204, h.api("DELETE", fmt.Sprintf("/repos/acme/app/actions/runners/%d", repo.Runner.ID), nil, nil))
	var list struct {
		Runners []struct {
			ID int64 `json:"id"`
		} `json:"runners"`
	}
	require.Equal(t, 200, h.api("GET", "/orgs/acme/actions/runners?name=spare", nil, &list))
	require.Len(t, list.Runners, 1)
	require.Equal(t, 204, h.api("DELETE", fmt.Sprintf("/orgs/acme/actions/runners/%d", list.Runners[0].ID), nil, nil))
	require.Equal(t, 204, h.api("DELETE", grp, nil, nil))

	// deliveries: wait for the 6 webhooks (ping + 3 + 2), then list, get, redeliver
	require.Eventually(t, func() bool { return len(hk.all()) >= 6 }, 10*time.Second, 5*time.Millisecond)
	var deliveries []struct {
		ID int64 `json:"id"`
	}
	require.Equal(t, 200, h.app("GET", "/app/hook/deliveries?per_page=2", nil, &deliveries))
	require.Equal(t, 200, h.app("GET", "/app/hook/deliveries?status=success", nil, nil))
	for _, d := range fake.Deliveries() {
		require.Equal(t, 200, h.app("GET", fmt.Sprintf("/app/hook/deliveries/%d", d.ID), nil, nil))
	}
	require.Equal(t, 202, h.app("POST", fmt.Sprintf("/app/hook/deliveries/%d/attempts", deliveries[0].ID), nil, nil))
	require.Equal(t, 404, h.app("GET", "/app/hook/deliveries/1", nil, nil))
	require.Eventually(t, func() bool { return len(hk.all()) >= 7 }, 10*time.Second, 5*time.Millisecond)

	// injected failures are GitHub-shaped errors too
	require.NoError(t, fake.SetFaults(fakegithub.Faults{API5xx: 1}))
	require.GreaterOrEqual(t, h.api("GET", "/orgs/acme/actions/runners", nil, nil), 500)
	require.NoError(t, fake.SetFaults(fakegithub.Faults{APIRateLimit: 1}))
	require.Contains(t, []int{403, 429}, h.api("GET", "/orgs/acme/actions/runner-groups", nil, nil))
	require.NoError(t, fake.SetFaults(fakegithub.Faults{}))

	// every response conformed, and every route was exercised
	require.Empty(t, chk.errs, "responses not conforming to the reference")
	var missing []string
	for _, r := range routesToCover {
		if !chk.seen[r] {
			missing = append(missing, r)
		}
	}
	require.Empty(t, missing, "routes never answered with a documented success")
	t.Logf("validated %d responses on %d routes", chk.checks, len(chk.seen))

	// every webhook conforms to its x-webhooks schema
	kinds := map[string]int{}
	for _, w := range hk.all() {
		require.NoError(t, validateWebhook(sp, w))
		kinds[w.key]++
	}
	for k := range webhookSchemas {
		require.NotZero(t, kinds[k], "no %s webhook was validated", k)
	}
	t.Logf("validated webhooks: %v", kinds)
}

// TestSeveralInstallationsConform: a fake with the App installed on two
// organizations answers the installation routes, the token route and the
// calls made with each installation's token (a 403 for another
// organization's) as the reference describes.
func TestSeveralInstallationsConform(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	hk := &hooks{}
	hookSrv := httptest.NewServer(hk)
	defer hookSrv.Close()
	fake, err := fakegithub.New(fakegithub.Options{
		WebhookURL: hookSrv.URL, WebhookSecret: "s3cret", AppID: 1234,
		Installations: map[string]int64{"org-a": 101, "org-b": 202},
		AppPublicKey:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
	})
	require.NoError(t, err)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.Close()

	sp := loadSpec(t, srv.URL)
	chk := &checker{t: t, spec: sp, base: http.DefaultTransport, seen: map[string]bool{}}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer: "1234", IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(time.Now().Add(5 * time.Minute)),
	}).SignedString(key)
	require.NoError(t, err)
	h := &harness{t: t, url: srv.URL, jwt: signed, http: &http.Client{Transport: chk}}

	for org, id := range map[string]int64{"org-a": 101, "org-b": 202} {
		var inst struct {
			ID int64 `json:"id"`
		}
		require.Equal(t, 200, h.app("GET", "/orgs/"+org+"/installation", nil, &inst))
		require.Equal(t, id, inst.ID)
		require.Equal(t, 200, h.app("GET", "/repos/"+org+"/app/installation", nil, &inst))
		require.Equal(t, id, inst.ID)
	}
	require.Equal(t, 404, h.app("GET", "/orgs/org-c/installation", nil, nil))
	require.Equal(t, 404, h.app("GET", "/repos/org-c/app/installation", nil, nil))

	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(t, 201, h.app("POST", "/app/installations/101/access_tokens", map[string]any{}, &tok))
	h.token = tok.Token
	require.Equal(t, 200, h.api("GET", "/orgs/org-a/actions/runners", nil, nil))
	require.Equal(t, 201, h.api("POST", "/orgs/org-a/actions/runners/generate-jitconfig",
		map[string]any{"name": "a-1", "runner_group_id": 1, "labels": []string{"x"}}, nil))
	require.Equal(t, 403, h.api("GET", "/orgs/org-b/actions/runners", nil, nil), "org-a's token on org-b")
	require.Equal(t, 403, h.api("POST", "/orgs/org-b/actions/runners/generate-jitconfig",
		map[string]any{"name": "b-1", "runner_group_id": 1, "labels": []string{"x"}}, nil))
	require.Equal(t, 404, h.app("POST", "/app/installations/55/access_tokens", nil, nil))

	require.Empty(t, chk.errs, "responses not conforming to the reference")
	for _, r := range []string{"GET /orgs/{org}/installation", "GET /repos/{owner}/{repo}/installation", "POST /app/installations/{installation_id}/access_tokens"} {
		require.True(t, chk.seen[r], "%s never answered with a documented success", r)
	}
}

// TestSchemaValidationCatchesAMissingRequiredField proves the webhook and
// response checks are strict: a payload the fake really sent, with one required
// field removed, is rejected.
func TestSchemaValidationCatchesAMissingRequiredField(t *testing.T) {
	hk := &hooks{}
	hookSrv := httptest.NewServer(hk)
	defer hookSrv.Close()
	fake, err := fakegithub.New(fakegithub.Options{WebhookURL: hookSrv.URL, WebhookSecret: "x", AcceptAnyToken: true})
	require.NoError(t, err)
	defer fake.Close()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	sp := loadSpec(t, srv.URL)

	_, err = fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"x"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(hk.all()) == 1 }, 10*time.Second, 5*time.Millisecond)
	w := hk.all()[0]
	require.NoError(t, validateWebhook(sp, w))

	for _, path := range [][]string{{"repository", "full_name"}, {"workflow_job", "runner_name"}, {"sender", "login"}, {"action"}} {
		var v map[string]any
		require.NoError(t, json.Unmarshal(w.body, &v))
		m := v
		for _, k := range path[:len(path)-1] {
			m = m[k].(map[string]any)
		}
		delete(m, path[len(path)-1])
		b, _ := json.Marshal(v)
		err := validateWebhook(sp, webhook{key: w.key, body: b})
		require.Error(t, err, "missing %v must be caught", path)
		var me openapi3.MultiError
		require.True(t, errors.As(err, &me) || strings.Contains(err.Error(), path[len(path)-1]), err.Error())
	}

	// the same for a REST response: a runner without "status"
	chk := &checker{t: t, spec: sp, seen: map[string]bool{}}
	req := httptest.NewRequest("GET", srv.URL+"/orgs/acme/actions/runners/5", nil)
	req.URL, _ = url.Parse(srv.URL + "/orgs/acme/actions/runners/5")
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}}
	chk.validate(req, resp, []byte(`{"id":5,"name":"r","os":"Linux","busy":false,"labels":[]}`))
	require.Len(t, chk.errs, 1)
	require.Contains(t, chk.errs[0], "status")
	chk.errs = nil
	chk.validate(req, resp, []byte(`{"id":5,"name":"r","os":"Linux","status":"online","busy":false,"labels":[]}`))
	require.Empty(t, chk.errs)
}
