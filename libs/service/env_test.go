package service_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/envdoc"
)

// The environment table of docs/configuration.md lists exactly what every
// binary reads (service.Env and config.Secrets); the binaries' own rows are
// checked beside their mains, and no row names another reader.
func TestEnvironmentIsDocumented(t *testing.T) {
	t.Parallel()
	want := append(service.EnvVariables("", &service.Env{}), service.EnvVariables("RM", &config.Secrets{})...)
	slices.Sort(want)
	require.Equal(t, want, envdoc.Documented(t, envdoc.Every),
		"service.Env and config.Secrets differ from the rows of docs/configuration.md read by every binary")
	binaries := []string{envdoc.Every, "ingress", "scheduler", "provisioner-docker", "provisioner-aws", "provisioner-gcp", "provisioner-bench", "rmctl"}
	seen := map[string]bool{}
	for _, r := range envdoc.Rows(t) {
		require.Contains(t, binaries, r.ReadBy, "variable %s", r.Variable)
		require.False(t, seen[r.Variable], "variable %s documented twice", r.Variable)
		seen[r.Variable] = true
	}
}

func TestEnvVariables(t *testing.T) {
	t.Parallel()
	type own struct {
		service.Env
		Extra   bool   `envconfig:"RM_EXTRA"`
		Skipped string // no tag: not a variable of ours
	}
	got := service.EnvVariables("", &own{})
	require.Equal(t, []string{"RM_CONFIG", "RM_LISTEN", "RM_LOG_LEVEL", "POD_NAME",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "RM_EXTRA"}, got)
	require.Contains(t, service.EnvVariables("RM", &config.Secrets{}), "RM_GITHUB_APP_ID")
}

// The environment reaches the flags' defaults, and a flag wins over it.
func TestEnvironmentFillsTheFlags(t *testing.T) {
	t.Setenv("RM_CONFIG", "/nonexistent/from-env.yaml")
	var stdout, stderr bytes.Buffer
	code := service.Run(service.Options{Binary: "test"}, []string{"--check-config"}, &stdout, &stderr, nil)
	require.Equal(t, 1, code)
	require.Contains(t, stderr.String(), "/nonexistent/from-env.yaml")

	stderr.Reset()
	code = service.Run(service.Options{Binary: "test"}, []string{"--check-config", "--config", "/nonexistent/from-flag.yaml"}, &stdout, &stderr, nil)
	require.Equal(t, 1, code)
	require.Contains(t, stderr.String(), "/nonexistent/from-flag.yaml")
	require.NotContains(t, stderr.String(), "from-env")
}

// A binary's own struct is filled before its run function; a value that
// does not parse is a usage error.
func TestBinaryEnvironment(t *testing.T) {
	type own struct {
		service.Env
		Flag bool `envconfig:"RM_TEST_FLAG"`
	}
	t.Setenv("RM_TEST_FLAG", "true")
	var env own
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, service.Run(service.Options{Binary: "test", Env: &env}, []string{"--version"}, &stdout, &stderr, nil))
	require.True(t, env.Flag)

	t.Setenv("RM_TEST_FLAG", "maybe")
	require.Equal(t, 2, service.Run(service.Options{Binary: "test", Env: &own{}}, []string{"--version"}, &stdout, &stderr, nil))
	require.Contains(t, stderr.String(), "RM_TEST_FLAG")

	type notEnv struct{ X string }
	require.Equal(t, 2, service.Run(service.Options{Binary: "test", Env: &notEnv{}}, []string{"--version"}, &stdout, &stderr, nil))
}
