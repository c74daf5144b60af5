// Package github is the GitHub REST client of every service: JIT runner
// configuration, self-hosted runners, runner groups, workflow jobs and
// webhook deliveries, over go-github.
//
// Under go-github sits one transport that owns rate limiting: it reads the
// rate-limit headers of every response, waits instead of failing when GitHub
// rate limits, keeps a reserve of calls for high-priority work
// (WithPriority), and retries 5xx and network errors with exponential
// backoff and jitter. Every call has a deadline (the caller's, the one of
// WithCallDeadline, or Options.CallTimeout, whichever comes first): a wait
// for the rate limit that would end after it is not made, and the call fails
// at once with ErrRateLimited, its reset time in RateLimitReset. A low budget
// never blocks a caller longer than its deadline. Errors are *Error values that
// match one class (ErrNotFound, ErrConflict, ErrRunnerBusy, ErrRateLimited,
// ErrRetryable, ErrPermanent) with errors.Is.
//
// Retried POSTs: generate-jitconfig is retried after a 5xx or a network
// error although the first attempt may have registered the runner; the
// retry then answers 409 (ErrConflict), which the provisioner handles by
// deleting the stale registration or picking another name. Redelivery and
// runner-group creation are retried on the same terms (a duplicate
// redelivery is dropped by the ingress' replay guard; a duplicate group
// creation answers a conflict).
//
// Secrets (tokens, the App's private key, JIT configurations) never appear
// in an error, a log line or a metric.
package github

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v62/github"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Defaults of Options.
const (
	DefaultBaseURL = "https://api.github.com"
	DefaultTimeout = 30 * time.Second
	// DefaultCallTimeout bounds a whole call whose context has no earlier
	// deadline.
	DefaultCallTimeout    = 2 * time.Minute
	DefaultMaxAttempts    = 4
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = 30 * time.Second
	// DefaultSecondaryWait is the first wait after a secondary rate limit
	// that gives no Retry-After (GitHub asks for at least a minute).
	DefaultSecondaryWait = time.Minute
	// DefaultMaxRateLimitWaits bounds how many times one call waits for a
	// rate limit before it fails with ErrRateLimited.
	DefaultMaxRateLimitWaits = 5
	// DefaultPerPage is the page size of every listing.
	DefaultPerPage = 100
)

// Options configure a Client. Either Token, or AppID and PrivateKey must be
// set; the App wins when both are.
type Options struct {
	// BaseURL of the REST API: https://api.github.com (the default),
	// https://HOST/api/v3 for GitHub Enterprise Server, or any URL used as
	// is (a fake: http://127.0.0.1:PORT/).
	BaseURL string
	// Token authenticates as a user or with a personal access token.
	Token config.Secret
	// AppID and PrivateKey (PEM) authenticate as a GitHub App: each call
	// uses a token of the installation on the account (organization or
	// repository owner) it concerns, found through the App
	// (GET /orgs/{org}/installation, GET /repos/{owner}/{repo}/installation)
	// and cached; tokens are cached and refreshed a minute before they
	// expire. InstallationID, when set, is used for every account instead
	// (a deployment of one organization).
	AppID          int64
	InstallationID int64
	PrivateKey     config.Secret
	// Timeout bounds each HTTP attempt (not the waits between attempts,
	// which the call's context bounds). Default DefaultTimeout.
	Timeout time.Duration
	// CallTimeout bounds a whole call (attempts, retries and rate-limit
	// waits) when the caller's context has no earlier deadline: a call that
	// would wait for the rate limit past it fails at once with
	// ErrRateLimited. Default DefaultCallTimeout.
	CallTimeout time.Duration
	// Reserve is the number of calls per rate-limit window that
	// low-priority calls leave to the others: at or below it they wait for
	// the reset, or fail at once with ErrRateLimited when the reset comes
	// after their deadline. 0 keeps no reserve.
	Reserve int
	// MaxAttempts of a call failing with a 5xx or a network error.
	// Default DefaultMaxAttempts.
	MaxAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the exponential backoff
	// between attempts. Defaults DefaultRetryBaseDelay, DefaultRetryMaxDelay.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// Registerer receives the client's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger for retries and rate-limit waits; nil discards.
	Logger *slog.Logger
	// Transport under the client; default http.DefaultTransport.
	Transport http.RoundTripper
	// UserAgent sent with every request; default "runner-manager".
	UserAgent string

	// clock replaces time in tests.
	clock clock
	// secondaryWait replaces DefaultSecondaryWait in tests.
	secondaryWait time.Duration
}

