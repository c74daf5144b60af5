package github

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServerErrorsAreRetriedThenSucceed(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			writeJSON(w, 502, map[string]string{"message": "Bad Gateway"})
		case 2:
			writeJSON(w, 503, map[string]string{"message": "Unavailable"})
		default:
			writeJSON(w, 200, runnerJSON(5, "r5", "online", false))
		}
	}))

	r, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 5)
	require.NoError(t, err)
	require.Equal(t, "r5", r.Name)
	require.Equal(t, int32(3), calls.Load())
	require.Equal(t, 2.0, metric(t, b.reg, "runner_manager_github_retries_total", "installation", "token"))
	for code, want := range map[string]float64{"502": 1, "503": 1, "200": 1} {
		require.Equal(t, want, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "token",
			"route", "/orgs/{org}/actions/runners/{runner_id}", "method", "GET", "code", code), code)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeJSON(w, 500, map[string]string{"message": "boom"})
	}), func(o *Options) { o.MaxAttempts = 3 })

	err := b.client.DeleteRunner(context.Background(), OrgScope("acme"), 5)
	require.ErrorIs(t, err, ErrRetryable)
	require.Equal(t, int32(3), calls.Load())
}

func TestPOSTWithBodyIsReplayedOnRetry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Name string }
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		require.Equal(t, "rm-1", body.Name, "every attempt carries the body")
		if calls.Add(1) == 1 {
			w.WriteHeader(504)
			return
		}
		writeJSON(w, 201, map[string]any{"runner": runnerJSON(1, "rm-1", "offline", false), "encoded_jit_config": "abc"})
	}))
	jit, err := b.client.GenerateJITConfig(context.Background(), OrgScope("acme"), JITRequest{Name: "rm-1", RunnerGroupID: 1, Labels: []string{"x"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), jit.RunnerID)
	require.Equal(t, int32(2), calls.Load())
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	// A listener that is closed at once: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	c, err := New(Options{BaseURL: "http://" + addr, Token: testToken, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond, MaxAttempts: 2})
	require.NoError(t, err)

	_, err = c.ListRunners(context.Background(), OrgScope("acme"))
	require.ErrorIs(t, err, ErrRetryable)
	require.Contains(t, err.Error(), "list runners of acme: GET /orgs/{org}/actions/runners:")
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			writeJSON(w, 429, map[string]string{"message": "You have exceeded a secondary rate limit"})
			return
		}
		writeJSON(w, 200, runnerJSON(5, "r5", "online", false))
	}))

	done := make(chan error, 1)
	go func() {
		_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 5)
		done <- err
	}()
	waitPending(t, b.clock, 1)
	require.Equal(t, []time.Duration{7 * time.Second}, b.clock.Waits())
	require.Equal(t, int32(1), calls.Load(), "no retry before Retry-After")

	b.clock.Advance(6 * time.Second)
	require.Equal(t, 1, b.clock.Pending(), "still waiting after 6s")
	b.clock.Advance(time.Second)
	require.NoError(t, <-done)
	require.Equal(t, int32(2), calls.Load())
	require.Equal(t, 1.0, metric(t, b.reg, "runner_manager_github_rate_limited_total", "installation", "token"))
}

func TestPrimaryRateLimitWaitsForTheReset(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var b *bundle
	b = setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reset := b.clock.Now().Add(90 * time.Second).Unix()
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
		if calls.Add(1) == 1 {
			w.Header().Set("X-RateLimit-Remaining", "0")
			writeJSON(w, 403, map[string]string{"message": "API rate limit exceeded"})
			return
		}
		w.Header().Set("X-RateLimit-Remaining", "4999")
		w.WriteHeader(http.StatusNoContent)
	}))

	done := make(chan error, 1)
	go func() { done <- b.client.DeleteRunner(context.Background(), OrgScope("acme"), 5) }()
	waitPending(t, b.clock, 1)
	require.Equal(t, []time.Duration{90 * time.Second}, b.clock.Waits())
	b.clock.Advance(90 * time.Second)
	require.NoError(t, <-done)
	require.Equal(t, 4999.0, metric(t, b.reg, "runner_manager_github_rate_limit_remaining", "installation", "token"))
}

