package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v62/github"
)

// Error classes. Every error returned by a Client method matches exactly one
// of them with errors.Is; callers decide retry, drop or give up in one switch.
var (
	// ErrNotFound: the resource does not exist (404, 410). DeleteRunner
	// callers treat it as done.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the resource already exists; generate-jitconfig answers
	// 409 (or 422 "already exists") for a runner name that is taken.
	ErrConflict = errors.New("already exists")
	// ErrRunnerBusy: GitHub refused to delete a runner that is running a job
	// (422 on DELETE .../runners/{runner_id}). Try again after the job ends.
	ErrRunnerBusy = errors.New("runner is busy")
	// ErrRateLimited: the call was rate limited and its context would expire
	// (or expired) before the limit resets.
	ErrRateLimited = errors.New("rate limited")
	// ErrRetryable: a temporary failure (5xx, timeout, network error,
	// truncated response) that outlived the client's own retries.
	ErrRetryable = errors.New("temporary failure")
	// ErrPermanent: any other failure (4xx, bad credentials, invalid input);
	// repeating the same call will not help.
	ErrPermanent = errors.New("permanent failure")
)

// Error is the error of a failed call. Its text names the operation, the
// method and the route template, the status and GitHub's message; never a
// response body of a sensitive route, a token or a header.
type Error struct {
	// Op is what was being done, "generate jit config for runner x".
	Op string
	// Method and Route (the template, "/orgs/{org}/actions/runners") of the
	// last HTTP request, empty when none was sent.
	Method, Route string
	// StatusCode of the last response, 0 when there was none.
	StatusCode int
	// Message is GitHub's error message; empty for sensitive routes.
	Message string
	// Reset is, for a rate limit, when it ends (the window's reset or the
	// end of the pause GitHub asked for); zero when unknown.
	Reset time.Time

	kind  error
	cause error
}

// RateLimitReset tells when the rate limit that failed err ends: the
// window's reset, or the end of the pause GitHub asked for. False when err
// is not a rate limit or the time is unknown.
func RateLimitReset(err error) (time.Time, bool) {
	var e *Error
	if !errors.As(err, &e) || e.kind != ErrRateLimited || e.Reset.IsZero() {
		return time.Time{}, false
	}
	return e.Reset, true
}

// joinType is the type of errors.Join's errors.
var joinType = reflect.TypeOf(errors.Join(errors.New("")))

