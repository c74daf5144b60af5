package statuspage_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/recent"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/api"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/statuspage"
)

const (
	token  = "s3cret-admin-token"
	host   = "scheduler.example:8081"
	origin = "http://" + host
)

type bundle struct {
	rdb   *redis.Client
	cfg   *config.Config
	keys  keys.Keys
	store *state.Store
	e     *echo.Echo
	logs  *bytes.Buffer
	now   time.Time
}

type options struct {
	waits   statuspage.WaitSource
	budgets statuspage.BudgetSource
	mode    string
}

func setup(t *testing.T, o options) *bundle {
	t.Helper()
	cfg := &config.Config{
		Name: redistest.NewName("page"),
		RunnerGroups: []config.RunnerGroup{
			{Name: "pool", Organization: "acme", MinRunners: 1, MaxRunners: 2, Labels: []string{"linux"},
				Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}}},
			{Name: "gpu", Organization: "acme", Repository: "ml", MaxRunners: 3, Labels: []string{"gpu"},
				Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}}},
		},
	}
	cfg.SetDefaults()
	cfg.Secrets.APIToken = config.Secret(token)
	b := &bundle{rdb: redistest.Client(t), cfg: cfg, keys: keys.New(cfg.Name), e: echo.New(), logs: &bytes.Buffer{},
		now: time.Now()}
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: command.New(cfg, nil), Now: func() time.Time { return b.now }})
	log := slog.New(slog.NewJSONHandler(b.logs, nil))
	srv := api.New(cfg, b.store, log)
	srv.Register(b.e)
	var admin statuspage.Admin = srv
	if o.mode != "" {
		admin = modeAdmin{srv, o.mode}
	}
	statuspage.New(statuspage.Options{
		Token: cfg.Secrets.APIToken, Admin: admin, Store: b.store, Waits: o.waits, Budgets: o.budgets,
		Logger: log, Now: func() time.Time { return b.now },
	}).Register(b.e)
	return b
}

// modeAdmin sets every group's mode, as pause and drain will.
type modeAdmin struct {
	*api.Server
	mode string
}

func (m modeAdmin) Groups(ctx context.Context) ([]api.GroupView, error) {
	gs, err := m.Server.Groups(ctx)
	for i := range gs {
		gs[i].Mode = m.mode
	}
	return gs, err
}

func (b *bundle) serve(req *http.Request) *httptest.ResponseRecorder {
	req.Host = host
	rec := httptest.NewRecorder()
	b.e.ServeHTTP(rec, req)
	return rec
}

func (b *bundle) get(path string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	return b.serve(req)
}

func (b *bundle) post(path, origin string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return b.serve(req)
}

// login logs in through the form and returns the session cookie.
func (b *bundle) login(t *testing.T) *http.Cookie {
	t.Helper()
	rec := b.post("/login", origin, url.Values{"token": {token}})
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	cs := rec.Result().Cookies()
	require.Len(t, cs, 1)
	return cs[0]
}

func requireLoginForm(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Contains(t, rec.Body.String(), `<form method="post" action="/login">`)
	require.NotContains(t, rec.Body.String(), `data-group=`)
}

func requireSecurityHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	h := rec.Header()
	require.Equal(t, statuspage.ContentSecurityPolicy, h.Get("Content-Security-Policy"))
	require.Contains(t, h.Get("Content-Security-Policy"), "script-src 'self';")
	require.NotContains(t, h.Get("Content-Security-Policy"), "unsafe-inline")
	require.Equal(t, "DENY", h.Get("X-Frame-Options"))
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
}

func TestWithoutACookieTheLoginForm(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rec := b.get("/")
	requireLoginForm(t, rec)
	requireSecurityHeaders(t, rec)
	require.Empty(t, rec.Result().Cookies())
	require.Contains(t, rec.Body.String(), `type="password"`)
	// The fragment the script polls is refused too.
	require.Equal(t, http.StatusUnauthorized, b.get("/status.html").Code)
}

func TestLoginSetsASessionCookie(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rec := b.post("/login", origin, url.Values{"token": {token}})
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, "/", rec.Header().Get("Location"), "the redirect carries no token")
	requireSecurityHeaders(t, rec)
	cs := rec.Result().Cookies()
	require.Len(t, cs, 1)
	c := cs[0]
	require.Equal(t, statuspage.CookieName, c.Name)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.False(t, c.Secure, "plain HTTP: a Secure cookie would never come back")
	require.Equal(t, "/", c.Path)
	require.Positive(t, c.MaxAge)
	require.NotContains(t, c.Value, token, "the cookie is not the token")

	page := b.get("/", c)
	require.Equal(t, http.StatusOK, page.Code)
	requireSecurityHeaders(t, page)
	require.Contains(t, page.Body.String(), `data-group="pool"`)
	require.NotContains(t, page.Body.String(), token)
	require.Equal(t, http.StatusOK, b.get("/status.html", c).Code)
}