func TestSecondaryRateLimitWithoutRetryAfterWaitsAMinute(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			writeJSON(w, 403, map[string]string{
				"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
				"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
			})
			return
		}
		writeJSON(w, 200, runnerJSON(5, "r5", "online", false))
	}))
	done := make(chan error, 1)
	go func() {
		_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 5)
		done <- err
	}()
	waitPending(t, b.clock, 1)
	require.Equal(t, []time.Duration{time.Minute}, b.clock.Waits())
	b.clock.Advance(time.Minute)
	require.NoError(t, <-done)
}

func TestForbiddenThatIsNotARateLimitFailsAtOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeJSON(w, 403, map[string]string{"message": "Resource not accessible by integration"})
	}))
	_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 5)
	require.ErrorIs(t, err, ErrPermanent)
	require.Equal(t, int32(1), calls.Load())
	require.EqualError(t, err, "get runner 5 of acme: GET /orgs/{org}/actions/runners/{runner_id}: 403 Forbidden: Resource not accessible by integration")
}

func TestRateLimitBeyondTheDeadlineFailsWithErrRateLimited(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "3600")
		writeJSON(w, 429, map[string]string{"message": "slow down"})
	}))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := b.client.GetRunner(ctx, OrgScope("acme"), 5)
	require.ErrorIs(t, err, ErrRateLimited)
	require.Equal(t, int32(1), calls.Load())
	require.Contains(t, err.Error(), "429 Too Many Requests")

	// The pause holds for the next call too: it is not even sent.
	_, err = b.client.GetRunner(ctx, OrgScope("acme"), 6)
	require.ErrorIs(t, err, ErrRateLimited)
	require.Equal(t, int32(1), calls.Load())
}

func TestContextEndingWhileWaitingGivesErrRateLimited(t *testing.T) {
	t.Parallel()
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, 429, map[string]string{"message": "slow down"})
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.client.GetRunner(ctx, OrgScope("acme"), 5)
		done <- err
	}()
	waitPending(t, b.clock, 1)
	cancel()
	err := <-done
	require.ErrorIs(t, err, ErrRateLimited)
	require.ErrorIs(t, err, context.Canceled)
}

// TestLowPriorityWaitsForTheResetToKeepTheReserve: with the remaining budget
// at the reserve, a low-priority call waits for the reset while a
// high-priority one (JIT) goes through.
func TestLowPriorityWaitsForTheResetToKeepTheReserve(t *testing.T) {
	t.Parallel()
	var (
		remaining atomic.Int32
		lowSeen   atomic.Int32
		b         *bundle
	)
	remaining.Store(6)
	reset := newFakeClock().Now().Add(time.Minute)
	mux := http.NewServeMux()
	rateHeaders := func(w http.ResponseWriter) {
		left := remaining.Add(-1)
		if !b.clock.Now().Before(reset) {
			left = 4999
		}
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(int(left)))
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	}
	mux.HandleFunc("GET /orgs/acme/actions/runners/{id}", func(w http.ResponseWriter, r *http.Request) {
		rateHeaders(w)
		if r.PathValue("id") == "2" {
			lowSeen.Add(1)
		}
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	})
	mux.HandleFunc("POST /orgs/acme/actions/runners/generate-jitconfig", func(w http.ResponseWriter, r *http.Request) {
		rateHeaders(w)
		writeJSON(w, 201, map[string]any{"runner": runnerJSON(3, "rm-3", "offline", false), "encoded_jit_config": "jit"})
	})
	b = setup(t, mux, func(o *Options) { o.Reserve = 5 })
	ctx := context.Background()

	// A normal call leaves 5 calls: the reserve.
	_, err := b.client.GetRunner(ctx, OrgScope("acme"), 1)
	require.NoError(t, err)

	low := make(chan error, 1)
	go func() {
		_, err := b.client.GetRunner(WithPriority(ctx, PriorityLow), OrgScope("acme"), 2)
		low <- err
	}()
	waitPending(t, b.clock, 1)
	require.Equal(t, []time.Duration{time.Minute}, b.clock.Waits(), "the low-priority call waits for the reset")

	jit, err := b.client.GenerateJITConfig(ctx, OrgScope("acme"), JITRequest{Name: "rm-3", RunnerGroupID: 1, Labels: []string{"x"}})
	require.NoError(t, err, "the high-priority call goes through")
	require.Equal(t, int64(3), jit.RunnerID)
	select {
	case err := <-low:
		t.Fatalf("the low-priority call returned (%v) before the reset", err)
	default:
	}
	require.Equal(t, int32(0), lowSeen.Load())

	b.clock.Advance(time.Minute)
	require.NoError(t, <-low)
	require.Equal(t, int32(1), lowSeen.Load())
	require.Equal(t, 1.0, metric(t, b.reg, "runner_manager_github_reserve_waits_total", "installation", "token"))
	require.Equal(t, 4999.0, metric(t, b.reg, "runner_manager_github_rate_limit_remaining", "installation", "token"))
}

