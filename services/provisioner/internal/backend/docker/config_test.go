package docker

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
)

// The container a group on the default image gets, without pulling it: the
// official image has no entrypoint and no command, so the backend starts
// /home/runner/run.sh as user runner, with the JIT configuration in
// ACTIONS_RUNNER_INPUT_JITCONFIG; confined by default.
func TestDefaultImageContainerConfig(t *testing.T) {
	t.Parallel()
	b := &Backend{manager: "rm", now: nowUTC}
	g := config.RunnerGroup{Name: "linux", Backend: config.Backend{Type: config.BackendDocker}}
	cfgFile := config.Config{Name: "rm", RunnerGroups: []config.RunnerGroup{g}}
	cfgFile.SetDefaults()
	spec, err := cfgFile.RunnerGroups[0].InstanceSpecJSON()
	require.NoError(t, err)
	for _, s := range [][]byte{spec, nil} { // from the scheduler, and empty
		cfg, host, err := b.containerConfig(backend.RunnerSpec{Name: "rm-linux-1", Group: "linux", JITConfig: "the-jit", InstanceSpec: s})
		require.NoError(t, err)
		require.Equal(t, "ghcr.io/actions/actions-runner:2.330.0", cfg.Image)
		require.Equal(t, []string{"/home/runner/run.sh"}, []string(cfg.Cmd))
		require.Empty(t, cfg.Entrypoint)
		require.Equal(t, "runner", cfg.User)
		require.True(t, slices.Contains(cfg.Env, "ACTIONS_RUNNER_INPUT_JITCONFIG=the-jit"), "env %v", len(cfg.Env))
		require.False(t, host.Privileged)
		require.Equal(t, int64(4<<30), host.Memory)
		require.NotNil(t, host.PidsLimit)
		require.Equal(t, int64(4096), *host.PidsLimit)
		require.Equal(t, "rm-runners", string(host.NetworkMode))
		require.Empty(t, host.SecurityOpt)
		require.Empty(t, host.CapDrop)
	}
}

// Another image keeps its own entrypoint and command (the fake runner image
// of the e2e suite); a configured command wins on the official image too.
func TestOtherImagesKeepTheirCommand(t *testing.T) {
	t.Parallel()
	b := &Backend{manager: "rm", now: nowUTC}
	for _, tt := range []struct {
		spec     config.DockerSpec
		wantCmd  []string
		wantUser string
	}{
		{config.DockerSpec{Image: "runner-manager/fake-runner:dev"}, nil, ""},
		{config.DockerSpec{Image: "ghcr.io/actions/actions-runner:2.321.0"}, []string{"/home/runner/run.sh"}, "runner"},
		{config.DockerSpec{Image: "ghcr.io/actions/actions-runner:2.321.0", Command: []string{"/bin/sh", "-c", "x"}}, []string{"/bin/sh", "-c", "x"}, ""},
	} {
		js, err := jsonOf(tt.spec)
		require.NoError(t, err)
		cfg, _, err := b.containerConfig(backend.RunnerSpec{Name: "rm-linux-1", JITConfig: "j", InstanceSpec: js})
		require.NoError(t, err)
		require.Equal(t, tt.wantCmd, []string(cfg.Cmd), tt.spec.Image)
		require.Equal(t, tt.wantUser, cfg.User, tt.spec.Image)
	}
}

// The backend refuses the Docker socket even when the spec did not pass
// through the configuration's validation.
func TestDockerSocketRefused(t *testing.T) {
	t.Parallel()
	b := &Backend{manager: "rm", now: nowUTC}
	for _, vol := range []string{"/var/run/docker.sock:/var/run/docker.sock", "/run:/host-run:ro", "/:/host"} {
		js, err := jsonOf(config.DockerSpec{Image: "x", Volumes: []string{vol}})
		require.NoError(t, err)
		_, _, err = b.containerConfig(backend.RunnerSpec{Name: "rm-linux-1", JITConfig: "j", InstanceSpec: js})
		require.ErrorIs(t, err, backend.ErrPermanent, vol)
		require.True(t, strings.Contains(err.Error(), "Docker socket"), err.Error())
	}
}

func nowUTC() time.Time { return time.Now().UTC() }

func jsonOf(s config.DockerSpec) ([]byte, error) { return json.Marshal(s) }
