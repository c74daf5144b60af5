package main

import (
	"testing"

	"github.com/runner-manager/runner-manager/libs/testutil/envdoc"
)

// The variables of the provisioner-bench (its environment struct) are the
// rows of docs/configuration.md read by it.
func TestEnvironmentIsDocumented(t *testing.T) {
	t.Parallel()
	envdoc.Check(t, "provisioner-bench", &environment{})
}
