package docker_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/backend/docker"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
)

const fakeRunnerImage = "runner-manager/fake-runner:dev"

var (
	fakeRunnerOnce sync.Once
	fakeRunnerErr  error
)

// buildFakeRunner builds the fake runner image with the project's script.
func buildFakeRunner(t *testing.T) {
	t.Helper()
	fakeRunnerOnce.Do(func() {
		script, err := filepath.Abs("../../../../../scripts/build-fake-runner-image.sh")
		if err != nil {
			fakeRunnerErr = err
			return
		}
		out, err := exec.Command(script, fakeRunnerImage).CombinedOutput()
		if err != nil {
			fakeRunnerErr = fmt.Errorf("%s: %w: %s", script, err, out)
		}
	})
	require.NoError(t, fakeRunnerErr)
}

// The JIT configuration the provisioner asked the (fake) GitHub for reaches a
// runner in a container, which comes online with it.
func TestFakeRunnerComesOnline(t *testing.T) {
	t.Parallel()
	buildFakeRunner(t)
	manager := newManager(t)
	cli := dockerClient(t)

	fake, err := fakegithub.New(fakegithub.Options{Tokens: []string{"test-token"}})
	require.NoError(t, err)
	srv := httptest.NewServer(fake) // on 127.0.0.1: the container uses the host's network
	t.Cleanup(func() { srv.Close(); fake.Close() })
	gh, err := github.New(github.Options{BaseURL: srv.URL + "/", Token: config.Secret("test-token")})
	require.NoError(t, err)
	_, err = gh.CreateRunnerGroup(context.Background(), "acme", github.RunnerGroupSettings{Name: "linux"})
	require.NoError(t, err)

	rdb := redistest.Client(t)
	k := keys.New(manager)
	f := docker.NewFactory(manager, nil)
	t.Cleanup(func() { _ = f.Close() })
	pub := stream.NewPublisher(rdb, 1000)
	dspec := config.DockerSpec{Image: fakeRunnerImage, Network: "host", StopTimeout: 5 * time.Second}
	rt, err := runtime.New(runtime.Options{
		Config: groupConfig(manager, "linux", dspec, "self-hosted", "linux"),
		Type:   config.BackendDocker, Backend: f.Backend, GitHub: gh, Redis: rdb, Keys: k, Publisher: pub,
		Consumer: "test", CallTimeout: time.Minute, Block: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	spec := specJSON(t, dspec)
	name := manager + "-linux-1"
	result := func(id string) *rmv1.ProvisionResult {
		t.Helper()
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
	_, err = pub.Publish(context.Background(), k.Provision(config.BackendDocker), stream.TypeCommand,
		&rmv1.ProvisionCommand{CommandId: "create-1", Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{
			Attempt: 1,
			Spec: &rmv1.RunnerSpec{Name: name, Group: "linux", BackendType: config.BackendDocker,
				Labels: []string{"self-hosted", "linux"}, Organization: "acme", InstanceSpec: spec},
		}}})
	require.NoError(t, err)
	res := result("create-1")
	require.NotNil(t, res.GetCreated(), "result: %v", res)

	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if r, ok := fake.RunnerByName(name); ok && r.Status == github.RunnerOnline {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner never came online; container logs:\n%s", containerLogs(name))
		}
	}

	_, err = pub.Publish(context.Background(), k.Provision(config.BackendDocker), stream.TypeCommand,
		&rmv1.ProvisionCommand{CommandId: "delete-1", Command: &rmv1.ProvisionCommand_Delete{Delete: &rmv1.DeleteRunner{
			Name: name, Group: "linux", BackendType: config.BackendDocker, Organization: "acme", InstanceSpec: spec,
		}}})
	require.NoError(t, err)
	require.NotNil(t, result("delete-1").GetDeleted())
	_, ok := fake.RunnerByName(name)
	require.False(t, ok, "still registered")
	_, err = cli.ContainerInspect(context.Background(), name)
	require.Error(t, err, "the container is still there")
}

// containerLogs returns the end of a container's logs, for a failure message.
func containerLogs(name string) string {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err.Error()
	}
	defer cli.Close()
	rc, err := cli.ContainerLogs(context.Background(), name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return strings.TrimSpace(string(b))
}
