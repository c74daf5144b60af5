package gcp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime/runtimetest"
)

// provisioner-gcp against commands that name another Compute Engine
// endpoint (where the provisioner's credentials would go): the runtime, the
// real factory and SDK clients, the configured gcefake; the forged endpoint,
// a second server, must never be called.
func TestProvisionerUsesTheConfiguredEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var forgedCalls atomic.Int64
	forged := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		forgedCalls.Add(1)
		http.Error(w, "forged", http.StatusTeapot)
	}))
	t.Cleanup(forged.Close)

	spec := b.spec
	cfg := &config.Config{Name: manager, RunnerGroups: []config.RunnerGroup{{
		Name: "linux", Organization: "acme", MaxRunners: 5, Labels: []string{"self-hosted", "linux"},
		Backend: config.Backend{Type: config.BackendGCP, GCP: &spec},
	}}}
	factory := NewFactory(manager, clientOpts())
	t.Cleanup(func() { _ = factory.Close() })
	rdb := redistest.Client(t)
	k := keys.New(redistest.NewName("gcp"))
	pub := stream.NewPublisher(rdb, 1000)
	gh := runtimetest.NewGitHub()
	runtimetest.Start(t, runtime.Options{Type: config.BackendGCP, Config: cfg, Backend: factory.Backend,
		GitHub: gh, Redis: rdb, Keys: k, Publisher: pub, CallTimeout: 30 * time.Second})

	forgedSpec := testSpec(forged.URL)
	forgedSpec.ServiceAccount = "owner@victim.iam.gserviceaccount.com"
	forgedJSON, err := json.Marshal(forgedSpec)
	require.NoError(t, err)
	seq := 0
	send := func(cmd *rmv1.ProvisionCommand) *rmv1.ProvisionResult {
		t.Helper()
		seq++
		cmd.CommandId = "cmd-" + string(rune('a'+seq))
		_, err := pub.Publish(context.Background(), k.Provision(config.BackendGCP), stream.TypeCommand, cmd)
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
		}, 30*time.Second, 20*time.Millisecond)
		return got
	}
	runnerSpec := func(name string, is []byte) *rmv1.RunnerSpec {
		return &rmv1.RunnerSpec{Name: name, Group: "linux", BackendType: config.BackendGCP,
			Labels: []string{"self-hosted", "linux"}, Organization: "acme", InstanceSpec: is}
	}

	// A create naming the forged endpoint: refused, nothing inserted anywhere.
	res := send(&rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{
		Attempt: 1, Spec: runnerSpec(manager+"-linux-1", forgedJSON)}}})
	require.NotNil(t, res.GetFailed(), "result: %v", res)
	require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_PERMANENT, res.GetFailed().GetClass())
	require.Contains(t, res.GetFailed().GetReason(), "refused (instance_spec)")
	require.Zero(t, b.fake.Calls("insert"))
	require.Zero(t, gh.Calls(runtimetest.MethodGenerateJITConfig))

	// As the scheduler sends it: on the configured endpoint.
	res = send(&rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{
		Attempt: 1, Spec: runnerSpec(manager+"-linux-2", nil)}}})
	require.NotNil(t, res.GetCreated(), "result: %v", res)
	require.Len(t, b.fake.Instances(), 1)
	require.Equal(t, spec.ServiceAccount, b.fake.Instances()[0].Resource.GetServiceAccounts()[0].GetEmail())

	// A listing and a delete naming the forged endpoint: done on the configured one.
	res = send(&rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_List{List: &rmv1.ListInstances{
		InstanceSpecs: [][]byte{forgedJSON}}}})
	require.NotNil(t, res.GetInventory(), "result: %v", res)
	require.Len(t, res.GetInventory().GetInstances(), 1)
	res = send(&rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{Delete: &rmv1.DeleteRunner{
		Name: manager + "-linux-2", Group: "linux", BackendType: config.BackendGCP, Organization: "acme",
		InstanceSpec: forgedJSON}}})
	require.NotNil(t, res.GetDeleted(), "result: %v", res)
	require.NotZero(t, b.fake.Calls("delete"))

	require.Zero(t, forgedCalls.Load(), "the forged endpoint was called")
}
