package github

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runner-manager/runner-manager/libs/backoff"
)

// Priority of a call with respect to the rate-limit reserve.
type Priority int

const (
	// PriorityLow calls (health checks, listings) wait for the rate-limit
	// window to reset when no more than Options.Reserve calls are left, as
	// long as the reset comes before the call's deadline; otherwise they
	// fail at once with ErrRateLimited.
	PriorityLow Priority = -1
	// PriorityNormal is the default: it spends the reserve but not beyond
	// the limit itself.
	PriorityNormal Priority = 0
	// PriorityHigh is for the calls that start runners (JIT configuration).
	// It behaves as PriorityNormal with respect to the limit; the reserve
	// exists for it.
	PriorityHigh Priority = 1
)

type priorityKey struct{}

// WithPriority tags the calls made with ctx with a priority.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

func priorityOf(ctx context.Context) (Priority, bool) {
	p, ok := ctx.Value(priorityKey{}).(Priority)
	return p, ok
}

// withDefaultPriority tags ctx with p unless the caller chose a priority.
func withDefaultPriority(ctx context.Context, p Priority) context.Context {
	if _, set := priorityOf(ctx); set {
		return ctx
	}
	return WithPriority(ctx, p)
}

// callInfo collects, for one Client call, what the transport saw: the last
// request and status, and whether it gave up because of a rate limit. The
// error wrapping reads it, since go-github replaces a transport error with
// ctx.Err() once the context is done.
type callInfo struct {
	mu          sync.Mutex
	method      string
	route       string
	statusCode  int
	rateLimited bool
	reset       time.Time // when the rate limit that stopped the call ends
}

type callInfoKey struct{}

func withCallInfo(ctx context.Context) (context.Context, *callInfo) {
	info := &callInfo{}
	return context.WithValue(ctx, callInfoKey{}, info), info
}

func callInfoFrom(ctx context.Context) *callInfo {
	info, _ := ctx.Value(callInfoKey{}).(*callInfo)
	return info
}

func (i *callInfo) record(method, route string, status int) {
	if i == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.method, i.route, i.statusCode = method, route, status
	i.rateLimited = false
	i.reset = time.Time{}
}

// gaveUp records that the call failed because of a rate limit, with the
// status of the rate-limited response (0 when it was not sent) and the time
// the limit ends.
func (i *callInfo) gaveUp(method, route string, status int, reset time.Time) {
	if i == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.method, i.route, i.statusCode = method, route, status
	i.rateLimited = true
	i.reset = reset
}

func (i *callInfo) snapshot() (method, route string, status int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.method, i.route, i.statusCode
}

func (i *callInfo) wasRateLimited() (bool, time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.rateLimited, i.reset
}

// clock is time, replaceable in tests.
type clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed, and a
	// function that releases the timer.
	After(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// bucket is what is known of one rate-limit window.
type bucket struct {
	known bool
	// remaining is an estimate: GitHub's last word, less the calls sent
	// since. Only low-priority calls act on it.
	remaining int
	// limit is the window's size (X-RateLimit-Limit), 0 when not told.
	limit int
	// exhausted: GitHub said no call is left in this window.
	exhausted bool
	reset     time.Time
	// pausedUntil is set by a rate-limited response: no call of any
	// priority is sent before it.
	pausedUntil time.Time
}

// Rate-limit headers of GitHub's REST API.
const (
	headerLimit      = "X-RateLimit-Limit"
	headerRemaining  = "X-RateLimit-Remaining"
	headerReset      = "X-RateLimit-Reset"
	headerResource   = "X-RateLimit-Resource"
	headerRetryAfter = "Retry-After"
)

// transport is the http.RoundTripper under go-github (and under the App's
// token source): it bounds every attempt with a timeout, keeps the
// rate-limit budget, waits instead of failing when rate limited, keeps the
// reserve for high-priority calls, retries 5xx and network errors with
// exponential backoff and jitter, and counts everything. It never logs a
// header or a body.
type transport struct {
	base              http.RoundTripper
	basePath          string // path prefix of the base URL, "/api/v3" for GHES
	reserve           int
	timeout           time.Duration
	maxAttempts       int
	baseDelay         time.Duration
	maxDelay          time.Duration
	secondaryWait     time.Duration
	maxRateLimitWaits int
	clock             clock
	log               *slog.Logger
	metrics           *metrics

	mu sync.Mutex
	// buckets are the rate-limit windows by budget label: an installation's
	// id, budgetToken, or budgetApp for the App's own window
	// (JWT-authenticated /app routes). GitHub counts each apart.
	buckets map[string]*bucket
}

// Budget labels besides installation ids.
const (
	// budgetToken is the window of a token (personal access token).
	budgetToken = "token"
	// budgetApp is the App's own window (its JWT calls, token creation).
	budgetApp = "app"
)

// RoundTrip implements http.RoundTripper for a token's calls.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.roundTrip(req, budgetToken)
}