// SplitRateLimited separates the rate-limit failures (ErrRateLimited) from
// the other errors of err, looking into errors.Join at any depth: rest joins
// the others (nil when none), limited lists the rate-limit failures.
func SplitRateLimited(err error) (limited []error, rest error) {
	if err == nil {
		return nil, nil
	}
	if reflect.TypeOf(err) == joinType {
		var others []error
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			l, r := SplitRateLimited(e)
			if r != nil {
				others = append(others, r)
			}
			limited = append(limited, l...)
		}
		return limited, errors.Join(others...)
	}
	if errors.Is(err, ErrRateLimited) {
		return []error{err}, nil
	}
	return nil, err
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Route != "" {
		b.WriteString(e.Method + " " + e.Route + ": ")
	}
	switch {
	case e.StatusCode != 0:
		fmt.Fprintf(&b, "%d %s", e.StatusCode, http.StatusText(e.StatusCode))
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
	case e.cause != nil:
		b.WriteString(e.cause.Error())
	default:
		b.WriteString(e.kind.Error())
		return b.String()
	}
	if e.kind == ErrRateLimited {
		b.WriteString(" (rate limited")
		if !e.Reset.IsZero() {
			b.WriteString(" until " + e.Reset.UTC().Format(time.RFC3339))
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap gives the error class and, when safe to expose, the cause (a
// context error among them).
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// classifyStatus maps an HTTP status to an error class. The route refines
// what a 422 means.
func classifyStatus(status int, method, route, message string) error {
	switch {
	case status == http.StatusNotFound || status == http.StatusGone:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusUnprocessableEntity && strings.HasSuffix(route, "/generate-jitconfig") &&
		strings.Contains(strings.ToLower(message), "already exists"):
		return ErrConflict
	case status == http.StatusUnprocessableEntity && method == http.MethodDelete &&
		strings.HasSuffix(route, "/actions/runners/{runner_id}"):
		return ErrRunnerBusy
	case status == http.StatusTooManyRequests:
		return ErrRateLimited
	case status == http.StatusRequestTimeout || status >= 500:
		return ErrRetryable
	default:
		return ErrPermanent
	}
}

// errInvalidBody replaces a decoding error, whose text may quote the body.
var errInvalidBody = errors.New("invalid response body")

// maxMessage bounds the GitHub message kept in an error.
const maxMessage = 300

// wrapError turns whatever a go-github call returned into an *Error. When
// sensitive is set (JIT configuration, tokens), neither GitHub's message nor
// the cause's text is kept: both may echo the response body.
func wrapError(op string, err error, info *callInfo, sensitive bool) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op}
	if info != nil {
		e.Method, e.Route, e.StatusCode = info.snapshot()
	}
	var (
		ghErr   *gh.ErrorResponse
		rlErr   *gh.RateLimitError
		abErr   *gh.AbuseRateLimitError
		tokErr  *ghinstallation.HTTPError
		sErr    *json.SyntaxError
		tErr    *json.UnmarshalTypeError
		urlErr  *url.Error
		netErr  net.Error
		limited bool
	)
	if info != nil {
		limited, e.Reset = info.wasRateLimited()
	}
	switch {
	case limited:
		e.kind = ErrRateLimited
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			e.cause = ctxErr(err)
		}
	case errors.Is(err, errNotInstalled):
		e.kind, e.Message = ErrPermanent, errNotInstalled.Error()
	case errors.As(err, &tokErr):
		// The installation token could not be had: never ErrNotFound (a
		// wrong installation id must not read as "runner already gone").
		e.Method, e.Route = http.MethodPost, routeAccessTokens
		e.kind = ErrPermanent
		if tokErr.Response != nil {
			e.StatusCode = tokErr.Response.StatusCode
			if e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests {
				e.kind = ErrRetryable
			}
		} else {
			e.kind = ErrRetryable
			if c := ctxErr(err); c != nil {
				e.cause = c
			}
		}
	case errors.As(err, &rlErr):
		e.kind, e.StatusCode = ErrRateLimited, statusOf(rlErr.Response)
	case errors.As(err, &abErr):
		e.kind, e.StatusCode = ErrRateLimited, statusOf(abErr.Response)
	case errors.As(err, &ghErr):
		e.StatusCode = statusOf(ghErr.Response)
		if ghErr.Response != nil && ghErr.Response.Request != nil {
			e.Method = ghErr.Response.Request.Method
		}
		e.kind = classifyStatus(e.StatusCode, e.Method, e.Route, ghErr.Message)
		if !sensitive {
			e.Message = truncate(scrub(ghErr.Message), maxMessage)
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.kind, e.cause = ErrRetryable, ctxErr(err)
	case errors.As(err, &sErr) || errors.As(err, &tErr) || errors.Is(err, io.ErrUnexpectedEOF):
		// A 2xx whose body could not be decoded: most often a truncated
		// response. The decoder's text may quote the body: drop it.
		e.kind, e.cause = ErrRetryable, errInvalidBody
	case errors.As(err, &netErr) || errors.As(err, &urlErr):
		e.kind = ErrRetryable
		e.cause = err
		if sensitive {
			// The transport's own error (dial, TLS, timeout) holds no body.
			e.cause = errors.New(sanitizeTransportError(err))
		}
	default:
		e.kind = ErrPermanent
		if !sensitive {
			e.cause = err
		}
	}
	return e
}

// invalid reports a call refused before it was sent.
func invalid(op, format string, args ...any) error {
	return &Error{Op: op, kind: ErrPermanent, cause: fmt.Errorf(format, args...)}
}

func ctxErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return context.Canceled
	}
	return nil
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

// tokenPattern matches GitHub's tokens (personal, OAuth, user, server,
// refresh, fine-grained) and JWTs.
var tokenPattern = regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)`)

// scrub removes anything token-like from a message GitHub (or a proxy in
// between) sent back.
func scrub(s string) string {
	return tokenPattern.ReplaceAllString(s, "[redacted]")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
