package main

import (
	"testing"

	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/envdoc"
)

// The scheduler reads service.Env alone: docs/configuration.md has no row
// read by it only.
func TestEnvironmentIsDocumented(t *testing.T) {
	t.Parallel()
	envdoc.Check(t, "scheduler", &service.Env{})
}
