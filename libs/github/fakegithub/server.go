// Package fakegithub is a stateful, in-memory fake of the parts of the GitHub REST
// API and webhooks that a runner manager uses: JIT runner registration, runners,
// runner groups, workflow jobs, the GitHub App (JWT, installation tokens, webhook
// deliveries), and workflow_job webhooks signed like GitHub signs them.
//
// Runners registered through it are driven by the fake runner (package
// libs/github/fakerunner) over the protocol of package runnerapi; tests queue jobs through
// the Go API (QueueJob, CancelJob, ...) or the control API under /_fake/.
// Every response conforms to GitHub's OpenAPI description (see e2e/conformance).
package fakegithub

import (
	"cmp"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// Defaults of Options.
const (
	DefaultInstallationID   int64 = 1
	DefaultHookID           int64 = 1
	DefaultRateLimitPerHour       = 5000
	DefaultWebhookTimeout         = 10 * time.Second
	DefaultRunnerPing             = 15 * time.Second
	DefaultMaxDeliveries          = 5000
)

// Options configure a Server. The zero value is a usable server that sends no
// webhooks and accepts only the tokens in Tokens (that is, none).
type Options struct {
	// WebhookURL receives the webhooks; empty: webhooks are recorded as failed
	// deliveries ("failed to connect") and not sent.
	WebhookURL string
	// WebhookSecret signs the webhooks (X-Hub-Signature-256 and X-Hub-Signature).
	WebhookSecret string
	// WebhookTimeout bounds one delivery; GitHub's is 10 s.
	WebhookTimeout time.Duration

	// AppID and AppPublicKey (PEM, RSA; the App's private key PEM is accepted
	// too) enable GitHub App authentication: JWTs (RS256, iss = AppID) on /app
	// endpoints, installation tokens elsewhere.
	AppID        int64
	AppPublicKey []byte
	// InstallationID is the App's one installation (default 1), on every
	// account, when Installations is empty.
	InstallationID int64
	// Installations, when not empty, are the App's installations: account
	// login (organization or repository owner, any case) → installation id.
	// The App is installed on these accounts only, and an installation's
	// tokens are good for its account only (another's answers 403, as
	// GitHub's "Resource not accessible by integration").
	Installations map[string]int64
	// HookID is the App's webhook id (X-GitHub-Hook-ID), default 1.
	HookID int64

	// Tokens are static tokens accepted on every endpoint (personal access tokens).
	Tokens []string
	// AcceptAnyToken accepts any non-empty Authorization header (development only).
	AcceptAnyToken bool

	// RateLimitPerHour is the budget of API calls per hour (default 5000); past it
	// the fake answers 403 until the window resets, like GitHub.
	RateLimitPerHour int

	// MaxDeliveries is how many deliveries are kept for the deliveries API
	// (default 5000); the oldest are forgotten first.
	MaxDeliveries int

	// Seed seeds the fault and simulation randomness, so a run is reproducible.
	Seed uint64

	// RunnerPingInterval is the keep-alive period of runner streams (default 15 s).
	RunnerPingInterval time.Duration

	// PublicURL is the URL runners use to reach the fake, put in the JIT
	// configurations (e.g. http://fakegithub:8080 on a compose network); empty:
	// the URL the registering client used.
	PublicURL string

	// Logger; nil: discard.
	Logger *slog.Logger

	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Server is the fake GitHub. It is an http.Handler; create it with New and stop
// its background work with Close.
type Server struct {
	opts     Options
	log      *slog.Logger
	appKey   *rsa.PublicKey
	api      *http.ServeMux
	internal *http.ServeMux

	mu sync.Mutex
	// state, guarded by mu
	rng          *rand.Rand
	faults       Faults
	rlUntil      time.Time // rate limited (by fault) until
	budgetUsed   int
	budgetReset  time.Time
	orgs         map[string]*org // by lower-case login
	repos        map[string]*repository
	runners      map[int64]*runner
	gone         map[int64]bool // runner ids that were registered and are gone
	jobs         map[int64]*job
	queued       map[int64]*job         // jobs in status queued
	tokens       map[string]issuedToken // installation tokens
	nextID       int64
	deliveries   []*delivery // oldest first
	stats        counters
	closed       bool
	closeCh      chan struct{}
	wg           sync.WaitGroup
	outbox       []*outgoing
	sending      int // taken from the outbox (popOutgoing) and not yet through deliverWithFaults: held, in flight
	outboxSignal chan struct{}
	httpClient   *http.Client
}

type counters struct {
	apiCalls map[string]int64
	// installCalls: installation id → account → calls made with its tokens.
	installCalls    map[int64]map[string]int64
	foreignCalls    int64
	webhooksSent    int64
	webhooksFailed  int64
	webhooksDropped int64
	faults          map[string]int64
	runnersTotal    int64
}

// New returns a running fake. Call Close when done.
func New(opts Options) (*Server, error) {
	opts.InstallationID = cmp.Or(opts.InstallationID, DefaultInstallationID)
	opts.HookID = cmp.Or(opts.HookID, DefaultHookID)
	opts.RateLimitPerHour = cmp.Or(opts.RateLimitPerHour, DefaultRateLimitPerHour)
	opts.WebhookTimeout = cmp.Or(opts.WebhookTimeout, DefaultWebhookTimeout)
	opts.RunnerPingInterval = cmp.Or(opts.RunnerPingInterval, DefaultRunnerPing)
	opts.MaxDeliveries = cmp.Or(opts.MaxDeliveries, DefaultMaxDeliveries)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:         opts,
		log:          log,
		rng:          rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		orgs:         map[string]*org{},
		repos:        map[string]*repository{},
		runners:      map[int64]*runner{},
		gone:         map[int64]bool{},
		jobs:         map[int64]*job{},
		queued:       map[int64]*job{},
		tokens:       map[string]issuedToken{},
		nextID:       1000,
		closeCh:      make(chan struct{}),
		outboxSignal: make(chan struct{}, 1),
		httpClient:   &http.Client{Timeout: opts.WebhookTimeout},
		stats:        counters{apiCalls: map[string]int64{}, faults: map[string]int64{}, installCalls: map[int64]map[string]int64{}},
	}
	if len(opts.AppPublicKey) > 0 {
		if opts.AppID == 0 {
			return nil, fmt.Errorf("new fake github: AppPublicKey given without AppID")
		}
		key, err := jwt.ParseRSAPublicKeyFromPEM(opts.AppPublicKey)
		if err != nil {
			// the App's private key also gives its public key (one file for both sides)
			priv, perr := jwt.ParseRSAPrivateKeyFromPEM(opts.AppPublicKey)
			if perr != nil {
				return nil, fmt.Errorf("new fake github: parse app public key: %w", err)
			}
			key = &priv.PublicKey
		}
		s.appKey = key
	}
	s.routes()
	s.wg.Add(1)
	go s.sendLoop()
	return s, nil
}

// Close stops the webhook sender and closes every runner stream.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closeCh)
	s.mu.Unlock()
	s.wg.Wait()
}

