package docker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/backend/docker"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime/runtimetest"
)

// provisioner-docker end to end, short of the binary: commands on a real
// Redis, the runtime, containers on the real engine.
func TestProvisionerDocker(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	rdb := redistest.Client(t)
	k := keys.New(manager)
	gh := runtimetest.NewGitHub()
	f := docker.NewFactory(manager, nil)
	t.Cleanup(func() { _ = f.Close() })
	var logs logbuf.Buffer
	pub := stream.NewPublisher(rdb, 1000)
	dspec := config.DockerSpec{Image: testImage, Memory: "32m", StopTimeout: 2 * time.Second}
	rt, err := runtime.New(runtime.Options{
		Config: groupConfig(manager, "linux", dspec, "self-hosted"),
		Type:   config.BackendDocker, Backend: f.Backend, GitHub: gh, Redis: rdb, Keys: k, Publisher: pub,
		Consumer: "test", CallTimeout: time.Minute, Block: 50 * time.Millisecond,
		Backoff: func(int64) time.Duration { return 10 * time.Millisecond },
		Logger:  slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	spec := specJSON(t, dspec)
	name := manager + "-linux-1"
	send := func(cmd *rmv1.ProvisionCommand) *rmv1.ProvisionResult {
		t.Helper()
		cmd.CommandId = fmt.Sprintf("cmd-%d", time.Now().UnixNano())
		_, err := pub.Publish(context.Background(), k.Provision(config.BackendDocker), stream.TypeCommand, cmd)
		require.NoError(t, err)
		var got *rmv1.ProvisionResult
		require.Eventually(t, func() bool {
			entries, err := rdb.XRange(context.Background(), k.Results(), "-", "+").Result()
			require.NoError(t, err)
			for _, e := range entries {
				res := &rmv1.ProvisionResult{}
				data, _ := e.Values[stream.FieldData].(string)
				require.NoError(t, stream.Message{Data: []byte(data)}.Unmarshal(res))
				if res.GetCommandId() == cmd.CommandId {
					got = res
					return true
				}
			}
			return false
		}, time.Minute, 20*time.Millisecond)
		return got
	}

	res := send(&rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{
		Attempt: 1,
		Spec: &rmv1.RunnerSpec{Name: name, Group: "linux", BackendType: config.BackendDocker,
			Labels: []string{"self-hosted"}, Organization: "acme", InstanceSpec: spec},
	}}})
	created := res.GetCreated()
	require.NotNil(t, created, "result: %v", res)
	got, err := cli.ContainerInspect(context.Background(), name)
	require.NoError(t, err)
	require.Equal(t, got.ID, created.GetInstanceId())
	require.True(t, got.State.Running)
	jits := gh.JITConfigs()
	require.Len(t, jits, 1)
	require.Equal(t, jits[0], envOf(t, cli, name)[docker.EnvJITConfig])

	inv := send(&rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_List{List: &rmv1.ListInstances{
		InstanceSpecs: [][]byte{spec},
	}}}).GetInventory()
	require.NotNil(t, inv)
	require.Len(t, inv.GetInstances(), 1)
	require.Equal(t, name, inv.GetInstances()[0].GetName())
	require.Equal(t, "running", inv.GetInstances()[0].GetState())

	res = send(&rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{Delete: &rmv1.DeleteRunner{
		Name: name, Group: "linux", BackendType: config.BackendDocker, Organization: "acme",
		GithubRunnerId: created.GetGithubRunnerId(), InstanceSpec: spec,
	}}})
	require.NotNil(t, res.GetDeleted(), "result: %v", res)
	_, err = cli.ContainerInspect(context.Background(), name)
	require.Error(t, err, "the container is still there")
	require.Empty(t, gh.Runners())

	// An earlier delivery registered a runner and created its container, and
	// died before starting it: the create starts over with a new JIT config.
	name2 := manager + "-linux-2"
	stale := gh.Register(github.OrgScope("acme"), name2)
	_, err = cli.ContainerCreate(context.Background(), &container.Config{
		Image: testImage, Env: []string{docker.EnvJITConfig + "=stale"},
		Labels: map[string]string{backend.LabelManager: manager, backend.LabelGroup: "linux", backend.LabelRunner: name2},
	}, nil, nil, nil, name2)
	require.NoError(t, err)
	res = send(&rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{
		Attempt: 1,
		Spec: &rmv1.RunnerSpec{Name: name2, Group: "linux", BackendType: config.BackendDocker,
			Labels: []string{"self-hosted"}, Organization: "acme", InstanceSpec: spec},
	}}})
	require.NotNil(t, res.GetCreated(), "result: %v", res)
	require.NotEqual(t, stale.ID, res.GetCreated().GetGithubRunnerId())
	got, err = cli.ContainerInspect(context.Background(), name2)
	require.NoError(t, err)
	require.True(t, got.State.Running)
	jits = gh.JITConfigs()
	require.Equal(t, jits[len(jits)-1], envOf(t, cli, name2)[docker.EnvJITConfig])
	regs := gh.Runners()
	require.Len(t, regs, 1)
	require.Equal(t, res.GetCreated().GetGithubRunnerId(), regs[0].ID)

	// The JIT configurations are in no stream entry and no log line.
	var dump strings.Builder
	for _, s := range []string{k.Provision(config.BackendDocker), k.Results(), k.DLQ()} {
		entries, err := rdb.XRange(context.Background(), s, "-", "+").Result()
		require.NoError(t, err)
		fmt.Fprintf(&dump, "%v\n", entries)
	}
	require.Contains(t, dump.String(), name)
	require.Contains(t, logs.String(), name)
	for _, jit := range jits {
		require.NotContains(t, dump.String(), jit)
		require.NotContains(t, logs.String(), jit)
	}
}

