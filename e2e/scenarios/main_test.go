// Package scenarios runs the whole system — real redis-server, the fake
// GitHub, the ingress, scheduler and provisioner-docker binaries, and the real
// Docker Engine with the fake-runner image — and checks invariants.
package scenarios

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/runner-manager/runner-manager/e2e/harness"
)

// binDir holds the binaries built once for every scenario.
var binDir string

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scenarios:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "rm-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	// The binaries build once for the whole suite; on a loaded 2-core machine
	// that took over 10 minutes (the build was killed), so the bound is the
	// suite's own timeout rather than a guess at the build's speed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := harness.Prepare(ctx, dir); err != nil {
		return 0, err
	}
	binDir = dir
	return m.Run(), nil
}
