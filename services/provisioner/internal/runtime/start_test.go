package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime/runtimetest"
)

// runtimetest.Start is how other services' tests run a provisioner.
func TestRuntimetestStart(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	k := keys.New(redistest.NewName("start"))
	mem := memory.New(memory.Options{})
	gh := runtimetest.NewGitHub()
	cfg := &config.Config{Name: "start", RunnerGroups: []config.RunnerGroup{{Name: "g", Organization: "acme",
		MaxRunners: 1, Labels: []string{"self-hosted"}, Backend: config.Backend{Type: config.BackendDocker}}}}
	runtimetest.Start(t, runtime.Options{Redis: rdb, Keys: k, GitHub: gh, Config: cfg,
		Backend: func([]byte) (backend.Backend, error) { return mem, nil }})

	_, err := stream.NewPublisher(rdb, 100).Publish(context.Background(), k.Provision("docker"), stream.TypeCommand,
		&rmv1.ProvisionCommand{CommandId: "c1", Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{
			Spec: &rmv1.RunnerSpec{Name: "r-1", Group: "g", Organization: "acme", Labels: []string{"self-hosted"}}}}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := rdb.XLen(context.Background(), k.Results()).Result()
		return err == nil && n == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Len(t, mem.Instances(), 1)
	require.Len(t, gh.Runners(), 1)
}
