// Package tracing runs the whole system (redis-server, the fake GitHub, the
// ingress, scheduler and provisioner-docker binaries, Docker with the
// fake-runner image) with OpenTelemetry on and an in-test OTLP/HTTP
// receiver, and checks that one job makes one trace from the webhook to the
// provisioner's backend call.
package tracing

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/runner-manager/runner-manager/e2e/harness"
)

// binDir holds the binaries built once for the package.
var binDir string

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "rm-e2e-tracing-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Only what these tests run (the fake-runner image is built by its script).
	if os.Getenv(harness.EnvBuildOnly) == "" {
		os.Setenv(harness.EnvBuildOnly, "ingress,scheduler,provisioner-docker,fakegithub")
	}
	if err := harness.Prepare(ctx, dir); err != nil {
		return 0, err
	}
	binDir = dir
	return m.Run(), nil
}