// FromConfig returns the Options of a loaded configuration: base URL,
// reserve and credentials. The caller adds Registerer and Logger.
func FromConfig(c *config.Config) Options {
	return Options{
		BaseURL:        c.GitHub.BaseURL,
		Reserve:        c.GitHub.APIReserve,
		Token:          c.Secrets.GitHubToken,
		AppID:          c.Secrets.GitHubAppID,
		InstallationID: c.Secrets.GitHubAppInstallationID,
		PrivateKey:     c.Secrets.GitHubAppPrivateKey,
	}
}

// Client calls the GitHub REST API. It is safe for concurrent use.
type Client struct {
	// token is the client of a token; nil with an App.
	token *gh.Client
	// apps is authenticated as the App itself (JWT), for /app routes and
	// the installation look-ups; nil when authenticating with a token.
	apps *gh.Client
	// installs are the App's installations; nil with a token.
	installs *installations
	tr       *transport
	log      *slog.Logger
	// callTimeout bounds every call (Options.CallTimeout).
	callTimeout time.Duration
}

// New returns a Client. It fails on a malformed base URL, missing
// credentials or an unparsable private key; it makes no call.
func New(opts Options) (*Client, error) {
	baseURL, err := parseBaseURL(cmp.Or(opts.BaseURL, DefaultBaseURL))
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	clk := opts.clock
	if clk == nil {
		clk = realClock{}
	}
	tr := &transport{
		base:              base,
		basePath:          strings.TrimSuffix(baseURL.Path, "/"),
		reserve:           max(opts.Reserve, 0),
		timeout:           cmp.Or(opts.Timeout, DefaultTimeout),
		maxAttempts:       max(cmp.Or(opts.MaxAttempts, DefaultMaxAttempts), 1),
		baseDelay:         cmp.Or(opts.RetryBaseDelay, DefaultRetryBaseDelay),
		maxDelay:          cmp.Or(opts.RetryMaxDelay, DefaultRetryMaxDelay),
		secondaryWait:     cmp.Or(opts.secondaryWait, DefaultSecondaryWait),
		maxRateLimitWaits: DefaultMaxRateLimitWaits,
		clock:             clk,
		log:               log,
		metrics:           newMetrics(opts.Registerer),
	}
	c := &Client{tr: tr, log: log, callTimeout: cmp.Or(opts.CallTimeout, DefaultCallTimeout)}
	userAgent := cmp.Or(opts.UserAgent, "runner-manager")
	switch {
	case opts.AppID != 0:
		if !opts.PrivateKey.IsSet() {
			return nil, errors.New("an App needs a private key")
		}
		// The App's own calls (its hook, the installation look-ups) spend
		// the App's budget.
		atr, err := ghinstallation.NewAppsTransport(budgetTransport{t: tr, label: budgetApp}, opts.AppID, []byte(opts.PrivateKey.Value()))
		if err != nil {
			// ghinstallation's text names the parse failure, not the key.
			return nil, fmt.Errorf("parse the App private key: %w", err)
		}
		atr.BaseURL = strings.TrimSuffix(baseURL.String(), "/")
		c.apps = newGitHub(&http.Client{Transport: atr}, baseURL, userAgent)
		c.installs = &installations{
			tr: tr, appID: opts.AppID, key: opts.PrivateKey, baseURL: baseURL, userAgent: userAgent,
			override: opts.InstallationID, byAccount: map[string]int64{}, clients: map[int64]*gh.Client{},
		}
	case opts.Token.IsSet():
		c.token = newGitHub(&http.Client{Transport: tr}, baseURL, userAgent).WithAuthToken(opts.Token.Value())
	default:
		return nil, errors.New("no GitHub credentials: set an App (id and private key) or a token")
	}
	return c, nil
}