// routeAuth says which credentials an API route takes.
type routeAuth int

const (
	authInstallation routeAuth = iota // installation token or static token
	authApp                           // App JWT
)

func (s *Server) routes() {
	s.api = http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) { s.api.HandleFunc(pattern, h) }
	// runners, org and repository level
	handle("POST /orgs/{org}/actions/runners/generate-jitconfig", s.generateJITConfig)
	handle("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", s.generateJITConfig)
	handle("GET /orgs/{org}/actions/runners", s.listRunners)
	handle("GET /repos/{owner}/{repo}/actions/runners", s.listRunners)
	handle("GET /orgs/{org}/actions/runners/{runner_id}", s.getRunner)
	handle("GET /repos/{owner}/{repo}/actions/runners/{runner_id}", s.getRunner)
	handle("GET /orgs/{org}/actions/runners/downloads", s.listRunnerDownloads)
	handle("GET /repos/{owner}/{repo}/actions/runners/downloads", s.listRunnerDownloads)
	handle("DELETE /orgs/{org}/actions/runners/{runner_id}", s.deleteRunner)
	handle("DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}", s.deleteRunner)
	handle("GET /orgs/{org}/actions/runners/{runner_id}/labels", s.runnerLabels)
	handle("GET /repos/{owner}/{repo}/actions/runners/{runner_id}/labels", s.runnerLabels)
	// runner groups
	handle("GET /orgs/{org}/actions/runner-groups", s.listGroups)
	handle("POST /orgs/{org}/actions/runner-groups", s.createGroup)
	handle("GET /orgs/{org}/actions/runner-groups/{runner_group_id}", s.getGroup)
	handle("PATCH /orgs/{org}/actions/runner-groups/{runner_group_id}", s.updateGroup)
	handle("DELETE /orgs/{org}/actions/runner-groups/{runner_group_id}", s.deleteGroup)
	handle("GET /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories", s.listGroupRepos)
	handle("PUT /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories", s.setGroupRepos)
	handle("PUT /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories/{repository_id}", s.addGroupRepo)
	handle("DELETE /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories/{repository_id}", s.removeGroupRepo)
	handle("GET /orgs/{org}/actions/runner-groups/{runner_group_id}/runners", s.listGroupRunners)
	handle("PUT /orgs/{org}/actions/runner-groups/{runner_group_id}/runners", s.setGroupRunners)
	// jobs
	handle("GET /repos/{owner}/{repo}/actions/jobs/{job_id}", s.getJob)
	// installations (App JWT)
	handle("GET /orgs/{org}/installation", s.getInstallation)
	handle("GET /repos/{owner}/{repo}/installation", s.getInstallation)
	// the App
	handle("GET /app", s.getApp)
	handle("GET /app/hook/deliveries", s.listDeliveries)
	handle("GET /app/hook/deliveries/{delivery_id}", s.getDelivery)
	handle("POST /app/hook/deliveries/{delivery_id}/attempts", s.redeliver)
	handle("POST /app/installations/{installation_id}/access_tokens", s.createAccessToken)

	s.internal = http.NewServeMux()
	ih := s.internal.HandleFunc
	ih("POST /_fake/jobs", s.ctlQueueJob)
	ih("GET /_fake/jobs", s.ctlListJobs)
	ih("GET /_fake/jobs/{id}", s.ctlGetJob)
	ih("POST /_fake/jobs/{id}/cancel", s.ctlCancelJob)
	ih("GET /_fake/stats", s.ctlStats)
	ih("GET /_fake/faults", s.ctlGetFaults)
	ih("POST /_fake/faults", s.ctlSetFaults)
	ih("GET /_fake/runners", s.ctlListRunners)
	ih("POST /_fake/runners/{name}/disconnect", s.ctlDisconnect)
	ih("GET /_fake/repos/{owner}/{repo}", s.ctlRepo)
	ih("POST /_fake/webhooks/ping", s.ctlPing)
	ih("GET /_runner/{id}/connect", s.runnerConnect)
	ih("POST /_runner/{id}/jobs/{job_id}/complete", s.runnerComplete)
}

