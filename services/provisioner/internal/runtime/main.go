package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// BackendSetup is what a provisioner binary brings to Main: the factory of
// its backends, the readiness check of its API, and the release of its
// clients.
type BackendSetup struct {
	Factory BackendFactory
	// Ping checks that the backend's API answers (GET /readyz); optional.
	Ping func(ctx context.Context) error
	// Close releases the backend's clients at shutdown; optional.
	Close func() error
}

// Main is the whole main of a provisioner-<type> binary: flags,
// configuration, logs, health and metrics (libs/service), the GitHub client,
// and the runtime over the backend that setup opens. env is the binary's
// environment struct (service.Options.Env: nil, or a pointer to a struct
// embedding service.Env), filled before setup runs.
func Main(backendType string, env any, setup func(ctx context.Context, app *service.App) (BackendSetup, error)) {
	service.Main(service.Options{
		Binary: "provisioner-" + backendType,
		Listen: func(c *config.Config) string { return c.Provisioner.Listen },
		Env:    env,
	}, func(ctx context.Context, app *service.App) error {
		b, err := setup(ctx, app)
		if err != nil {
			return fmt.Errorf("open the %s backend: %w", backendType, err)
		}
		if b.Close != nil {
			defer func() {
				if err := b.Close(); err != nil {
					app.Log.Warn("close the backend", "error", err.Error())
				}
			}()
		}
		gh, err := NewGitHubClient(app)
		if err != nil {
			return err
		}
		return Serve(ctx, app, backendType, b, gh)
	})
}

// NewGitHubClient returns the GitHub client of the configuration, with its
// metrics and logs on app's.
func NewGitHubClient(app *service.App) (*github.Client, error) {
	opts := github.FromConfig(app.Config)
	opts.Registerer = app.Metrics
	opts.Logger = app.Log
	c, err := github.New(opts)
	if err != nil {
		return nil, fmt.Errorf("github client: %w", err)
	}
	return c, nil
}

// Serve runs the runtime of backendType in app until ctx is cancelled, with
// the readiness checks of the consumer group and of the backend.
func Serve(ctx context.Context, app *service.App, backendType string, b BackendSetup, gh GitHub) error {
	if b.Factory == nil {
		return errors.New("provisioner: the backend has no factory")
	}
	opts := OptionsFromConfig(app.Config)
	opts.Type = backendType
	opts.Config = app.Config
	opts.Backend = b.Factory
	opts.GitHub = gh
	opts.Redis = app.Redis
	opts.Keys = app.Keys
	opts.Publisher = app.Publisher
	opts.Logger = app.Log
	opts.Metrics = app.Metrics
	opts.StreamMetrics = stream.NewMetrics(app.Metrics)
	opts.Consumer = stream.ConsumerName(app.Env.PodName)
	rt, err := New(opts)
	if err != nil {
		return err
	}
	app.AddReadiness("consumer-group", rt.Ready)
	if b.Ping != nil {
		app.AddReadiness("backend", b.Ping)
	}
	return rt.Run(ctx)
}

// OptionsFromConfig returns the Options that the configuration decides:
// concurrency, timeouts, reclaim and deliveries.
func OptionsFromConfig(c *config.Config) Options {
	return Options{
		Concurrency:   c.Provisioner.Concurrency,
		CallTimeout:   c.Provisioner.CallTimeout,
		MinIdle:       c.Streams.ReclaimMinIdle,
		MaxDeliveries: c.Streams.MaxDeliveries,
	}
}