// Budgets lists the rate-limit windows the client knows, sorted: one per
// installation used (its id), "token" with a token, "app" for the App's
// own calls.
func (c *Client) Budgets() []Budget { return c.tr.budgets() }

func newGitHub(hc *http.Client, base *url.URL, userAgent string) *gh.Client {
	c := gh.NewClient(hc)
	u := *base
	c.BaseURL = &u
	c.UploadURL = &u // unused: the client uploads nothing
	c.UserAgent = userAgent
	return c
}

// parseBaseURL checks the base URL and gives it the trailing slash go-github
// needs. It is used as given: GitHub Enterprise Server's is
// https://HOST/api/v3 (go-github's WithEnterpriseURLs would append /api/v3
// to any host, a fake's among them, so it is not used).
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the URL, which may hold a password.
		return nil, errors.New("GitHub base URL: not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("GitHub base URL %q: want http(s)://host[/path]", u.Redacted())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("GitHub base URL: no credentials, query or fragment allowed")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// Scope is where runners live: an organization (Repo empty, Org set) or a
// repository (Owner and Repo set).
type Scope struct {
	Org   string
	Owner string
	Repo  string
}

// OrgScope is the scope of an organization's runners.
func OrgScope(org string) Scope { return Scope{Org: org} }

// RepoScope is the scope of a repository's runners.
func RepoScope(owner, repo string) Scope { return Scope{Owner: owner, Repo: repo} }

// IsOrg tells whether the scope is an organization.
func (s Scope) IsOrg() bool { return s.Repo == "" }

// String is "org" or "owner/repo".
func (s Scope) String() string {
	if s.IsOrg() {
		return s.Org
	}
	return s.Owner + "/" + s.Repo
}

// path is the scope's API path prefix, without leading slash.
func (s Scope) path() (string, error) {
	if s.IsOrg() {
		if s.Org == "" {
			return "", errors.New("empty scope: set Org, or Owner and Repo")
		}
		return "orgs/" + url.PathEscape(s.Org), nil
	}
	if s.Owner == "" {
		return "", fmt.Errorf("repository scope %q without owner", s.Repo)
	}
	return "repos/" + url.PathEscape(s.Owner) + "/" + url.PathEscape(s.Repo), nil
}

// call runs one operation through go-github and wraps its error with op.
// sensitive keeps GitHub's messages out of the error (JIT, tokens).
// Every call has a deadline: the earliest of the caller's, the one set with
// WithCallDeadline and CallTimeout from now, so that no call waits on the
// rate limit without bound.
func (c *Client) call(ctx context.Context, op string, sensitive bool, fn func(ctx context.Context) error) error {
	deadline, ok := ctx.Value(callDeadlineKey{}).(time.Time)
	if c.callTimeout > 0 {
		if d := time.Now().Add(c.callTimeout); !ok || d.Before(deadline) {
			deadline, ok = d, true
		}
	}
	if ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	ctx, info := withCallInfo(ctx)
	return wrapError(op, fn(ctx), info, sensitive)
}

type callDeadlineKey struct{}

// WithCallDeadline bounds the GitHub calls made with ctx by t, while ctx
// itself may last longer: a pass gives its GitHub calls part of its time and
// keeps the rest for the steps that need no GitHub call.
func WithCallDeadline(ctx context.Context, t time.Time) context.Context {
	if cur, ok := ctx.Value(callDeadlineKey{}).(time.Time); ok && cur.Before(t) {
		return ctx
	}
	return context.WithValue(ctx, callDeadlineKey{}, t)
}

// do sends a request built with go-github and decodes its JSON answer into v.
func (c *Client) do(ctx context.Context, client *gh.Client, method, path string, body, v any) (*gh.Response, error) {
	req, err := client.NewRequest(method, path, body)
	if err != nil {
		return nil, err
	}
	return client.Do(ctx, req, v)
}

// listPages calls fetch for page 1, 2, ... until GitHub gives no next page.
func listPages(ctx context.Context, fetch func(ctx context.Context, page int) (*gh.Response, error)) error {
	for page := 1; ; {
		resp, err := fetch(ctx, page)
		if err != nil {
			return err
		}
		if resp == nil || resp.NextPage <= page {
			return nil
		}
		page = resp.NextPage
	}
}
