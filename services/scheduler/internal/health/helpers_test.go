package health_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/health"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

const (
	testToken   = "ghp_HEALTHCHECKTOKEN0123456789"
	timeToStart = 10 * time.Minute
	timeToLive  = 12 * time.Hour
	interval    = 10 * time.Minute
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is the test's manual clock, shared by the store, the checker and the
// memory backend.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one scenario's world: a real Redis, the fake GitHub behind the real
// client, an in-memory backend, the state store and a checker.
type env struct {
	t       *testing.T
	ctx     context.Context
	rdb     *redis.Client
	cfg     *config.Config
	keys    keys.Keys
	clock   *clock
	store   *state.Store
	fake    *fakegithub.Server
	srv     *httptest.Server
	gh      *github.Client
	backend *memory.Backend
	checker *health.Checker
	reg     *prometheus.Registry
	// repoLookups counts GET /repos/{owner}/{repo}.
	repoLookups *atomic.Int64
	// repoStatus, when not zero, is the status every GET /repos/{owner}/{repo}
	// answers (a GitHub outage of that route: 502).
	repoStatus *atomic.Int32
	// logs of the checker, at debug level; checked for secrets at cleanup.
	logs *logbuf.Buffer
}

func group(name string, minRunners, maxRunners int) config.RunnerGroup {
	return config.RunnerGroup{
		Name: name, Organization: "acme", MinRunners: minRunners, MaxRunners: maxRunners,
		Labels:  []string{"linux", name},
		Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}},
	}
}

// newEnv builds a world for cfg's groups (group "pool" when none).
func newEnv(t *testing.T, groups ...config.RunnerGroup) *env {
	t.Helper()
	if len(groups) == 0 {
		groups = []config.RunnerGroup{group("pool", 0, 3)}
	}
	cfg := &config.Config{
		Name:                redistest.NewName("hc"),
		RunnerGroups:        groups,
		HealthCheckInterval: interval,
		TimeToStart:         timeToStart,
		TimeToLive:          timeToLive,
	}
	cfg.SetDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, rdb: redistest.Client(t), cfg: cfg, keys: keys.New(cfg.Name),
		clock: &clock{now: time.UnixMilli(1_800_000_000_000)}, reg: prometheus.NewRegistry(), repoLookups: &atomic.Int64{}, repoStatus: &atomic.Int32{}, logs: &logbuf.Buffer{}}
	t.Cleanup(func() {
		require.NotContains(t, e.logs.String(), testToken, "the GitHub token never reaches a log")
	})

	fake, err := fakegithub.New(fakegithub.Options{Tokens: []string{testToken}, RunnerPingInterval: time.Second})
	require.NoError(t, err)
	e.fake = fake
	e.srv = httptest.NewServer(withRepositories(fake, e.repoLookups, e.repoStatus))
	t.Cleanup(func() {
		cancel()
		e.srv.CloseClientConnections()
		e.srv.Close()
		fake.Close()
	})
	e.gh, err = github.New(github.Options{
		BaseURL: e.srv.URL, Token: testToken, Timeout: 10 * time.Second,
		Logger:         slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 4 * time.Millisecond,
	})
	require.NoError(t, err)

	builder := command.New(cfg, nil)
	e.store = state.New(e.rdb, e.keys, state.Options{Commands: builder, Now: e.clock.Now})
	builder.SetGroupIDs(e.store)
	e.backend = memory.New(memory.Options{Manager: cfg.Name, Now: e.clock.Now})
	e.checker = e.newChecker("replica-1", e.reg)
	return e
}

func (e *env) newChecker(owner string, reg prometheus.Registerer) *health.Checker {
	return health.New(health.Options{
		Config: e.cfg, Store: e.store, GitHub: e.gh, Registerer: reg, Owner: owner,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
}

// withRepositories serves GET /repos/{owner}/{repo} (GitHub's standard
// endpoint, which the fake offers as /_fake/repos/...); a repository called
// "gone" does not exist; every lookup answers status when it is set.
func withRepositories(fake http.Handler, lookups *atomic.Int64, status *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "repos" {
			lookups.Add(1)
			if code := int(status.Load()); code != 0 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				_, _ = io.WriteString(w, `{"message":"Server Error"}`)
				return
			}
			if parts[2] == "gone" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/_fake/repos/" + parts[1] + "/" + parts[2]
			fake.ServeHTTP(w, r2)
			return
		}
		fake.ServeHTTP(w, r)
	})
}

func (e *env) group(name string) state.Group {
	g, ok := command.Group(e.cfg, name)
	require.True(e.t, ok)
	return g
}

// queued records a queued job of group g (with its repository) and returns
// the runner it reserved.
func (e *env) queued(g string, jobID int64, repo string) string {
	e.t.Helper()
	j := state.QueuedJob{ID: jobID, QueuedAt: e.clock.Now()}
	if repo != "" {
		j.Owner, j.Repo = "acme", repo
	}
	out, err := e.store.QueuedIn(e.ctx, []state.Group{e.group(g)}, j)
	require.NoError(e.t, err)
	if len(out.Reserved) == 0 {
		return ""
	}
	return out.Reserved[0]
}