func TestLoginOverTLSSetsASecureCookie(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	req := httptest.NewRequest(http.MethodPost, "https://"+host+"/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://"+host)
	rec := b.serve(req)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.True(t, rec.Result().Cookies()[0].Secure)
}

func TestWrongTokenIs401WithoutACookie(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	for _, tok := range []string{"wrong", "", token + "x"} {
		rec := b.post("/login", origin, url.Values{"token": {tok}})
		requireLoginForm(t, rec)
		require.Contains(t, rec.Body.String(), "Wrong token.")
		require.Empty(t, rec.Result().Cookies(), "token %q", tok)
		require.Empty(t, rec.Header().Get("Location"))
	}
	require.NotContains(t, b.logs.String(), token)
}

func TestATokenInTheURLIsNeverRead(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rec := b.post("/login?token="+token, origin, nil)
	requireLoginForm(t, rec)
	require.Empty(t, rec.Result().Cookies())
	requireLoginForm(t, b.get("/?token="+token))
}

func TestLoginAndLogoutCheckTheOrigin(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	for _, o := range []string{"", "null", "http://evil.example", "http://" + host + ".evil.example"} {
		rec := b.post("/login", o, url.Values{"token": {token}})
		require.Equal(t, http.StatusForbidden, rec.Code, "origin %q", o)
		require.Empty(t, rec.Result().Cookies())
		require.Equal(t, http.StatusForbidden, b.post("/logout", o, nil).Code)
	}
	// Chromium sends Origin "null" for a same-origin form under some
	// referrer policies; Sec-Fetch-Site, set by the browser only, decides.
	for site, want := range map[string]int{"same-origin": http.StatusSeeOther, "cross-site": http.StatusForbidden, "same-site": http.StatusForbidden} {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "null")
		req.Header.Set("Sec-Fetch-Site", site)
		require.Equal(t, want, b.serve(req).Code, "Origin null, Sec-Fetch-Site %s", site)
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	req := httptest.NewRequest(http.MethodGet, "/status.html", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := b.serve(req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `data-group="gpu"`)
	req = httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	requireLoginForm(t, b.serve(req))
}

func TestForgedAndExpiredSessionsAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	c := b.login(t)
	exp, _, _ := strings.Cut(c.Value, ".")
	for _, v := range []string{"", "x", exp, exp + ".", "9999999999." + strings.SplitN(c.Value, ".", 2)[1], c.Value + "A"} {
		requireLoginForm(t, b.get("/", &http.Cookie{Name: statuspage.CookieName, Value: v}))
	}
	require.Equal(t, http.StatusOK, b.get("/", c).Code)
	b.now = b.now.Add(statuspage.DefaultSessionTTL + time.Second)
	requireLoginForm(t, b.get("/", c))
}

func TestLogoutClearsTheCookie(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.login(t)
	rec := b.post("/logout", origin, nil)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, "/", rec.Header().Get("Location"))
	cs := rec.Result().Cookies()
	require.Len(t, cs, 1)
	require.Equal(t, statuspage.CookieName, cs[0].Name)
	require.Empty(t, cs[0].Value)
	require.Negative(t, cs[0].MaxAge)
}

func TestStaticFilesNeedNoLogin(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	for path, typ := range map[string]string{"/static/status.js": "javascript", "/static/status.css": "text/css"} {
		rec := b.get(path)
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.Contains(t, rec.Header().Get("Content-Type"), typ)
		requireSecurityHeaders(t, rec)
	}
	// Every script of the page is a file: nothing inline for the CSP to block.
	c := b.login(t)
	body := b.get("/", c).Body.String()
	require.Equal(t, 1, strings.Count(body, "<script"))
	require.Contains(t, body, `<script src="/static/status.js" defer></script>`)
	require.NotContains(t, body, "style=")
}

type fakeWaits []statuspage.GroupWaits

func (f fakeWaits) Waits(context.Context, time.Duration) ([]statuspage.GroupWaits, error) {
	return f, nil
}

type fakeBudgets []statuspage.Budget

func (f fakeBudgets) Budgets() []statuspage.Budget { return f }

