// Package api is the scheduler's admin API under /api/v1, guarded by a
// Bearer token (RM_API_TOKEN). Without a configured token every request is
// refused: the API is never open by accident.
//
// Errors have one shape: {"error":{"code":"not_found","message":"..."}}.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

// Error codes of the API.
const (
	CodeUnauthorized = "unauthorized"
	CodeNotFound     = "not_found"
	CodeBadRequest   = "bad_request"
	CodeConflict     = "conflict"
	CodeInternal     = "internal"
)

// ErrorBody is the JSON of every error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong; Code is stable, Message is for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func fail(c echo.Context, status int, code, msg string) error {
	return c.JSON(status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

// Server serves the admin API.
type Server struct {
	cfg   *config.Config
	store *state.Store
	usage *usage.Aggregate
	log   *slog.Logger
	// tokenSum is the SHA-256 of the configured token; nil when none is configured.
	tokenSum []byte
}

// New returns the API of the scheduler.
func New(cfg *config.Config, store *state.Store, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, store: store, log: log, usage: store.Usage(
		usage.Options{TopRepositories: cfg.Scheduler.UsageTopRepositories, Now: store.Now})}
	if cfg.Secrets.APIToken.IsSet() {
		sum := sha256.Sum256([]byte(cfg.Secrets.APIToken.Value()))
		s.tokenSum = sum[:]
	}
	return s
}

// Register mounts the API on e under /api.
func (s *Server) Register(e *echo.Echo) {
	api := e.Group("/api", s.auth)
	v1 := api.Group("/v1")
	v1.GET("/groups", s.groups)
	v1.POST("/groups/:name/pause", s.setMode(state.ModePaused))
	v1.POST("/groups/:name/drain", s.setMode(state.ModeDraining), traced)
	v1.POST("/groups/:name/resume", s.setMode(state.ModeActive), traced)
	v1.GET("/runners", s.runners)
	v1.GET("/runners/:name", s.runner)
	v1.DELETE("/runners/:name", s.deleteRunner, traced)
	v1.GET("/dlq", s.dlq)
	v1.POST("/dlq/:id/retry", s.retryDLQ)
	v1.GET("/usage", s.usageReport)
	api.Any("/*", func(c echo.Context) error {
		return fail(c, http.StatusNotFound, CodeNotFound, "no such route")
	})
}

// tracerName is the instrumentation scope of the API's spans.
const tracerName = "github.com/runner-manager/runner-manager/services/scheduler/internal/api"

// traced runs a route that emits commands in a server span (continuing a
// W3C traceparent header when the caller sends one), so that the commands
// carry a trace like those of webhooks.
func traced(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		ctx := otel.GetTextMapPropagator().Extract(req.Context(), propagation.HeaderCarrier(req.Header))
		ctx, span := otel.Tracer(tracerName).Start(ctx, req.Method+" "+c.Path(), trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		c.SetRequest(req.WithContext(ctx))
		err := next(c)
		span.SetAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("http.route", c.Path()),
			attribute.Int("http.response.status_code", c.Response().Status),
		)
		return err
	}
}

// auth checks the Bearer token in constant time (both sides hashed first, so
// that not even the token's length shows in the timing).
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if s.tokenSum == nil || !ok {
			return s.unauthorized(c)
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], s.tokenSum) != 1 {
			return s.unauthorized(c)
		}
		return next(c)
	}
}