// started creates the runner's instance on the memory backend and records
// its created result.
func (e *env) started(name string) {
	e.t.Helper()
	r := e.runner(name)
	inst, err := e.backend.Create(e.ctx, backend.RunnerSpec{Name: name, Group: r.Group, Labels: []string{"linux"}})
	require.NoError(e.t, err)
	_, err = e.store.Created(e.ctx, state.Runner{Name: name, Group: r.Group, Backend: r.Backend, InstanceID: inst.ID})
	require.NoError(e.t, err)
	require.Equal(e.t, state.Started, e.runner(name).State)
}

func (e *env) runner(name string) state.Runner {
	e.t.Helper()
	r, ok, err := e.store.Runner(e.ctx, name)
	require.NoError(e.t, err)
	require.True(e.t, ok, "runner %s has a record", name)
	return r
}

func (e *env) gone(name string) bool {
	e.t.Helper()
	_, ok, err := e.store.Runner(e.ctx, name)
	require.NoError(e.t, err)
	return !ok
}

// command_ is one provision command of the docker stream.
type command_ struct {
	ID  string
	Cmd *rmv1.ProvisionCommand
}

func (e *env) commands() []command_ {
	e.t.Helper()
	msgs, err := e.rdb.XRange(e.ctx, e.keys.Provision("docker"), "-", "+").Result()
	require.NoError(e.t, err)
	out := make([]command_, 0, len(msgs))
	for _, m := range msgs {
		var c rmv1.ProvisionCommand
		require.NoError(e.t, proto.Unmarshal([]byte(m.Values["data"].(string)), &c))
		out = append(out, command_{ID: m.ID, Cmd: &c})
	}
	return out
}

// deletes returns runner name -> reason of every delete command emitted.
func (e *env) deletes() map[string]string {
	out := map[string]string{}
	for _, c := range e.commands() {
		if d := c.Cmd.GetDelete(); d != nil {
			out[d.GetName()] = d.GetReason()
		}
	}
	return out
}

func (e *env) count(kind string) int {
	n := 0
	for _, c := range e.commands() {
		switch {
		case kind == "create" && c.Cmd.GetCreate() != nil,
			kind == "delete" && c.Cmd.GetDelete() != nil,
			kind == "list" && c.Cmd.GetList() != nil:
			n++
		}
	}
	return n
}

// answerLists plays a provisioner: every list command not answered yet is
// answered with an inventory of the memory backend (taken now), handed to
// the checker as dispatch would. It returns the reports.
func (e *env) answerLists(answered map[string]bool) []health.InventoryReport {
	e.t.Helper()
	var reps []health.InventoryReport
	for _, c := range e.commands() {
		if c.Cmd.GetList() == nil || answered[c.ID] {
			continue
		}
		answered[c.ID] = true
		list, err := e.backend.List(e.ctx)
		require.NoError(e.t, err)
		inv := &rmv1.Inventory{TakenAt: timestamppb.New(e.clock.Now())}
		for _, i := range list {
			inv.Instances = append(inv.Instances, &rmv1.Instance{Name: i.Name, InstanceId: i.ID, Group: i.Group,
				State: i.State, CreatedAt: timestamppb.New(i.CreatedAt)})
		}
		res := &rmv1.ProvisionResult{CommandId: c.Cmd.GetCommandId(), BackendType: "docker",
			Outcome: &rmv1.ProvisionResult_Inventory{Inventory: inv}}
		rep, err := e.checker.Inventory(e.ctx, res)
		require.NoError(e.t, err)
		reps = append(reps, rep)
	}
	return reps
}

// register registers a runner at the fake GitHub (JIT, offline until a
// runner connects) and returns its JIT configuration.
func (e *env) register(name string, labels ...string) *github.JITConfig {
	e.t.Helper()
	if len(labels) == 0 {
		labels = []string{"linux"}
	}
	jit, err := e.gh.GenerateJITConfig(e.ctx, github.OrgScope("acme"), github.JITRequest{Name: name, RunnerGroupID: 1, Labels: labels})
	require.NoError(e.t, err)
	return jit
}

// connect runs a fake runner with jit until the test ends, and waits until
// GitHub shows it online.
func (e *env) connect(jit *github.JITConfig) {
	e.t.Helper()
	e.run(jit)
	e.eventually(func() bool {
		r, ok := e.fake.RunnerByName(jit.Name)
		return ok && r.Status == "online"
	}, "runner %s online at GitHub", jit.Name)
}

// run runs a fake runner with jit until the test ends.
func (e *env) run(jit *github.JITConfig) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = fakerunner.Run(ctx, fakerunner.Config{JITConfig: jit.Encoded.Value(), Logger: quiet})
	}()
	e.t.Cleanup(func() { cancel(); <-done })
}

func (e *env) eventually(cond func() bool, msg string, args ...any) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for: "+msg, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) runOnce() health.Report {
	e.t.Helper()
	rep, err := e.checker.RunOnce(e.ctx)
	require.NoError(e.t, err)
	return rep
}

func (e *env) apiCalls(route string) int64 {
	return e.fake.Stats().APICalls[route]
}