func TestExhaustedWindowHoldsEveryPriority(t *testing.T) {
	t.Parallel()
	var (
		calls atomic.Int32
		b     *bundle
	)
	reset := newFakeClock().Now().Add(30 * time.Second)
	b = setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		left := "0"
		if calls.Add(1) > 1 {
			left = "5000"
		}
		w.Header().Set("X-RateLimit-Remaining", left)
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	}))
	ctx := context.Background()
	// This response spends the last call of the window.
	_, err := b.client.GetRunner(ctx, OrgScope("acme"), 1)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := b.client.GetRunner(WithPriority(ctx, PriorityHigh), OrgScope("acme"), 1)
		done <- err
	}()
	waitPending(t, b.clock, 1)
	require.Equal(t, int32(1), calls.Load(), "not sent into an exhausted window")
	b.clock.Advance(30 * time.Second)
	require.NoError(t, <-done)
	require.Equal(t, int32(2), calls.Load())
}

func TestPerAttemptTimeout(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	}), func(o *Options) { o.Timeout = 50 * time.Millisecond })

	_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 1)
	require.NoError(t, err, "the hung attempt timed out and was retried")
	require.Equal(t, int32(2), calls.Load())
	require.Equal(t, 1.0, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "token",
		"route", "/orgs/{org}/actions/runners/{runner_id}", "method", "GET", "code", "error"))
}

func TestRouteOf(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/orgs/acme/actions/runners":                         "/orgs/{org}/actions/runners",
		"/orgs/acme/actions/runners/42":                      "/orgs/{org}/actions/runners/{runner_id}",
		"/orgs/acme/actions/runners/downloads":               "/orgs/{org}/actions/runners/downloads",
		"/orgs/acme/actions/runners/generate-jitconfig":      "/orgs/{org}/actions/runners/generate-jitconfig",
		"/repos/a/b/actions/runners/generate-jitconfig":      "/repos/{owner}/{repo}/actions/runners/generate-jitconfig",
		"/repos/a/b/actions/jobs/9":                          "/repos/{owner}/{repo}/actions/jobs/{job_id}",
		"/repos/a/b":                                         "/repos/{owner}/{repo}",
		"/app/installations/5/access_tokens":                 routeAccessTokens,
		"/app/hook/deliveries/7/attempts":                    "/app/hook/deliveries/{delivery_id}/attempts",
		"/orgs/acme/actions/runner-groups/3/repositories":    "/orgs/{org}/actions/runner-groups/{runner_group_id}/repositories",
		"/orgs/acme/hooks/1/deliveries":                      "/orgs/{org}/hooks/{hook_id}/deliveries",
		"/user/secret-path-with-a-name":                      routeOther,
		"/orgs/acme/actions/runners/42/labels/extra/segment": routeOther,
	} {
		require.Equal(t, want, routeOf(path), path)
	}
}

func TestBaseURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", "https://api.github.com/"},
		{"https://api.github.com", "https://api.github.com/"},
		{"https://ghes.example.com/api/v3", "https://ghes.example.com/api/v3/"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/"},
	} {
		c, err := New(Options{BaseURL: tc.in, Token: testToken})
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, c.token.BaseURL.String(), tc.in)
	}
	for _, bad := range []string{"ftp://x", "ftp://user:pw@x", "api.github.com", "https://user:pw@h/", "https://h/?q=1", "http://user:pw@h:port/\x7f"} {
		_, err := New(Options{BaseURL: bad, Token: testToken})
		require.Error(t, err, bad)
		require.NotContains(t, err.Error(), "pw", bad)
	}
	_, err := New(Options{})
	require.ErrorContains(t, err, "no GitHub credentials")
}

