package github_test

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
)

// A provisioner asks for a JIT configuration just before it creates the
// instance, and handles a name already registered at GitHub.
func Example() {
	cfg := &config.Config{}
	cfg.SetDefaults()
	opts := github.FromConfig(cfg)
	opts.Registerer = prometheus.NewRegistry()
	opts.Logger = slog.Default()
	client, err := github.New(opts)
	if err != nil {
		return // no credentials in the environment
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scope := github.OrgScope("my-org")
	req := github.JITRequest{Name: "runner-manager-linux-small-x1y2", RunnerGroupID: 1, Labels: []string{"self-hosted", "linux"}}
	jit, err := client.GenerateJITConfig(ctx, scope, req)
	if errors.Is(err, github.ErrConflict) {
		// A registration of that name exists (a previous attempt): remove it
		// if it is ours and idle, then ask again.
		if old, err := client.GetRunnerByName(ctx, scope, req.Name); err == nil && !old.Busy {
			_ = client.DeleteRunner(ctx, scope, old.ID)
		}
		jit, err = client.GenerateJITConfig(ctx, scope, req)
	}
	if err != nil {
		return
	}
	_ = jit.Encoded // hand it to the instance; never log it

	// Health checks spend the rate limit only above the reserve.
	low := github.WithPriority(ctx, github.PriorityLow)
	_, _ = client.FindRunnersByPrefix(low, scope, "runner-manager-")
}