func (s *Server) unauthorized(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="runner-manager"`)
	return fail(c, http.StatusUnauthorized, CodeUnauthorized, "a valid Bearer token is required")
}

func (s *Server) internal(c echo.Context, what string, err error) error {
	s.log.Error("admin API: "+what, "error", err, "path", c.Path())
	return fail(c, http.StatusInternalServerError, CodeInternal, what+" failed")
}

// GroupView is one group in GET /api/v1/groups.
type GroupView struct {
	Name         string `json:"name"`
	Organization string `json:"organization"`
	Repository   string `json:"repository,omitempty"`
	Backend      string `json:"backend"`
	MinRunners   int    `json:"min_runners"`
	MaxRunners   int    `json:"max_runners"`
	// Total runners counted against max_runners; Free those that can take a job.
	Total          int64                 `json:"total"`
	Free           int64                 `json:"free"`
	Demand         int64                 `json:"demand"`
	Runners        map[state.State]int64 `json:"runners"`
	BackoffSeconds float64               `json:"backoff_seconds"`
	// Mode is the operator's mode of the group: active, paused or draining.
	Mode string `json:"mode"`
}

// Groups returns every configured group with its counts, in the order of
// the configuration: GET /api/v1/groups, and the status page's groups.
func (s *Server) Groups(ctx context.Context) ([]GroupView, error) {
	out := make([]GroupView, 0, len(s.cfg.RunnerGroups))
	for _, g := range s.cfg.RunnerGroups {
		st, err := s.store.GroupStatus(ctx, g.Name)
		if err != nil {
			return nil, fmt.Errorf("read group %s: %w", g.Name, err)
		}
		out = append(out, GroupView{
			Name: g.Name, Organization: g.Organization, Repository: g.Repository, Backend: g.Backend.Type,
			MinRunners: g.MinRunners, MaxRunners: g.MaxRunners,
			Total: st.Total, Free: st.Free, Demand: st.Demand, Runners: st.ByState,
			BackoffSeconds: st.BackoffRemaining.Seconds(), Mode: string(st.Mode),
		})
	}
	return out, nil
}

func (s *Server) groups(c echo.Context) error {
	out, err := s.Groups(c.Request().Context())
	if err != nil {
		return s.internal(c, "read groups", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"groups": out})
}

// ModeChange is the answer of POST /api/v1/groups/{name}/pause, drain and resume.
type ModeChange struct {
	Group        string     `json:"group"`
	Mode         state.Mode `json:"mode"`
	PreviousMode state.Mode `json:"previous_mode"`
	// Deleting are the runners a drain moved to deleting (reason drained).
	Deleting []string `json:"deleting"`
	// Reserved are the runners a resume reserved for the waiting demand and
	// min_runners.
	Reserved []string `json:"reserved"`
}

// setMode sets a configured group's mode in Redis, where every replica's
// scripts read it with the limit check. A drain then moves the group's
// pending, started and idle runners to deleting (the provisioner removes the
// registration first; a runner that took a job meanwhile answers busy and
// stays until its job completes); a resume tops the group up at once.
func (s *Server) setMode(m state.Mode) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		name := c.Param("name")
		g, ok := command.Group(s.cfg, name)
		if !ok {
			return fail(c, http.StatusNotFound, CodeNotFound, "no runner group "+strconv.Quote(name)+" in the configuration")
		}
		prev, err := s.store.SetGroupMode(ctx, name, m)
		if err != nil {
			return s.internal(c, "set mode of group "+name, err)
		}
		out := ModeChange{Group: name, Mode: m, PreviousMode: prev, Deleting: []string{}, Reserved: []string{}}
		switch m {
		case state.ModeDraining:
			moved, err := s.store.DeleteFree(ctx, name, state.ReasonDrained)
			for _, r := range moved {
				out.Deleting = append(out.Deleting, r.Name)
			}
			if err != nil {
				// The mode is set: the reconcile loop deletes what is left.
				return s.internal(c, "drain group "+name, err)
			}
		case state.ModeActive:
			res, err := s.store.TopUp(ctx, g)
			out.Reserved = append(out.Reserved, res.Reserved...)
			if err != nil {
				// The mode is set: the reconcile loop tops the group up.
				return s.internal(c, "top up group "+name, err)
			}
		}
		s.log.Info("admin API: group mode set", "group", name, "mode", m, "previous_mode", prev,
			"deleting", len(out.Deleting), "reserved", len(out.Reserved))
		return c.JSON(http.StatusOK, out)
	}
}

func (s *Server) runners(c echo.Context) error {
	ctx := c.Request().Context()
	want := state.State(c.QueryParam("state"))
	if want != "" && !want.Valid() {
		return fail(c, http.StatusBadRequest, CodeBadRequest, "unknown state "+strconv.Quote(string(want)))
	}
	groups := []string{c.QueryParam("group")}
	if groups[0] == "" {
		groups = groups[:0]
		for _, g := range s.cfg.RunnerGroups {
			groups = append(groups, g.Name)
		}
	}
	out := []state.Runner{}
	for _, g := range groups {
		rs, err := s.store.Runners(ctx, g)
		if err != nil {
			return s.internal(c, "list runners", err)
		}
		for _, r := range rs {
			if want == "" || r.State == want {
				out = append(out, r)
			}
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"runners": out})
}

func (s *Server) runner(c echo.Context) error {
	r, ok, err := s.store.Runner(c.Request().Context(), c.Param("name"))
	if err != nil {
		return s.internal(c, "read runner", err)
	}
	if !ok {
		return fail(c, http.StatusNotFound, CodeNotFound, "no runner "+strconv.Quote(c.Param("name")))
	}
	return c.JSON(http.StatusOK, r)
}

// deleteRunner moves a runner to deleting and emits its delete command. A
// busy runner is refused (409) unless ?force=true: deleting it kills its job.
// The deleted result tops the group up if its demand needs a replacement.
func (s *Server) deleteRunner(c echo.Context) error {
	name := c.Param("name")
	from := []state.State{state.Pending, state.Started, state.Idle}
	reason := state.ReasonAdmin // the provisioner keeps a runner that took a job meanwhile
	if force, _ := strconv.ParseBool(c.QueryParam("force")); force {
		from = append(from, state.Busy)
		reason = state.ReasonAdminForce
	}
	prev, err := s.store.RequestDelete(c.Request().Context(), name, from, reason)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return fail(c, http.StatusNotFound, CodeNotFound, "no runner "+strconv.Quote(name))
	case errors.Is(err, state.ErrState):
		msg := "runner is " + string(prev)
		if prev == state.Busy {
			msg += ": deleting it kills its job; add ?force=true to do so"
		}
		return fail(c, http.StatusConflict, CodeConflict, msg)
	case err != nil:
		return s.internal(c, "delete runner", err)
	}
	s.log.Info("admin API: runner deleting", "runner", name, "previous_state", prev)
	return c.JSON(http.StatusAccepted, map[string]any{"runner": name, "previous_state": prev, "state": state.Deleting})
}

// DeadLetterView is one entry of GET /api/v1/dlq. The message's data (a
// protobuf) is not shown; its size is.
type DeadLetterView struct {
	ID           string    `json:"id"`
	OriginStream string    `json:"origin_stream"`
	OriginID     string    `json:"origin_id"`
	Type         string    `json:"type"`
	Reason       string    `json:"reason"`
	Deliveries   int64     `json:"deliveries"`
	Group        string    `json:"group,omitempty"`
	Consumer     string    `json:"consumer,omitempty"`
	Time         time.Time `json:"time,omitzero"`
	DataBytes    int       `json:"data_bytes"`
}

func (s *Server) dlq(c echo.Context) error {
	count := int64(100)
	if v := c.QueryParam("count"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > 10000 {
			return fail(c, http.StatusBadRequest, CodeBadRequest, "count must be between 1 and 10000")
		}
		count = n
	}
	out, err := s.DeadLetters(c.Request().Context(), count)
	if err != nil {
		return s.internal(c, "list dead letters", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"dead_letters": out})
}

// DeadLetters returns the newest count entries of the DLQ, newest first:
// GET /api/v1/dlq, and the status page's dead letters.
func (s *Server) DeadLetters(ctx context.Context, count int64) ([]DeadLetterView, error) {
	dls, err := s.store.DeadLetters(ctx, count)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetterView, 0, len(dls))
	for _, d := range dls {
		out = append(out, DeadLetterView{
			ID: d.ID, OriginStream: d.OriginStream, OriginID: d.OriginID, Type: d.Type, Reason: d.Reason,
			Deliveries: d.Deliveries, Group: d.Group, Consumer: d.Consumer, Time: d.Time, DataBytes: len(d.Data),
		})
	}
	return out, nil
}

var streamID = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

func (s *Server) retryDLQ(c echo.Context) error {
	id := c.Param("id")
	if !streamID.MatchString(id) {
		return fail(c, http.StatusBadRequest, CodeBadRequest, "not a stream entry id: "+strconv.Quote(id))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
	defer cancel()
	err := s.store.RetryDeadLetter(ctx, id, s.cfg.Streams.MaxLen)
	if errors.Is(err, stream.ErrNotFound) {
		return fail(c, http.StatusNotFound, CodeNotFound, "no dead letter "+id)
	}
	if err != nil {
		return s.internal(c, "retry dead letter", err)
	}
	s.log.Info("admin API: dead letter retried", "id", id)
	return c.JSON(http.StatusAccepted, map[string]any{"retried": id})
}

// DefaultUsageWindow is the window of GET /api/v1/usage without ?since.
const DefaultUsageWindow = 24 * time.Hour

// usageReport is where the runner time went over ?since (a Go duration,
// default 24h, at most usage.Retention): per group, repository and workflow.
func (s *Server) usageReport(c echo.Context) error {
	since := DefaultUsageWindow
	if v := c.QueryParam("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > usage.Retention {
			return fail(c, http.StatusBadRequest, CodeBadRequest, "since must be a duration between 1s and "+usage.Retention.String()+", e.g. 24h")
		}
		since = d
	}
	rep, err := s.usage.Report(c.Request().Context(), since)
	if err != nil {
		return s.internal(c, "read usage", err)
	}
	return c.JSON(http.StatusOK, rep)
}
