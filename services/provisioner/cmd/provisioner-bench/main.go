// Command provisioner-bench is the provisioner of the benchmarks
// (docs/benchmarks.md): the real runtime of provisioner-docker (it consumes
// {P}:provision:docker, registers runners, publishes results) over a backend
// that is not Docker, so that thousands of runners fit on one machine. It is
// started by the e2e harness like every other binary; it is not shipped.
//
// The environment (environment below; docs/configuration.md) chooses the
// backend and the GitHub it talks to.
//
// Besides the runtime's metrics it exposes runner_manager_bench_instances
// (instances not deleted), runner_manager_bench_runner_exits_total{reason}
// (how the fake runners ended) and
// runner_manager_bench_github_calls_total{org} (the runtime's GitHub calls by
// organization, client GitHub only).
package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime/runtimetest"
)

// environment is what provisioner-bench reads from the environment.
type environment struct {
	service.Env
	// Backend is memory (instances that run nothing, libs/backend/memory;
	// the default) or runners (each instance a fake runner,
	// libs/github/fakerunner, in a goroutine).
	Backend string `envconfig:"RM_BENCH_BACKEND"`
	// GitHub is client (the real GitHub client of the configuration; the
	// default) or memory (an in-memory GitHub, runtimetest, no HTTP at all).
	GitHub string `envconfig:"RM_BENCH_GITHUB"`
	// BrokenGroups are groups whose creates fail for good (runners backend).
	BrokenGroups []string `envconfig:"RM_BENCH_BROKEN_GROUPS"`
}

func main() {
	var env environment
	service.Main(service.Options{
		Binary: "provisioner-bench",
		Listen: func(c *config.Config) string { return c.Provisioner.Listen },
		Env:    &env,
	}, func(ctx context.Context, app *service.App) error { return run(ctx, app, env) })
}

func run(ctx context.Context, app *service.App, env environment) error {
	b, err := newBackend(app, env.Backend, env.BrokenGroups)
	if err != nil {
		return err
	}
	gh, err := newGitHub(app, env.GitHub)
	if err != nil {
		return err
	}
	setup := runtime.BackendSetup{Factory: func([]byte) (backend.Backend, error) { return b, nil }}
	return runtime.Serve(ctx, app, config.BackendDocker, setup, gh)
}

func newBackend(app *service.App, kind string, broken []string) (backend.Backend, error) {
	switch kind {
	case "", "memory":
		return memory.New(memory.Options{Manager: app.Keys.Prefix()}), nil
	case "runners":
		exits := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_bench_runner_exits_total",
			Help: "Fake runners of the benchmark's backend that ended, by reason.",
		}, []string{"reason"})
		b := &RunnerBackend{Broken: map[string]bool{}, Exited: func(r string) { exits.WithLabelValues(r).Inc() }}
		for _, g := range broken {
			if g = strings.TrimSpace(g); g != "" {
				b.Broken[g] = true
			}
		}
		instances := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "runner_manager_bench_instances",
			Help: "Instances of the benchmark's backend not deleted.",
		}, func() float64 { return float64(b.Len()) })
		if err := app.Metrics.Register(exits); err != nil {
			return nil, err
		}
		if err := app.Metrics.Register(instances); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("RM_BENCH_BACKEND=%q: want memory or runners", kind)
}

func newGitHub(app *service.App, kind string) (runtime.GitHub, error) {
	switch kind {
	case "", "client":
		calls := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_bench_github_calls_total",
			Help: "GitHub API requests of the provisioner, by organization (/orgs/<org>/...).",
		}, []string{"org"})
		if err := app.Metrics.Register(calls); err != nil {
			return nil, err
		}
		opts := github.FromConfig(app.Config)
		opts.Registerer = app.Metrics
		opts.Logger = app.Log
		opts.Transport = &orgCounter{calls: calls}
		c, err := github.New(opts)
		if err != nil {
			return nil, fmt.Errorf("github client: %w", err)
		}
		return c, nil
	case "memory":
		return runtimetest.NewGitHub(), nil
	}
	return nil, fmt.Errorf("RM_BENCH_GITHUB=%q: want client or memory", kind)
}

// orgCounter is the transport of the GitHub client: it counts the requests
// by organization (/orgs/<org>/...) and passes them on.
type orgCounter struct {
	calls *prometheus.CounterVec
}

func (c *orgCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "orgs" {
			c.calls.WithLabelValues(parts[i+1]).Inc()
			break
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}
