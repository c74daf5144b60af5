package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/backendtest"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/backend/docker"
)

// testImage is built FROM scratch by TestMain: a static binary that waits
// for SIGTERM (no registry is reachable, nothing can be pulled).
const testImage = "runner-manager/provisioner-docker-test:sleeper"

const sleeperSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`

func TestMain(m *testing.M) {
	if err := buildTestImage(); err != nil {
		fmt.Fprintln(os.Stderr, "build the test image:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func buildTestImage() error {
	dir, err := os.MkdirTemp("", "sleeper")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(sleeperSource), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module sleeper\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "sleeper", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "sleeper"))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY sleeper /sleeper\nENTRYPOINT [\"/sleeper\"]\n")},
		{"sleeper", 0o755, bin},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{testImage}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// newManager returns a random manager name whose containers are all removed
// at cleanup, labelled or not.
func newManager(t *testing.T) string {
	t.Helper()
	manager := "rmt-" + randHex(4)
	cli := dockerClient(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", manager))})
		if err != nil {
			t.Errorf("cleanup: list containers: %v", err)
			return
		}
		for _, c := range list {
			if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				t.Errorf("cleanup: remove %v: %v", c.Names, err)
			}
		}
		nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", manager))})
		if err != nil {
			t.Errorf("cleanup: list networks: %v", err)
			return
		}
		for _, n := range nets {
			if err := cli.NetworkRemove(ctx, n.ID); err != nil {
				t.Errorf("cleanup: remove network %s: %v", n.Name, err)
			}
		}
	})
	return manager
}

func open(t *testing.T, manager string) *docker.Backend {
	t.Helper()
	b, err := docker.New(docker.Options{Manager: manager})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func specJSON(t *testing.T, s config.DockerSpec) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return b
}

func envOf(t *testing.T, cli *client.Client, name string) map[string]string {
	t.Helper()
	inst, err := cli.ContainerInspect(context.Background(), name)
	require.NoError(t, err)
	env := map[string]string{}
	for _, kv := range inst.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func TestSuite(t *testing.T) {
	manager := newManager(t)
	cli := dockerClient(t)
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backend.Backend { return open(t, manager) },
		Spec: func(t *testing.T, name string) backend.RunnerSpec {
			return backend.RunnerSpec{InstanceSpec: specJSON(t, config.DockerSpec{
				Image: testImage, CPUs: 0.25, Memory: "32m", StopTimeout: 5 * time.Second,
			})}
		},
		JITConfig: func(t *testing.T, name string) string {
			return envOf(t, cli, name)[docker.EnvJITConfig]
		},
		Foreign: func(t *testing.T) backendtest.Foreign {
			name := manager + "-foreign-" + randHex(3)
			ctx := context.Background()
			resp, err := cli.ContainerCreate(ctx, &container.Config{
				Image:  testImage,
				Labels: map[string]string{backend.LabelManager: "someone-else", backend.LabelRunner: name},
			}, nil, nil, nil, name)
			require.NoError(t, err)
			require.NoError(t, cli.ContainerStart(ctx, resp.ID, container.StartOptions{}))
			return backendtest.Foreign{Name: name, Exists: func(t *testing.T) bool {
				_, err := cli.ContainerInspect(ctx, name)
				return err == nil
			}}
		},
		InvalidSpec: func(t *testing.T, name string) backend.RunnerSpec {
			return backend.RunnerSpec{InstanceSpec: specJSON(t, config.DockerSpec{Image: testImage, Memory: "lots"})}
		},
		NewName: func() string { return manager + "-suite-" + randHex(3) },
	})
}

func TestCreateAppliesTheSpec(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	b := open(t, manager)
	vol := t.TempDir()
	name := manager + "-linux-1"
	inst, err := b.Create(context.Background(), backend.RunnerSpec{
		Name: name, Group: "linux", JITConfig: "the-jit",
		InstanceSpec: specJSON(t, config.DockerSpec{
			Image: testImage, CPUs: 1.5, Memory: "64m", Network: "none", StopTimeout: 7 * time.Second,
			Env:     map[string]string{"FOO": "bar", docker.EnvJITConfig: "not-from-the-spec"},
			Volumes: []string{vol + ":/data:ro"},
			Command: []string{"--ignored-arg"},
		}),
	})
	require.NoError(t, err)
	require.Equal(t, "running", inst.State)

	got, err := cli.ContainerInspect(context.Background(), name)
	require.NoError(t, err)
	require.Equal(t, inst.ID, got.ID)
	require.Equal(t, int64(1_500_000_000), got.HostConfig.NanoCPUs)
	require.Equal(t, int64(64<<20), got.HostConfig.Memory)
	require.Equal(t, "none", string(got.HostConfig.NetworkMode))
	require.False(t, got.HostConfig.AutoRemove)
	require.Equal(t, []string{vol + ":/data:ro"}, got.HostConfig.Binds)
	require.Equal(t, []string{"--ignored-arg"}, []string(got.Config.Cmd))
	require.Equal(t, manager, got.Config.Labels[backend.LabelManager])
	require.Equal(t, "linux", got.Config.Labels[backend.LabelGroup])
	require.Equal(t, name, got.Config.Labels[backend.LabelRunner])
	require.Equal(t, "7", got.Config.Labels[docker.LabelStopTimeout])
	_, err = time.Parse(time.RFC3339Nano, got.Config.Labels[docker.LabelCreatedAt])
	require.NoError(t, err)
	env := envOf(t, cli, name)
	require.Equal(t, "bar", env["FOO"])
	require.Equal(t, "the-jit", env[docker.EnvJITConfig], "the spec's env overrode the JIT config")
}

func TestCreateStartsAContainerCreatedButNotStarted(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	b := open(t, manager)
	name := manager + "-linux-1"
	// An earlier attempt died between create and start.
	resp, err := cli.ContainerCreate(context.Background(), &container.Config{
		Image:  testImage,
		Labels: map[string]string{backend.LabelManager: manager, backend.LabelGroup: "linux", backend.LabelRunner: name},
	}, nil, nil, nil, name)
	require.NoError(t, err)

	inst, err := b.Create(context.Background(), backend.RunnerSpec{Name: name, Group: "linux", JITConfig: "x",
		InstanceSpec: specJSON(t, config.DockerSpec{Image: testImage})})
	require.NoError(t, err)
	require.Equal(t, resp.ID, inst.ID)
	require.Equal(t, "running", inst.State)
}

func TestCreateRefusesANameTakenByAnotherOwner(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	b := open(t, manager)
	name := manager + "-linux-1"
	_, err := cli.ContainerCreate(context.Background(), &container.Config{Image: testImage}, nil, nil, nil, name)
	require.NoError(t, err)

	_, err = b.Create(context.Background(), backend.RunnerSpec{Name: name, Group: "linux", JITConfig: "x",
		InstanceSpec: specJSON(t, config.DockerSpec{Image: testImage})})
	require.ErrorIs(t, err, backend.ErrPermanent)
	got, err := cli.ContainerInspect(context.Background(), name)
	require.NoError(t, err, "the other owner's container was removed")
	require.Equal(t, "created", got.State.Status, "the other owner's container was started")
}

func TestCreateFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spec  config.DockerSpec
		class rmv1.FailureClass
	}{
		{"unknown network", config.DockerSpec{Image: testImage, Network: "no-such-network-" + randHex(3)}, rmv1.FailureClass_FAILURE_CLASS_PERMANENT},
		{"bad volume", config.DockerSpec{Image: testImage, Volumes: []string{"relative:path:bad:mode"}}, rmv1.FailureClass_FAILURE_CLASS_PERMANENT},
		{"negative cpus", config.DockerSpec{Image: testImage, CPUs: -1}, rmv1.FailureClass_FAILURE_CLASS_PERMANENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			manager := newManager(t)
			b := open(t, manager)
			name := manager + "-linux-1"
			secret := "jit-" + randHex(8)
			_, err := b.Create(context.Background(), backend.RunnerSpec{Name: name, Group: "linux",
				JITConfig: config.Secret(secret), InstanceSpec: specJSON(t, tt.spec)})
			require.Error(t, err)
			require.Equal(t, tt.class, backend.Classify(err), "error: %v", err)
			require.NotContains(t, err.Error(), secret)
			// Nothing is left behind.
			l, err := b.List(context.Background())
			require.NoError(t, err)
			require.Empty(t, l)
		})
	}
}

func TestMissingImageIsPulledAndFailsPermanentlyOrRetryably(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	b := open(t, manager)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := b.Create(ctx, backend.RunnerSpec{Name: manager + "-linux-1", Group: "linux", JITConfig: "x",
		InstanceSpec: specJSON(t, config.DockerSpec{Image: "runner-manager/no-such-image:" + randHex(4)})})
	// No registry is reachable here: the pull fails. Whether the registry
	// answered "not found" (permanent) or did not answer (retryable), it is
	// an error naming the pull, and no container is left.
	require.Error(t, err)
	require.Contains(t, err.Error(), "pull image")
	require.NotEqual(t, rmv1.FailureClass_FAILURE_CLASS_CAPACITY, backend.Classify(err))
	l, err := b.List(context.Background())
	require.NoError(t, err)
	require.Empty(t, l)
}

func TestDeleteStopsARunningRunner(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	b := open(t, manager)
	name := manager + "-linux-1"
	_, err := b.Create(context.Background(), backend.RunnerSpec{Name: name, Group: "linux", JITConfig: "x",
		InstanceSpec: specJSON(t, config.DockerSpec{Image: testImage, StopTimeout: 30 * time.Second})})
	require.NoError(t, err)
	require.NoError(t, b.Delete(context.Background(), name))
	_, err = cli.ContainerInspect(context.Background(), name)
	require.Error(t, err, "the container is still there")
}

func TestFactory(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	f := docker.NewFactory(manager, nil)
	t.Cleanup(func() { _ = f.Close() })
	require.NoError(t, f.Ping(context.Background()))
	b1, err := f.Backend(specJSON(t, config.DockerSpec{Image: testImage}))
	require.NoError(t, err)
	b2, err := f.Backend(nil)
	require.NoError(t, err)
	require.Same(t, b1, b2, "one client per engine")
	_, err = f.Backend([]byte(`{"image": 42}`))
	require.ErrorIs(t, err, backend.ErrPermanent)
}

// A leaked container that carries the manager's and the runner's labels but
// another container name (made by hand, or by an older version) is deleted
// by the runner's name too; another manager's container with the same runner
// label is not.
func TestDeleteFindsContainersByLabel(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	b := open(t, manager)
	name := manager + "-linux-leak"
	labels := func(m string) map[string]string {
		return map[string]string{backend.LabelManager: m, backend.LabelGroup: "linux", backend.LabelRunner: name}
	}
	ours, err := cli.ContainerCreate(context.Background(), &container.Config{Image: testImage, Labels: labels(manager)}, nil, nil, nil, "")
	require.NoError(t, err)
	theirs, err := cli.ContainerCreate(context.Background(), &container.Config{Image: testImage, Labels: labels(manager + "-other")}, nil, nil, nil, "")
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), theirs.ID, container.RemoveOptions{Force: true})
	})
	require.NoError(t, cli.ContainerStart(context.Background(), ours.ID, container.StartOptions{}))

	require.NoError(t, b.Delete(context.Background(), name))
	_, err = cli.ContainerInspect(context.Background(), ours.ID)
	require.Error(t, err, "the leaked container is still there")
	_, err = cli.ContainerInspect(context.Background(), theirs.ID)
	require.NoError(t, err, "another manager's container was removed")
}

// A runner is confined by default: a PID and a memory limit, not
// privileged, on the runners' own bridge (created once, with the manager's
// label, even by concurrent creates; no traffic between its containers);
// the security section adds no-new-privileges and dropped capabilities.
func TestCreateConfinesTheContainer(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	b := open(t, manager)
	names := make([]string, 4)
	errs := make(chan error, len(names))
	for i := range names {
		names[i] = fmt.Sprintf("%s-linux-%d", manager, i)
		spec := config.DockerSpec{Image: testImage}
		if i == 0 {
			spec.Security = &config.DockerSecurity{NoNewPrivileges: true, CapDrop: []string{"ALL"}}
		}
		go func() {
			_, err := b.Create(context.Background(), backend.RunnerSpec{Name: names[i], Group: "linux", JITConfig: "x",
				InstanceSpec: specJSON(t, spec)})
			errs <- err
		}()
	}
	for range names {
		require.NoError(t, <-errs)
	}

	nets, err := cli.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", manager))})
	require.NoError(t, err)
	require.Len(t, nets, 1, "one network for every runner")
	net := nets[0]
	require.Equal(t, config.DockerRunnerNetwork(manager), net.Name)
	require.Equal(t, "bridge", net.Driver)
	require.Equal(t, manager, net.Labels[backend.LabelManager])
	require.Equal(t, "false", net.Options["com.docker.network.bridge.enable_icc"])
	require.Equal(t, docker.BridgeName(manager), net.Options["com.docker.network.bridge.name"])

	for i, name := range names {
		got, err := cli.ContainerInspect(context.Background(), name)
		require.NoError(t, err)
		h := got.HostConfig
		require.False(t, h.Privileged)
		require.NotNil(t, h.PidsLimit)
		require.Equal(t, int64(config.DefaultDockerPidsLimit), *h.PidsLimit)
		require.Equal(t, int64(4<<30), h.Memory)
		require.Equal(t, config.DockerRunnerNetwork(manager), string(h.NetworkMode))
		require.Contains(t, got.NetworkSettings.Networks, config.DockerRunnerNetwork(manager))
		if i == 0 {
			require.Equal(t, []string{"no-new-privileges"}, h.SecurityOpt)
			require.Equal(t, []string{"ALL"}, []string(h.CapDrop))
		} else {
			require.Empty(t, h.SecurityOpt)
			require.Empty(t, h.CapDrop)
		}
	}

	// A network removed by hand (no container on it) is made again.
	for _, name := range names {
		require.NoError(t, b.Delete(context.Background(), name))
	}
	require.NoError(t, cli.NetworkRemove(context.Background(), net.ID))
	_, err = b.Create(context.Background(), backend.RunnerSpec{Name: names[0], Group: "linux", JITConfig: "x",
		InstanceSpec: specJSON(t, config.DockerSpec{Image: testImage})})
	require.NoError(t, err)
	_, err = cli.NetworkInspect(context.Background(), config.DockerRunnerNetwork(manager), network.InspectOptions{})
	require.NoError(t, err)
}

// The limits and the network of the group win over the defaults; the
// Docker socket is refused before anything is created.
func TestCreateWithTheGroupsLimitsAndNoSocket(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	b := open(t, manager)
	name := manager + "-linux-1"
	_, err := b.Create(context.Background(), backend.RunnerSpec{Name: name, Group: "linux", JITConfig: "x",
		InstanceSpec: specJSON(t, config.DockerSpec{Image: testImage, Memory: "0", PidsLimit: -1, Network: "none"})})
	require.NoError(t, err)
	got, err := cli.ContainerInspect(context.Background(), name)
	require.NoError(t, err)
	require.Equal(t, int64(0), got.HostConfig.Memory)
	require.Equal(t, "none", string(got.HostConfig.NetworkMode))
	require.False(t, got.HostConfig.Privileged)

	_, err = b.Create(context.Background(), backend.RunnerSpec{Name: manager + "-linux-2", Group: "linux", JITConfig: "x",
		InstanceSpec: specJSON(t, config.DockerSpec{Image: testImage, Volumes: []string{"/var/run/docker.sock:/var/run/docker.sock"}})})
	require.ErrorIs(t, err, backend.ErrPermanent)
	_, err = cli.ContainerInspect(context.Background(), manager+"-linux-2")
	require.Error(t, err, "a container with the Docker socket was created")
}
