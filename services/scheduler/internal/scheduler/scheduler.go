// Package scheduler wires the scheduler's parts together: the state store,
// the event and result consumers, the reconcile loop and the admin API.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

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
)

// Concurrency is the number of entries of each input stream one replica
// handles at once; every decision is one Lua script, so they never race.
const Concurrency = 8

// Run runs the scheduler until ctx is cancelled.
func Run(ctx context.Context, app *service.App) error {
	cfg, log := app.Config, app.Log
	for _, w := range cfg.Warnings() {
		log.Warn(w.Message, "key", w.Path)
	}
	m := metrics.New(app.Metrics)
	builder := command.New(cfg, nil)
	store := state.New(app.Redis, app.Keys, state.Options{
		Commands:     builder,
		MaxLen:       cfg.Streams.MaxLen,
		JobRetention: cfg.Scheduler.JobRetention,
	})
	builder.SetGroupIDs(store)
	h := dispatch.New(cfg, store, log, m)

	name := stream.DefaultConsumerName()
	sm := stream.NewMetrics(app.Metrics)
	consumer := func(streamKey string, handler stream.Handler) *stream.Consumer {
		return stream.NewConsumer(app.Redis, stream.ConsumerConfig{
			Stream:        streamKey,
			Group:         keys.GroupScheduler,
			Consumer:      name,
			Concurrency:   Concurrency,
			MinIdle:       cfg.Scheduler.ReclaimMinIdle,
			MaxDeliveries: cfg.Streams.MaxDeliveries,
			DLQ:           app.Keys.DLQ(),
			MaxLen:        cfg.Streams.MaxLen,
			Logger:        log,
			Metrics:       sm,
		}, handler)
	}

	var lister reconcile.RunnerLister
	opts := github.FromConfig(cfg)
	opts.Registerer, opts.Logger = app.Metrics, log
	gh, err := github.New(opts)
	if err != nil {
		log.Warn("no GitHub client: idle runners above the need are not scaled down", "error", err)
	} else {
		lister = gh
	}
	loop := reconcile.New(cfg, store, lister, m, log)

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	owner := name + "-" + hex.EncodeToString(suffix[:])

	var rec *recovery.Recovery
	if gh != nil {
		src, err := recovery.SourceFromConfig(cfg, gh)
		switch {
		case err == nil:
			rec = recovery.New(recovery.Options{Redis: app.Redis, Keys: app.Keys, Source: src, Owner: owner,
				MaxPerPass: recovery.MaxPerPassFor(cfg.Scheduler.RecoveryInterval), LeaseTTL: cfg.Scheduler.LeaseTTL, Registerer: app.Metrics, Logger: log})
		case errors.Is(err, recovery.ErrNoSource):
			log.Warn("missed-webhook recovery is off: it needs a GitHub App, or github.webhook_hook_id and github.webhook_organization with a token")
		default:
			return fmt.Errorf("missed-webhook recovery: %w", err)
		}
	}

	var hgh health.GitHub
	if gh != nil {
		hgh = gh // a nil *github.Client must not become a non-nil interface
	}
	checker := health.New(health.Options{Config: cfg, Store: store, GitHub: hgh, Logger: log, Registerer: app.Metrics, Owner: owner})
	events := consumer(app.Keys.Events(), checker.WrapEvents(h.Event))
	results := consumer(app.Keys.Results(), checker.WrapResults(h.Result))
	app.AddReadiness("events consumer group", events.Ready)
	app.AddReadiness("results consumer group", results.Ready)

	if !cfg.Secrets.APIToken.IsSet() {
		log.Warn("RM_API_TOKEN is not set: the admin API refuses every request")
	}
	api.New(cfg, store, log).Register(app.HTTP)

	// A part that fails stops the others: the process exits and restarts
	// rather than running half a scheduler.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	run := func(what string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", what, err)
				cancel()
			}
		})
	}
	run("events consumer", events.Run)
	run("results consumer", results.Run)
	run("reconcile loop", func(ctx context.Context) error { return loop.Run(ctx, owner) })
	run("health checks", checker.Run)
	if rec != nil {
		run("missed-webhook recovery", func(ctx context.Context) error { return rec.Run(ctx, cfg.Scheduler.RecoveryInterval) })
	}
	wg.Wait()
	close(errs)
	return errors.Join(func() []error {
		var out []error
		for err := range errs {
			out = append(out, err)
		}
		return out
	}()...)
}
