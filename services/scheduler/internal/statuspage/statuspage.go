// Package statuspage serves the scheduler's read-only status page at / of
// the admin listener (docs/operations.md, "Status page"): per runner group a
// bar of the runners by state against max_runners and min_runners, the
// queued jobs with their wait, the jobs per minute and the wait p50/p95 of
// the last hour, the recent failures; the dead letters and the GitHub
// budget. It refreshes itself every few seconds (the embedded script polls
// /status.html, the same template's fragment).
//
// It is guarded by the admin API's token: a Bearer header, or a session
// cookie set by the login form (POST /login, the token in the body, once).
// The cookie is HttpOnly and SameSite=Strict (Secure over TLS) and holds an
// expiry and an HMAC keyed by the token, never the token; the login and
// logout forms check Origin. No token travels in a URL or a redirect.
package statuspage

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/api"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// Defaults of Options.
const (
	DefaultRefresh    = 5 * time.Second
	DefaultSessionTTL = 12 * time.Hour
	// readTimeout bounds the reads of one page.
	readTimeout = 5 * time.Second
)

// CookieName is the session cookie of the page.
const CookieName = "rm_status_session"

// ContentSecurityPolicy of every answer: only the page's own script and
// stylesheet, no inline script or style, no framing, forms post to itself.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Admin is what the page reads through the admin API (*api.Server).
type Admin interface {
	Groups(ctx context.Context) ([]api.GroupView, error)
	DeadLetters(ctx context.Context, count int64) ([]api.DeadLetterView, error)
}

// Options configure a Page.
type Options struct {
	// Token is the admin API's token (RM_API_TOKEN); unset, every request
	// gets the login form and no login succeeds.
	Token config.Secret
	// Admin reads the groups and the dead letters. Required.
	Admin Admin
	// Store reads the queued jobs and the recent failures. Required.
	Store *state.Store
	// Waits, when set, gives the jobs per minute and the waits; nil shows
	// "no data".
	Waits WaitSource
	// Budgets, when set, gives the GitHub budget per installation.
	Budgets BudgetSource
	// Refresh is the time between two refreshes; default DefaultRefresh.
	Refresh time.Duration
	// SessionTTL is how long a login lasts; default DefaultSessionTTL.
	SessionTTL time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now; default time.Now.
	Now func() time.Time
}

// Page serves the status page.
type Page struct {
	opts  Options
	tmpl  *template.Template
	key   []byte // HMAC key of the session cookies; nil without a token
	token []byte // SHA-256 of the token; nil without one
}

// New returns the page.
func New(opts Options) *Page {
	opts.Refresh = cmp.Or(opts.Refresh, DefaultRefresh)
	opts.SessionTTL = cmp.Or(opts.SessionTTL, DefaultSessionTTL)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Page{opts: opts, tmpl: template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))}
	if opts.Token.IsSet() {
		sum := sha256.Sum256([]byte(opts.Token.Value()))
		p.token = sum[:]
		key := sha256.Sum256([]byte("runner-manager status page session\x00" + opts.Token.Value()))
		p.key = key[:]
	}
	return p
}

// Register mounts the page on e: GET /, GET /status.html, POST /login,
// POST /logout and GET /static/*.
func (p *Page) Register(e *echo.Echo) {
	g := e.Group("", securityHeaders)
	g.GET("/", p.index)
	g.GET("/status.html", p.fragment)
	g.POST("/login", p.login)
	g.POST("/logout", p.logout)
	static, _ := fs.Sub(staticFS, "static")
	g.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", http.FileServerFS(static))))
}

func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}

func (p *Page) index(c echo.Context) error {
	if !p.authenticated(c) {
		return p.loginForm(c, http.StatusUnauthorized, "")
	}
	return p.render(c, "page")
}

func (p *Page) fragment(c echo.Context) error {
	if !p.authenticated(c) {
		return c.String(http.StatusUnauthorized, "log in again\n")
	}
	return p.render(c, "status")
}

func (p *Page) render(c echo.Context, name string) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readTimeout)
	defer cancel()
	d, err := p.collect(ctx)
	if err != nil {
		p.opts.Logger.Error("status page: read failed", "error", err)
		return c.String(http.StatusInternalServerError, "reading the state failed: see the scheduler's log\n")
	}
	return p.execute(c, http.StatusOK, name, d)
}

func (p *Page) execute(c echo.Context, status int, name string, v any) error {
	var b strings.Builder
	if err := p.tmpl.ExecuteTemplate(&b, name, v); err != nil {
		p.opts.Logger.Error("status page: template failed", "template", name, "error", err)
		return c.String(http.StatusInternalServerError, "rendering the page failed\n")
	}
	return c.HTML(status, b.String())
}

func (p *Page) loginForm(c echo.Context, status int, msg string) error {
	return p.execute(c, status, "login", map[string]string{"Error": msg})
}

// login checks the token posted by the form (in the body only: a token in
// the URL is never read) and sets the session cookie.
func (p *Page) login(c echo.Context) error {
	req := c.Request()
	if !sameOrigin(req) {
		return c.String(http.StatusForbidden, "cross-origin request refused\n")
	}
	if !p.validToken(req.PostFormValue("token")) {
		p.opts.Logger.Info("status page: login refused", "remote", c.RealIP())
		return p.loginForm(c, http.StatusUnauthorized, "Wrong token.")
	}
	exp := p.opts.Now().Add(p.opts.SessionTTL)
	c.SetCookie(&http.Cookie{
		Name: CookieName, Value: p.session(exp), Path: "/", Expires: exp, MaxAge: int(p.opts.SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https",
	})
	return c.Redirect(http.StatusSeeOther, "/")
}

func (p *Page) logout(c echo.Context) error {
	if !sameOrigin(c.Request()) {
		return c.String(http.StatusForbidden, "cross-origin request refused\n")
	}
	c.SetCookie(&http.Cookie{
		Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https",
	})
	return c.Redirect(http.StatusSeeOther, "/")
}

// sameOrigin tells whether a form post comes from a page of this host:
// browsers send Origin with every POST; a request without one is refused.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		// A browser that withholds the origin (Chromium sends "null" under
		// some referrer policies) still says where the request came from
		// in Sec-Fetch-Site, which no page can set.
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && u.Host == r.Host
}

// authenticated: a valid Bearer token, or a valid session cookie.
func (p *Page) authenticated(c echo.Context) bool {
	if tok, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer "); ok {
		return p.validToken(tok)
	}
	ck, err := c.Cookie(CookieName)
	return err == nil && p.validSession(ck.Value)
}

// validToken compares in constant time (both sides hashed first, so that not
// even the token's length shows in the timing).
func (p *Page) validToken(tok string) bool {
	if p.token == nil || tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], p.token) == 1
}

// session is a cookie value: the expiry (Unix seconds) and its HMAC.
func (p *Page) session(exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + base64.RawURLEncoding.EncodeToString(p.mac(e))
}

func (p *Page) mac(exp string) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(exp))
	return m.Sum(nil)
}

func (p *Page) validSession(v string) bool {
	if p.key == nil {
		return false
	}
	e, sig, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, p.mac(e)) {
		return false
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	return err == nil && p.opts.Now().Before(time.Unix(exp, 0))
}