// budgetTransport sends the calls of one installation: they spend its
// budget (the App's routes still spend the App's).
type budgetTransport struct {
	t     *transport
	label string
}

func (b budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return b.t.roundTrip(req, b.label)
}

// roundTrip sends req, spending the budget of label (budgetApp for the
// App's own routes whatever label says).
func (t *transport) roundTrip(req *http.Request, label string) (*http.Response, error) {
	ctx := req.Context()
	path := strings.TrimPrefix(req.URL.Path, t.basePath)
	route := routeOf(path)
	app := label
	if isAppRoute(path) {
		app = budgetApp
	}
	prio, _ := priorityOf(ctx)
	if route == routeAccessTokens {
		// Every installation call waits on the token (ghinstallation holds
		// its lock while refreshing): the refresh never waits on the reserve.
		prio = PriorityHigh
	}
	info := callInfoFrom(ctx)
	rateWaits := 0
	for attempt := 1; ; {
		if err := t.awaitBudget(ctx, app, prio, req.Method, route, info); err != nil {
			closeBody(req)
			return nil, err
		}
		r, err := t.prepare(req, attempt, rateWaits)
		if err != nil {
			return nil, err
		}
		resp, err := t.send(r)
		t.count(app, req.Method, route, resp, err)
		if err != nil {
			info.record(req.Method, route, 0)
			if ctx.Err() != nil || attempt >= t.maxAttempts || !replayable(req) {
				return nil, err
			}
			if err := t.backoff(ctx, app, req.Method, route, attempt, 0, err); err != nil {
				return nil, err
			}
			attempt++
			continue
		}
		info.record(req.Method, route, resp.StatusCode)
		t.observe(app, resp.Header)
		if wait, limited := t.rateLimitWait(resp, rateWaits); limited {
			t.metrics.rateLimited.WithLabelValues(app).Inc()
			t.pause(app, wait)
			rateWaits++
			if rateWaits > t.maxRateLimitWaits || !fits(ctx, wait) || !replayable(req) {
				info.gaveUp(req.Method, route, resp.StatusCode, t.clock.Now().Add(wait))
				hideRateHeaders(resp)
				return resp, nil
			}
			t.log.WarnContext(ctx, "github rate limit hit, waiting",
				"method", req.Method, "route", route, "status", resp.StatusCode, "wait", wait)
			drain(resp)
			continue // awaitBudget waits until the pause ends
		}
		if retryableStatus(resp.StatusCode) && attempt < t.maxAttempts && replayable(req) {
			drain(resp)
			if err := t.backoff(ctx, app, req.Method, route, attempt, resp.StatusCode, nil); err != nil {
				return nil, err
			}
			attempt++
			continue
		}
		hideRateHeaders(resp)
		return resp, nil
	}
}

// prepare returns the request to send for this attempt: the original one the
// first time, a copy with a fresh body after that.
func (t *transport) prepare(req *http.Request, attempt, rateWaits int) (*http.Request, error) {
	if attempt == 1 && rateWaits == 0 {
		return req, nil
	}
	r := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("rewind request body: %w", err)
		}
		r.Body = body
	}
	return r, nil
}

