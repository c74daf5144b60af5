// Command fake-runner is the fake GitHub Actions runner of the end-to-end tests
// (package fakerunner), shipped as the image runner-manager/fake-runner:dev.
// It reads ACTIONS_RUNNER_INPUT_JITCONFIG; exit status 0 after its one job, 143
// on SIGTERM/SIGINT (nothing reported), 1 on errors.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := fakerunner.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	cfg.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err = fakerunner.Run(ctx, cfg)
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, context.Canceled):
		os.Exit(143)
	default:
		log.Error("runner failed", "error", err)
		os.Exit(1)
	}
}