// ServeHTTP serves the REST API (also under the GHES prefix /api/v3), the control
// API under /_fake/ and the runner protocol under /_runner/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p, ok := strings.CutPrefix(r.URL.Path, "/api/v3"); ok && (p == "" || p[0] == '/') {
		r2 := r.Clone(context.WithValue(r.Context(), prefixKey{}, "/api/v3"))
		r2.URL.Path = cmp.Or(p, "/")
		r2.URL.RawPath = ""
		r = r2
	}
	if strings.HasPrefix(r.URL.Path, "/_fake/") || strings.HasPrefix(r.URL.Path, "/_runner/") {
		s.internal.ServeHTTP(w, r)
		return
	}
	s.serveAPI(w, r)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	_, pattern := s.api.Handler(r)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	w.Header().Set("X-GitHub-Request-Id", s.requestID())
	route := pattern
	if route == "" {
		route = "unmatched"
	}
	s.mu.Lock()
	s.stats.apiCalls[route]++
	s.mu.Unlock()
	kind := authInstallation
	if strings.HasPrefix(r.URL.Path, "/app") || strings.HasSuffix(pattern, "/installation") {
		kind = authApp
	}
	installation, msg := s.authenticate(r, kind)
	if msg != "" {
		writeError(w, http.StatusUnauthorized, msg)
		return
	}
	if installation != 0 && pattern != "" && !s.countInstallationCall(installation, r) {
		writeError(w, http.StatusForbidden, "Resource not accessible by integration")
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	status, limited := s.rateLimitLocked(w, now)
	fault := ""
	if !limited && s.faults.API5xx > 0 && s.rng.Float64() < s.faults.API5xx {
		fault = "api_5xx"
		s.stats.faults[fault]++
	}
	var code5xx int
	if fault != "" {
		code5xx = []int{500, 502, 503}[s.rng.IntN(3)]
	}
	s.mu.Unlock()
	if limited {
		msg := fmt.Sprintf("API rate limit exceeded for installation ID %d.", s.opts.InstallationID)
		if status == http.StatusTooManyRequests {
			msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
		}
		writeErrorDoc(w, status, msg, "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
		return
	}
	if code5xx != 0 {
		writeError(w, code5xx, "Server Error")
		return
	}
	if pattern == "" {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.api.ServeHTTP(w, r) // matches again, setting the path values
}

// rateLimitLocked sets the X-RateLimit-* headers, spends one call of the budget
// and says whether the call is refused (and with which status).
func (s *Server) rateLimitLocked(w http.ResponseWriter, now time.Time) (int, bool) {
	if now.After(s.budgetReset) {
		s.budgetReset = now.Truncate(time.Second).Add(time.Hour)
		s.budgetUsed = 0
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", fmt.Sprint(s.opts.RateLimitPerHour))
	h.Set("X-RateLimit-Resource", "core")
	if now.Before(s.rlUntil) || (s.faults.APIRateLimit > 0 && s.rng.Float64() < s.faults.APIRateLimit) {
		if !now.Before(s.rlUntil) {
			s.rlUntil = now.Add(time.Duration(max(1, s.faults.APIRateLimitSeconds)) * time.Second)
			s.stats.faults["api_rate_limit"]++
		}
		wait := int(s.rlUntil.Sub(now).Seconds() + 0.999)
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Used", fmt.Sprint(s.opts.RateLimitPerHour))
		h.Set("X-RateLimit-Reset", fmt.Sprint(s.rlUntil.Unix()+1))
		h.Set("Retry-After", fmt.Sprint(max(1, wait)))
		if s.rng.IntN(2) == 0 {
			return http.StatusForbidden, true
		}
		return http.StatusTooManyRequests, true
	}
	if s.budgetUsed >= s.opts.RateLimitPerHour {
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Used", fmt.Sprint(s.budgetUsed))
		h.Set("X-RateLimit-Reset", fmt.Sprint(s.budgetReset.Unix()))
		h.Set("Retry-After", fmt.Sprint(max(1, int(s.budgetReset.Sub(now).Seconds()))))
		return http.StatusForbidden, true
	}
	s.budgetUsed++
	h.Set("X-RateLimit-Remaining", fmt.Sprint(s.opts.RateLimitPerHour-s.budgetUsed))
	h.Set("X-RateLimit-Used", fmt.Sprint(s.budgetUsed))
	h.Set("X-RateLimit-Reset", fmt.Sprint(s.budgetReset.Unix()))
	return 0, false
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%04X:%04X:%06X:%07X:%08X", s.rng.IntN(0xffff), s.rng.IntN(0xffff), s.rng.IntN(0xffffff), s.rng.IntN(0xfffffff), s.opts.Now().Unix())
}

func (s *Server) newIDLocked() int64 {
	s.nextID++
	return s.nextID
}

const docsURL = "https://docs.github.com/rest"

// apiError is GitHub's basic error body.
type apiError struct {
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url"`
	Status           string `json:"status"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeErrorDoc(w, status, msg, docsURL)
}

func writeErrorDoc(w http.ResponseWriter, status int, msg, doc string) {
	writeJSON(w, status, apiError{Message: msg, DocumentationURL: doc, Status: fmt.Sprint(status)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// baseURL is the URL under which the client reached this fake (scheme, host and
// the /api/v3 prefix when it used it).
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	prefix, _ := r.Context().Value(prefixKey{}).(string)
	return scheme + "://" + r.Host + prefix
}

type prefixKey struct{}