func TestGHESPathPrefix(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v3/orgs/acme/actions/runners/1", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	})
	b := setup(t, mux, func(o *Options) { o.BaseURL += "/api/v3" })
	_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 1)
	require.NoError(t, err)
	require.Equal(t, 1.0, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "token",
		"route", "/orgs/{org}/actions/runners/{runner_id}", "method", "GET", "code", "200"))
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDefaultPriorities(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen = map[string]Priority{}
	)
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			writeJSON(w, 201, map[string]any{"runner": runnerJSON(1, "rm-1", "offline", false), "encoded_jit_config": "x"})
		case strings.HasSuffix(r.URL.Path, "/runners/1"):
			writeJSON(w, 200, runnerJSON(1, "rm-1", "offline", false))
		default:
			writeJSON(w, 200, map[string]any{"total_count": 0, "runners": []any{}})
		}
	}), func(o *Options) {
		o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			p, _ := priorityOf(r.Context())
			mu.Lock()
			seen[r.Method+" "+routeOf(r.URL.Path)] = p
			mu.Unlock()
			return http.DefaultTransport.RoundTrip(r)
		})
	})
	ctx := context.Background()
	_, err := b.client.GenerateJITConfig(ctx, OrgScope("acme"), JITRequest{Name: "rm-1", RunnerGroupID: 1, Labels: []string{"x"}})
	require.NoError(t, err)
	_, err = b.client.ListRunners(ctx, OrgScope("acme"))
	require.NoError(t, err)
	_, err = b.client.GetRunner(ctx, OrgScope("acme"), 1)
	require.NoError(t, err)
	_, err = b.client.ListRunners(WithPriority(ctx, PriorityNormal), RepoScope("acme", "app"))
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]Priority{
		"POST /orgs/{org}/actions/runners/generate-jitconfig": PriorityHigh,
		"GET /orgs/{org}/actions/runners":                     PriorityLow,
		"GET /orgs/{org}/actions/runners/{runner_id}":         PriorityNormal,
		"GET /repos/{owner}/{repo}/actions/runners":           PriorityNormal,
	}, seen)
}

// TestLowBudgetFailsFastWithoutACallerDeadline: with the budget at the
// reserve and the reset an hour away, a low-priority call made with a
// context that has no deadline fails at once with ErrRateLimited (the
// client's own call deadline bounds it), is not sent, and carries the reset.
func TestLowBudgetFailsFastWithoutACallerDeadline(t *testing.T) {
	t.Parallel()
	var (
		calls atomic.Int32
		b     *bundle
	)
	reset := newFakeClock().Now().Add(time.Hour)
	b = setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("X-RateLimit-Remaining", "5")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	}), func(o *Options) { o.Reserve = 5 })
	ctx := context.Background()
	_, err := b.client.GetRunner(ctx, OrgScope("acme"), 1)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := b.client.GetRunner(WithPriority(ctx, PriorityLow), OrgScope("acme"), 2)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the low-priority call blocked on the reserve instead of failing fast")
	}
	require.ErrorIs(t, err, ErrRateLimited)
	require.Equal(t, int32(1), calls.Load(), "the refused call was not sent")
	at, ok := RateLimitReset(err)
	require.True(t, ok, "the error carries the reset time")
	require.True(t, at.Equal(reset), "reset %s, want %s", at, reset)
	require.NotContains(t, err.Error(), testToken)
	require.Equal(t, 1.0, metric(t, b.reg, "runner_manager_github_rate_limit_refusals_total", "installation", "token"))
}

// TestCallDeadlineBoundsAWaitingCall: a call whose caller gave no deadline
// never waits past the client's CallTimeout.
func TestCallDeadlineBoundsAWaitingCall(t *testing.T) {
	t.Parallel()
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, 429, map[string]string{"message": "slow down"})
	}), func(o *Options) { o.CallTimeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 5)
	require.ErrorIs(t, err, ErrRateLimited)
	require.Less(t, time.Since(start), 5*time.Second)
	at, ok := RateLimitReset(err)
	require.True(t, ok)
	require.True(t, at.Equal(b.clock.Now().Add(30*time.Second)), "reset %s", at)
}