// send makes one attempt, bounded by the per-attempt timeout. The timeout's
// context lives until the response body is closed.
func (t *transport) send(req *http.Request) (*http.Response, error) {
	if t.timeout <= 0 {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// awaitBudget blocks while the rate limit forbids the call: every call waits
// out a pause imposed by a rate-limited response or an exhausted window; a
// low-priority call also waits for the reset while no more than the reserve
// is left. A wait the context cannot afford fails at once with ErrRateLimited.
func (t *transport) awaitBudget(ctx context.Context, app string, prio Priority, method, route string, info *callInfo) error {
	for {
		until, reason := t.blockedUntil(app, prio)
		if until.IsZero() {
			return nil
		}
		wait := until.Sub(t.clock.Now())
		if !fits(ctx, wait) {
			t.metrics.refusals.WithLabelValues(app).Inc()
			info.gaveUp(method, route, 0, until)
			return fmt.Errorf("%w: %s until %s, beyond the context's deadline", ErrRateLimited, reason, until.UTC().Format(time.RFC3339))
		}
		if reason == reasonReserve {
			t.metrics.reserveWaits.WithLabelValues(app).Inc()
		}
		t.log.DebugContext(ctx, "github call waiting for the rate limit",
			"method", method, "route", route, "reason", reason, "wait", wait)
		ch, stop := t.clock.After(wait)
		select {
		case <-ch:
		case <-ctx.Done():
			stop()
			info.gaveUp(method, route, 0, until)
			return fmt.Errorf("%w: %s: %w", ErrRateLimited, reason, ctx.Err())
		}
	}
}

const (
	reasonLimit   = "rate limit"
	reasonReserve = "rate-limit reserve"
)

// blockedUntil tells until when a call must wait, or zero if it may go now;
// a call that may go is counted against the known remaining budget, an
// estimate corrected by the next response.
func (t *transport) blockedUntil(app string, prio Priority) (time.Time, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.bucket(app)
	now := t.clock.Now()
	if now.Before(b.pausedUntil) {
		return b.pausedUntil, reasonLimit
	}
	if b.known && !now.Before(b.reset) {
		b.known, b.exhausted = false, false // a new window began
	}
	if b.known && b.exhausted {
		return b.reset, reasonLimit
	}
	if b.known && prio < PriorityNormal && b.remaining <= t.reserve {
		return b.reset, reasonReserve
	}
	if b.known {
		b.remaining--
	}
	return time.Time{}, ""
}

// bucket returns the window of a budget label; t.mu is held.
func (t *transport) bucket(label string) *bucket {
	b := t.buckets[label]
	if b == nil {
		if t.buckets == nil {
			t.buckets = map[string]*bucket{}
		}
		b = &bucket{}
		t.buckets[label] = b
	}
	return b
}

// Budget is what the client knows of one rate-limit window: an
// installation's (Installation is its id), a token's ("token") or the
// App's own ("app").
type Budget struct {
	Installation string
	// Remaining is GitHub's last word less the calls sent since; Limit the
	// window's size; Reset when it renews. All zero until a response told.
	Remaining, Limit int
	Reset            time.Time
}

// budgets lists the windows, sorted by label.
func (t *transport) budgets() []Budget {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Budget, 0, len(t.buckets))
	for label, b := range t.buckets {
		bg := Budget{Installation: label}
		if b.known {
			bg.Remaining, bg.Limit, bg.Reset = max(b.remaining, 0), b.limit, b.reset
		}
		out = append(out, bg)
	}
	slices.SortFunc(out, func(a, b Budget) int { return strings.Compare(a.Installation, b.Installation) })
	return out
}

// observe records the rate-limit headers of a response.
func (t *transport) observe(app string, h http.Header) {
	if res := h.Get(headerResource); res != "" && res != "core" {
		return // search, graphql... have windows of their own
	}
	remaining, err := strconv.Atoi(h.Get(headerRemaining))
	if err != nil {
		return
	}
	resetUnix, err := strconv.ParseInt(h.Get(headerReset), 10, 64)
	if err != nil {
		return
	}
	reset := time.Unix(resetUnix, 0)
	limit, _ := strconv.Atoi(h.Get(headerLimit))
	t.metrics.remaining.WithLabelValues(app).Set(float64(remaining))
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.bucket(app)
	sameWindow := b.known && reset.Equal(b.reset)
	if !sameWindow {
		b.exhausted = false
	}
	b.exhausted = b.exhausted || remaining <= 0
	if limit, err := strconv.Atoi(h.Get(headerLimit)); err == nil {
		b.limit = limit
	}
	// Within one window the budget only shrinks: a response that overtook
	// others does not raise the estimate back.
	if sameWindow && remaining > b.remaining {
		return
	}
	b.known, b.remaining, b.reset = true, remaining, reset
	if limit > 0 {
		b.limit = limit
	}
}

// pause stops every call of the window for d.
func (t *transport) pause(app string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.bucket(app)
	if until := t.clock.Now().Add(d); until.After(b.pausedUntil) {
		b.pausedUntil = until
	}
}

// maxErrorBody bounds how much of a 403 body is read to recognise a
// secondary rate limit.
const maxErrorBody = 64 << 10

// rateLimitWait tells whether a response is a rate limit and how long to
// wait: Retry-After when given; the window's reset when the primary limit is
// exhausted; otherwise (a secondary limit without Retry-After) at least a
// minute, doubling with each repetition, as GitHub asks.
func (t *transport) rateLimitWait(resp *http.Response, repeated int) (time.Duration, bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	if ra := resp.Header.Get(headerRetryAfter); ra != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil {
			return max(time.Duration(secs)*time.Second, time.Second), true
		}
		if at, err := http.ParseTime(ra); err == nil {
			return max(at.Sub(t.clock.Now()), time.Second), true
		}
	}
	if resp.Header.Get(headerRemaining) == "0" {
		if resetUnix, err := strconv.ParseInt(resp.Header.Get(headerReset), 10, 64); err == nil {
			return max(time.Unix(resetUnix, 0).Sub(t.clock.Now()), time.Second), true
		}
	}
	// secondaryWait, doubling with each repeated limit, 32 times at most.
	secondary := backoff.Exponential{Base: t.secondaryWait, Max: t.secondaryWait << 5}.Delay(repeated + 1)
	if resp.StatusCode == http.StatusTooManyRequests {
		return secondary, true
	}
	// A 403 is a rate limit only if its message says so.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err == nil && bytes.Contains(bytes.ToLower(body), []byte("rate limit")) {
		return secondary, true
	}
	return 0, false
}