// The page shows what the admin API says, the queued jobs oldest first with
// their wait, the waits of the source, the recent failures and the budget.
func TestThePageShowsTheFleet(t *testing.T) {
	t.Parallel()
	reset := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	b := setup(t, options{
		waits:   fakeWaits{{Group: "pool", Jobs: 30, JobsPerMinute: 0.5, WaitP50: 12 * time.Second, WaitP95: 95 * time.Second}},
		budgets: fakeBudgets{{Installation: "42", Remaining: 4321, Limit: 5000, Reset: reset}},
		mode:    "draining",
	})
	ctx := context.Background()
	g, ok := command.Group(b.cfg, "pool")
	require.True(t, ok)
	// Three jobs for a group of at most 2: two runners pending, one job more.
	for i, age := range []time.Duration{3 * time.Minute, 2 * time.Minute, time.Minute} {
		_, err := b.store.Queued(ctx, g, int64(100+i), b.now.Add(-age))
		require.NoError(t, err)
	}
	require.NoError(t, recent.Push(ctx, b.rdb, b.keys.RecentCreateFailures(), recent.Entry{Group: "pool", Reason: "capacity", Time: b.now}))
	require.NoError(t, recent.Push(ctx, b.rdb, b.keys.RecentCreateFailures(), recent.Entry{Group: "pool", Reason: "capacity", Time: b.now.Add(-2 * time.Hour)}))
	require.NoError(t, recent.Push(ctx, b.rdb, b.keys.RecentRefusals(), recent.Entry{Group: "gpu", Reason: "labels", Time: b.now}))
	require.NoError(t, recent.Push(ctx, b.rdb, b.keys.RecentRefusals(), recent.Entry{Group: "forged", Reason: "unknown_group", Time: b.now}))

	c := b.login(t)
	body := b.get("/", c).Body.String()
	views, err := api.New(b.cfg, b.store, slog.Default()).Groups(ctx)
	require.NoError(t, err)
	pool := section(t, body, "pool")
	require.Contains(t, pool, `<b data-count="total">`+itoa(views[0].Total)+`</b>`)
	require.Contains(t, pool, `<b data-count="demand">`+itoa(views[0].Demand)+`</b>`)
	require.Contains(t, pool, `<b data-count="pending">`+itoa(views[0].Runners[state.Pending])+`</b>`)
	require.Contains(t, pool, `<span data-count="max">2</span>`)
	require.Contains(t, pool, `<span data-count="min">1</span>`)
	require.Contains(t, pool, `data-mode="draining"`)
	// Queued jobs, oldest first, with their wait.
	q := []int{strings.Index(pool, `data-job="100"`), strings.Index(pool, `data-job="101"`), strings.Index(pool, `data-job="102"`)}
	require.True(t, q[0] >= 0 && q[0] < q[1] && q[1] < q[2], "oldest first: %v", q)
	require.Contains(t, pool, "waiting 3m00s")
	require.Contains(t, pool, `<b data-count="jobs-per-minute">0.5</b> jobs/min (30 jobs) · wait p50 <b>12s</b> · p95 <b>1m35s</b>`)
	require.Contains(t, pool, "Create failures: capacity <b>1</b>", "only the last hour")
	require.Contains(t, pool, "Refused commands: none")

	gpu := section(t, body, "gpu")
	require.Contains(t, gpu, "no data", "no waits for this group")
	require.Contains(t, gpu, "Refused commands: labels <b>1</b>")
	require.Contains(t, body, "Refused commands of no configured group: unknown_group <b>1</b>")
	require.Contains(t, body, `42: <b data-count="remaining">4321</b> of 5000 calls left, reset 03:04:05 UTC`)
	require.Contains(t, body, `<b data-count="dlq">0</b>`)
}

func TestWithoutSourcesNoData(t *testing.T) {
	t.Parallel()
	b := setup(t, options{budgets: fakeBudgets(nil)})
	body := b.get("/", b.login(t)).Body.String()
	require.Equal(t, 2, strings.Count(body, "Jobs per minute and waits: no data"))
	require.Contains(t, body, "no data yet (no GitHub call answered)")
	require.Equal(t, 2, strings.Count(body, `data-mode="active"`), "every group shows its mode, active by default")
}

// section is the HTML of one group's section.
func section(t *testing.T, body, group string) string {
	t.Helper()
	i := strings.Index(body, `<section class="group" data-group="`+group+`">`)
	require.GreaterOrEqual(t, i, 0, "no section of group %s", group)
	j := strings.Index(body[i:], "</section>")
	require.Positive(t, j)
	return body[i : i+j]
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