// groupConfig is a provisioner's configuration with one docker group of
// organization acme.
func groupConfig(manager, group string, spec config.DockerSpec, labels ...string) *config.Config {
	return &config.Config{Name: manager, RunnerGroups: []config.RunnerGroup{{
		Name: group, Organization: "acme", MaxRunners: 10, Labels: labels,
		Backend: config.Backend{Type: config.BackendDocker, Docker: &spec},
	}}}
}

// A forged create for a known group, whose instance specification mounts the
// host's root, names another engine and another image, is refused: no
// container is made, on the engine or anywhere else; a create of the same
// group as the scheduler sends it runs the configured image, without the mount.
func TestProvisionerDockerRefusesAForgedSpec(t *testing.T) {
	t.Parallel()
	manager := newManager(t)
	cli := dockerClient(t)
	rdb := redistest.Client(t)
	k := keys.New(manager)
	gh := runtimetest.NewGitHub()
	f := docker.NewFactory(manager, nil)
	t.Cleanup(func() { _ = f.Close() })
	pub := stream.NewPublisher(rdb, 1000)
	dspec := config.DockerSpec{Image: testImage, Memory: "32m", StopTimeout: 2 * time.Second}
	rt, err := runtime.New(runtime.Options{
		Config: groupConfig(manager, "linux", dspec, "self-hosted"),
		Type:   config.BackendDocker, Backend: f.Backend, GitHub: gh, Redis: rdb, Keys: k, Publisher: pub,
		Consumer: "test", CallTimeout: time.Minute, Block: 50 * time.Millisecond,
		Backoff: func(int64) time.Duration { return 10 * time.Millisecond },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	create := func(id, name string, instanceSpec []byte) *rmv1.ProvisionResult {
		t.Helper()
		_, err := pub.Publish(context.Background(), k.Provision(config.BackendDocker), stream.TypeCommand,
			&rmv1.ProvisionCommand{CommandId: id, Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{
				Attempt: 1,
				Spec: &rmv1.RunnerSpec{Name: name, Group: "linux", BackendType: config.BackendDocker,
					Labels: []string{"self-hosted"}, Organization: "acme", InstanceSpec: instanceSpec},
			}}})
		require.NoError(t, err)
		var got *rmv1.ProvisionResult
		require.Eventually(t, func() bool {
			entries, err := rdb.XRange(context.Background(), k.Results(), "-", "+").Result()
			require.NoError(t, err)
			for _, e := range entries {
				res := &rmv1.ProvisionResult{}
				data, _ := e.Values[stream.FieldData].(string)
				require.NoError(t, stream.Message{Data: []byte(data)}.Unmarshal(res))
				if res.GetCommandId() == id {
					got = res
					return true
				}
			}
			return false
		}, time.Minute, 20*time.Millisecond)
		return got
	}

	// On the real engine: the test image with the host's root mounted.
	// Elsewhere: another engine (nothing listens there) and another image.
	for i, forged := range []config.DockerSpec{
		{Image: testImage, Volumes: []string{"/:/host"}, Command: []string{"sleep", "600"}, StopTimeout: time.Second},
		{Image: testImage + "-evil", Volumes: []string{"/:/host"}, Host: "tcp://127.0.0.1:1"},
	} {
		name := fmt.Sprintf("%s-linux-forged%d", manager, i)
		res := create(fmt.Sprintf("forged-%d", i), name, specJSON(t, forged))
		require.NotNil(t, res.GetFailed(), "result: %v", res)
		require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_PERMANENT, res.GetFailed().GetClass())
		require.Contains(t, res.GetFailed().GetReason(), "refused (instance_spec)")
		_, err = cli.ContainerInspect(context.Background(), name)
		require.Error(t, err, "a container was created for the forged command")
	}
	require.Zero(t, gh.Calls(runtimetest.MethodGenerateJITConfig))
	// No container of this manager on the engine, with the mount or without.
	owned, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", backend.LabelManager+"="+manager))})
	require.NoError(t, err)
	for _, c := range owned {
		for _, m := range c.Mounts {
			require.NotEqual(t, "/", m.Source, "container %v mounts the host's root", c.Names)
		}
	}
	require.Empty(t, owned)

	// The scheduler's create (no instance_spec) runs the configured spec.
	name2 := manager + "-linux-2"
	res := create("good", name2, nil)
	require.NotNil(t, res.GetCreated(), "result: %v", res)
	t.Cleanup(func() { _ = cli.ContainerRemove(context.Background(), name2, container.RemoveOptions{Force: true}) })
	got, err := cli.ContainerInspect(context.Background(), name2)
	require.NoError(t, err)
	require.Equal(t, testImage, got.Config.Image)
	for _, m := range got.Mounts {
		require.NotEqual(t, "/", m.Source, "the host's root is mounted")
	}
	require.Empty(t, got.HostConfig.Binds)
}
