package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	jit := func(c *Client) error {
		_, err := c.GenerateJITConfig(context.Background(), OrgScope("acme"), JITRequest{Name: "rm-1", RunnerGroupID: 1, Labels: []string{"x"}})
		return err
	}
	del := func(c *Client) error { return c.DeleteRunner(context.Background(), OrgScope("acme"), 1) }
	get := func(c *Client) error {
		_, err := c.GetJob(context.Background(), "acme", "app", 1)
		return err
	}
	for _, tc := range []struct {
		name    string
		status  int
		message string
		call    func(*Client) error
		want    error
	}{
		{"jit name taken (409)", 409, "Already exists", jit, ErrConflict},
		{"jit name taken (422)", 422, "Already exists - A runner with the name rm-1 already exists.", jit, ErrConflict},
		{"jit invalid labels", 422, "Validation Failed", jit, ErrPermanent},
		{"jit unknown group", 404, "Not Found", jit, ErrNotFound},
		{"delete busy runner", 422, `Bad request - Runner "rm-1" is still running a job"`, del, ErrRunnerBusy},
		{"delete gone runner", 404, "Not Found", del, ErrNotFound},
		{"bad credentials", 401, "Bad credentials", get, ErrPermanent},
		{"bad request", 400, "Problems parsing JSON", get, ErrPermanent},
		{"gone", 410, "Gone", get, ErrNotFound},
		{"server error outlives retries", 500, "", get, ErrRetryable},
		{"not implemented", 501, "", get, ErrRetryable},
		{"request timeout", 408, "", get, ErrRetryable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, tc.status, map[string]string{"message": tc.message})
			}), func(o *Options) { o.MaxAttempts = 2 })
			err := tc.call(b.client)
			require.ErrorIs(t, err, tc.want)
			for _, other := range []error{ErrNotFound, ErrConflict, ErrRunnerBusy, ErrRateLimited, ErrRetryable, ErrPermanent} {
				if other != tc.want {
					require.NotErrorIs(t, err, other)
				}
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.status, e.StatusCode)
		})
	}
}

// TestSecretsStayOutOfErrorsLogsAndMetrics: GitHub's answers to a JIT call
// (an error echoing the configuration, a retried 5xx, a malformed body) and
// the token never reach an error, a log line or a metric.
func TestSecretsStayOutOfErrorsLogsAndMetrics(t *testing.T) {
	t.Parallel()
	const secret = "SECRETJITCONFIG-c2VjcmV0"
	var calls atomic.Int32
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1: // retried: its body must not be logged
			writeJSON(w, 502, map[string]string{"message": "upstream said " + secret})
		case 2:
			writeJSON(w, 409, map[string]any{"message": "runner exists with config " + secret, "errors": []string{secret}})
		case 3:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"runner": {"id": 1}, "encoded_jit_config": %s}`, secret) // not JSON
		case 4:
			w.Header().Set("Retry-After", "3600")
			writeJSON(w, 429, map[string]string{"message": "limited " + secret})
		default:
			writeJSON(w, 201, map[string]any{"runner": runnerJSON(1, "rm-1", "offline", false), "encoded_jit_config": secret})
		}
	}))
	req := JITRequest{Name: "rm-1", RunnerGroupID: 1, Labels: []string{"x"}}
	ctx := context.Background()

	check := func(err error) {
		t.Helper()
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			require.NotContains(t, text, secret)
			require.NotContains(t, text, testToken)
		}
	}

	_, err := b.client.GenerateJITConfig(ctx, OrgScope("acme"), req)
	require.ErrorIs(t, err, ErrConflict)
	require.EqualError(t, err, "generate jit config for runner rm-1: POST /orgs/{org}/actions/runners/generate-jitconfig: 409 Conflict")
	check(err)

	_, err = b.client.GenerateJITConfig(ctx, OrgScope("acme"), req)
	require.ErrorIs(t, err, ErrRetryable)
	check(err)

	short, cancel := context.WithTimeout(ctx, 10*time.Second) // less than Retry-After
	defer cancel()
	_, err = b.client.GenerateJITConfig(short, OrgScope("acme"), req)
	require.ErrorIs(t, err, ErrRateLimited)
	check(err)

	b.clock.Advance(time.Hour) // the pause ends
	jit, err := b.client.GenerateJITConfig(ctx, OrgScope("acme"), req)
	require.NoError(t, err)
	require.Equal(t, secret, jit.Encoded.Value())
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", jit, jit, *jit), secret, "the config prints redacted")

	logs := b.logs.String()
	require.Contains(t, logs, "retrying", "the retry was logged")
	require.NotContains(t, logs, secret)
	require.NotContains(t, logs, testToken)
	text := metricsText(t, b.reg)
	require.NotContains(t, text, secret)
	require.NotContains(t, text, testToken)
	require.NotContains(t, text, "rm-1")
}

func TestAuthorizationNeverInErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Echo the header back, as a misbehaving proxy could.
		writeJSON(w, 400, map[string]string{"message": "bad header " + r.Header.Get("Authorization")})
	}))
	_, err := b.client.GenerateJITConfig(context.Background(), OrgScope("acme"), JITRequest{Name: "rm-1", RunnerGroupID: 1, Labels: []string{"x"}})
	require.ErrorIs(t, err, ErrPermanent)
	require.NotContains(t, err.Error(), testToken)

	// Not a sensitive route, so GitHub's message is kept, but scrubbed.
	_, err = b.client.GetRunner(context.Background(), OrgScope("acme"), 1)
	require.ErrorIs(t, err, ErrPermanent)
	require.EqualError(t, err, "get runner 1 of acme: GET /orgs/{org}/actions/runners/{runner_id}: 400 Bad Request: bad header Bearer [redacted]")
	require.False(t, strings.Contains(b.logs.String(), testToken))
}

func TestSplitRateLimited(t *testing.T) {
	t.Parallel()
	limited := &Error{Op: "list runners of acme", kind: ErrRateLimited}
	other := fmt.Errorf("look up job 3: %w", &Error{Op: "get job", kind: ErrRetryable})
	plain := fmt.Errorf("redis down")
	got, rest := SplitRateLimited(errors.Join(plain, errors.Join(limited, other), fmt.Errorf("scale down: %w", limited)))
	require.Len(t, got, 2)
	for _, e := range got {
		require.ErrorIs(t, e, ErrRateLimited)
	}
	require.ErrorIs(t, rest, ErrRetryable)
	require.ErrorIs(t, rest, plain)
	require.NotErrorIs(t, rest, ErrRateLimited)

	got, rest = SplitRateLimited(limited)
	require.NoError(t, rest)
	require.Len(t, got, 1)
	got, rest = SplitRateLimited(nil)
	require.NoError(t, rest)
	require.Empty(t, got)
}

func TestCallDeadlineFromContext(t *testing.T) {
	t.Parallel()
	b := setup(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, 429, map[string]string{"message": "slow down"})
	}))
	ctx := WithCallDeadline(context.Background(), time.Now().Add(200*time.Millisecond))
	start := time.Now()
	_, err := b.client.GetRunner(ctx, OrgScope("acme"), 5)
	require.ErrorIs(t, err, ErrRateLimited, "a 30 s wait does not fit the call deadline")
	require.Less(t, time.Since(start), 5*time.Second)
}
