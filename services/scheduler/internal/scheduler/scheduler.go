// Package scheduler wires the scheduler's parts together: the state store,
// the event and result consumers, the reconcile loop and the admin API.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/api"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/dispatch"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/health"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/metrics"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/reconcile"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/recovery"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/statuspage"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

// Concurrency is the number of entries of each input stream one replica
// handles at once; every decision is one Lua script, so they never race.
const Concurrency = 8

// Run runs the scheduler until ctx is cancelled: it builds the parts
// (core, GitHub client, missed-webhook recovery, consumers and health
// checks, HTTP handlers), then runs them together.
func Run(ctx context.Context, app *service.App) error {
	for _, w := range app.Config.Warnings() {
		app.Log.Warn(w.Message, "key", w.Path)
	}
	c := newCore(app)
	gh := newGitHub(app)
	name := stream.ConsumerName(app.Env.PodName)
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	// owner names this replica in the leases it takes.
	owner := name + "-" + hex.EncodeToString(suffix[:])

	rec, err := newRecovery(app, gh, owner)
	if err != nil {
		return err
	}
	var lister reconcile.RunnerLister
	var hgh health.GitHub
	var budgets statuspage.BudgetSource
	if gh != nil { // a nil *github.Client must not become a non-nil interface
		lister, hgh, budgets = gh, gh, gh
	}
	loop := reconcile.New(app.Config, c.store, lister, c.metrics, app.Log)
	checker := health.New(health.Options{Config: app.Config, Store: c.store, GitHub: hgh, Logger: app.Log, Registerer: app.Metrics, Owner: owner})
	sm := stream.NewMetrics(app.Metrics) // one set for both consumers
	c.dispatch.OnInventory(checker.HandleInventory)
	events := newConsumer(app, sm, name, app.Keys.Events(), c.dispatch.Event)
	results := newConsumer(app, sm, name, app.Keys.Results(), c.dispatch.Result)
	app.AddReadiness("events consumer group", events.Ready)
	app.AddReadiness("results consumer group", results.Ready)
	registerHTTP(app, c, budgets)

	parts := []part{
		{"events consumer", events.Run},
		{"results consumer", results.Run},
		{"reconcile loop", func(ctx context.Context) error { return loop.Run(ctx, owner) }},
		{"health checks", checker.Run},
		{"usage ranking", func(ctx context.Context) error { return c.recorder.Run(ctx, app.Log) }},
	}
	if rec != nil {
		parts = append(parts, part{"missed-webhook recovery", func(ctx context.Context) error {
			return rec.Run(ctx, app.Config.Scheduler.RecoveryInterval)
		}})
	}
	return runParts(ctx, parts)
}

// core is the scheduler's state: the store and what decides on it.
type core struct {
	metrics  *metrics.Metrics
	store    *state.Store
	dispatch *dispatch.Handlers
	waits    *usage.Aggregate
	recorder *usage.Recorder
}

func newCore(app *service.App) core {
	cfg := app.Config
	m := metrics.New(app.Metrics)
	builder := command.New(cfg, nil)
	agg := usage.New(app.Redis, app.Keys, usage.Options{TopRepositories: cfg.Scheduler.UsageTopRepositories})
	recorder := usage.NewRecorder(app.Metrics, agg)
	store := state.New(app.Redis, app.Keys, state.Options{
		Commands:     builder,
		MaxLen:       cfg.Streams.MaxLen,
		JobRetention: cfg.Scheduler.JobRetention,
		Usage:        recorder.Observe,
	})
	builder.SetGroupIDs(store)
	return core{metrics: m, store: store, dispatch: dispatch.New(cfg, store, app.Log, m), waits: agg, recorder: recorder}
}

// newGitHub returns the GitHub client, or nil without credentials: the
// scheduler then runs without what needs GitHub.
func newGitHub(app *service.App) *github.Client {
	opts := github.FromConfig(app.Config)
	opts.Registerer, opts.Logger = app.Metrics, app.Log
	gh, err := github.New(opts)
	if err != nil {
		app.Log.Warn("no GitHub client: idle runners above the need are not scaled down", "error", err)
		return nil
	}
	return gh
}

// newRecovery returns the missed-webhook recovery, or nil when it has no
// source (or no GitHub client).
func newRecovery(app *service.App, gh *github.Client, owner string) (*recovery.Recovery, error) {
	if gh == nil {
		return nil, nil
	}
	hooks, err := recovery.HooksFromConfig(app.Config, gh)
	switch {
	case errors.Is(err, recovery.ErrNoSource):
		app.Log.Warn("missed-webhook recovery is off: it needs a GitHub App, or github.webhook_hooks with a token")
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("missed-webhook recovery: %w", err)
	}
	return recovery.New(recovery.Options{Redis: app.Redis, Keys: app.Keys, Hooks: hooks, Owner: owner,
		MaxPerPass: recovery.MaxPerPassFor(app.Config.Scheduler.RecoveryInterval), LeaseTTL: app.Config.Scheduler.LeaseTTL,
		Registerer: app.Metrics, Logger: app.Log}), nil
}

// newConsumer returns the consumer of one input stream in the scheduler's
// group.
func newConsumer(app *service.App, sm *stream.Metrics, name, streamKey string, handler stream.Handler) *stream.Consumer {
	cfg := app.Config
	return stream.NewConsumer(app.Redis, stream.ConsumerConfig{
		Stream:        streamKey,
		Group:         keys.GroupScheduler,
		Consumer:      name,
		Concurrency:   Concurrency,
		MinIdle:       cfg.Scheduler.ReclaimMinIdle,
		MaxDeliveries: cfg.Streams.MaxDeliveries,
		DLQ:           app.Keys.DLQ(),
		MaxLen:        cfg.Streams.MaxLen,
		Logger:        app.Log,
		Metrics:       sm,
	}, handler)
}

// registerHTTP adds the admin API and the status page to the service's
// server.
func registerHTTP(app *service.App, c core, budgets statuspage.BudgetSource) {
	cfg := app.Config
	if !cfg.Secrets.APIToken.IsSet() {
		app.Log.Warn("RM_API_TOKEN is not set: the admin API refuses every request")
	}
	admin := api.New(cfg, c.store, app.Log)
	page := statuspage.New(statuspage.Options{
		Token: cfg.Secrets.APIToken, Admin: admin, Store: c.store, Budgets: budgets, Waits: c.waits, Logger: app.Log,
	})
	app.Routes(func(e *echo.Echo) {
		admin.Register(e)
		page.Register(e)
	})
}

// part is one of the scheduler's long-running parts.
type part struct {
	what string
	run  func(context.Context) error
}

// runParts runs the parts until ctx is cancelled. A part that fails stops
// the others: the process exits and restarts rather than running half a
// scheduler. The error is the first part's that failed.
func runParts(ctx context.Context, parts []part) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error {
			if err := p.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", p.what, err)
			}
			return nil
		})
	}
	return g.Wait()
}