// backoff sleeps before a retry: exponential from baseDelay, capped at
// maxDelay, with jitter over the upper half.
func (t *transport) backoff(ctx context.Context, label, method, route string, attempt, status int, cause error) error {
	d := backoff.Exponential{Base: t.baseDelay, Max: t.maxDelay, Jitter: 0.5}.Delay(attempt)
	t.metrics.retries.WithLabelValues(label).Inc()
	attrs := []any{"method", method, "route", route, "attempt", attempt, "delay", d}
	if status != 0 {
		attrs = append(attrs, "status", status)
	}
	if cause != nil {
		attrs = append(attrs, "error", sanitizeTransportError(cause))
	}
	t.log.InfoContext(ctx, "github call failed, retrying", attrs...)
	ch, stop := t.clock.After(d)
	defer stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sanitizeTransportError gives the text of an error of the underlying
// transport (dial, TLS, timeout), which carries neither headers nor bodies.
func sanitizeTransportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func (t *transport) count(label, method, route string, resp *http.Response, err error) {
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.metrics.calls.WithLabelValues(label, route, method, code).Inc()
}

// fits tells whether a wait of d ends before the context's deadline.
func fits(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > d
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// replayable tells whether the request can be sent again.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// hideRateHeaders removes the reset times from a response handed to
// go-github: the transport owns rate limiting, and go-github would otherwise
// refuse further calls on its own, without waiting, until the reset.
func hideRateHeaders(resp *http.Response) {
	resp.Header.Del(headerReset)
	resp.Header.Del(headerRetryAfter)
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
