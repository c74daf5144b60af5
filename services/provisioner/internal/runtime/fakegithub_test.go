package runtime_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
)

// The runtime against the project's fake GitHub, through the real client:
// group lookup, JIT registration, a redelivered create, and deletion.
func TestWithFakeGitHub(t *testing.T) {
	t.Parallel()
	fake, err := fakegithub.New(fakegithub.Options{Tokens: []string{"test-token"}})
	require.NoError(t, err)
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { srv.Close(); fake.Close() })
	client, err := github.New(github.Options{BaseURL: srv.URL + "/", Token: config.Secret("test-token")})
	require.NoError(t, err)
	group, err := client.CreateRunnerGroup(context.Background(), org, github.RunnerGroupSettings{Name: "linux"})
	require.NoError(t, err)

	b := setup(t, func(o *runtime.Options) { o.GitHub = client })

	first := b.result(t, b.create(t, "rt-linux-1"))
	created := first.GetCreated()
	require.NotNil(t, created, "result: %v", first)
	reg, ok := fake.RunnerByName("rt-linux-1")
	require.True(t, ok, "not registered at the fake GitHub")
	require.Equal(t, reg.ID, created.GetGithubRunnerId())
	require.Equal(t, group.ID, reg.RunnerGroupID)
	require.ElementsMatch(t, []string{"self-hosted", "linux"}, reg.Labels)

	// Delivered again: the name is taken at GitHub, the instance exists.
	again := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
	require.NotNil(t, again)
	require.Equal(t, created.GetInstanceId(), again.GetInstanceId())
	require.Equal(t, created.GetGithubRunnerId(), again.GetGithubRunnerId())
	require.Len(t, fake.Runners(), 1)
	require.Len(t, b.mem.Instances(), 1)

	// A stale registration (an attempt that never started its instance).
	stale, err := client.GenerateJITConfig(context.Background(), github.OrgScope(org),
		github.JITRequest{Name: "rt-linux-2", RunnerGroupID: group.ID, Labels: []string{"self-hosted"}})
	require.NoError(t, err)
	c2 := b.result(t, b.create(t, "rt-linux-2")).GetCreated()
	require.NotNil(t, c2)
	require.NotEqual(t, stale.RunnerID, c2.GetGithubRunnerId())
	require.Len(t, fake.Runners(), 2)

	var secrets []string
	for _, r := range b.mem.Instances() {
		secrets = append(secrets, r.Spec.JITConfig.Value())
	}
	require.Len(t, secrets, 2)

	for _, name := range []string{"rt-linux-1", "rt-linux-2"} {
		res := b.result(t, b.delete(t, name, 0))
		require.NotNil(t, res.GetDeleted(), "result: %v", res)
	}
	require.Empty(t, fake.Runners())
	require.Empty(t, b.mem.Instances())

	// The JIT configurations stayed out of Redis and the logs.
	dump, logs := dumpRedis(t, b.rdb), b.logs.String()
	for _, s := range secrets {
		require.NotEmpty(t, s)
		require.NotContains(t, dump, s)
		require.NotContains(t, logs, s)
	}
}
