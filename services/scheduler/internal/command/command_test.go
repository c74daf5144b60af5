package command_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

type ids map[string]int64

func (m ids) GitHubGroupID(_ context.Context, g string) (int64, error) { return m[g], nil }

func testConfig() *config.Config {
	cfg := &config.Config{Name: "rm", RunnerGroups: []config.RunnerGroup{{
		Name: "pool", Organization: "acme", Repository: "app", MinRunners: 0, MaxRunners: 2,
		Labels:  []string{"linux"},
		Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}},
	}}}
	cfg.SetDefaults()
	return cfg
}

func decode(t *testing.T, c state.Command) *rmv1.ProvisionCommand {
	t.Helper()
	var pc rmv1.ProvisionCommand
	require.NoError(t, proto.Unmarshal(c.Data, &pc))
	require.Equal(t, c.ID, pc.GetCommandId())
	require.NotNil(t, pc.GetIssuedAt())
	return &pc
}

func TestCommands(t *testing.T) {
	cfg := testConfig()
	b := command.New(cfg, ids{"pool": 5})
	ctx := context.Background()
	g, ok := command.Group(cfg, "pool")
	require.True(t, ok)
	require.Equal(t, state.Group{Name: "pool", Backend: "docker", MinRunners: 0, MaxRunners: 2}, g)
	_, ok = command.Group(cfg, "gone")
	require.False(t, ok)

	cands, err := b.Creates(ctx, g, 9, 2)
	require.NoError(t, err)
	require.Len(t, cands, 2)
	require.NotEqual(t, cands[0].Name, cands[1].Name)
	require.NotEqual(t, cands[0].Create.ID, cands[1].Create.ID)
	spec := decode(t, cands[0].Create).GetCreate().GetSpec()
	require.Equal(t, cands[0].Name, spec.GetName())
	require.Equal(t, "app", spec.GetRepository())
	require.EqualValues(t, 5, spec.GetRunnerGroupId())
	require.EqualValues(t, 9, spec.GetJobId())
	// The provisioner takes the instance specification from its own
	// configuration; the hash says which configuration this is.
	require.Empty(t, spec.GetInstanceSpec())
	want, err := config.SpecHash(cfg.Group("pool"))
	require.NoError(t, err)
	require.Equal(t, want, decode(t, cands[0].Create).GetCreate().GetSpecHash())

	r := state.Runner{Name: cands[0].Name, Group: "pool", Backend: "docker", ForJob: 9, InstanceID: "c1", GitHubRunnerID: 3}
	retry, err := b.Retry(ctx, r, 3)
	require.NoError(t, err)
	require.EqualValues(t, 3, decode(t, retry).GetCreate().GetAttempt())
	require.Equal(t, want, decode(t, retry).GetCreate().GetSpecHash())
	require.Empty(t, decode(t, retry).GetCreate().GetSpec().GetInstanceSpec())

	del, err := b.Delete(ctx, r, state.ReasonAdmin)
	require.NoError(t, err)
	d := decode(t, del).GetDelete()
	require.Equal(t, "c1", d.GetInstanceId())
	require.EqualValues(t, 3, d.GetGithubRunnerId())
	require.Equal(t, "acme", d.GetOrganization())
	require.Equal(t, "app", d.GetRepository())
	require.Empty(t, d.GetInstanceSpec(), "the provisioner finds the location in its configuration and the record's")
	require.False(t, d.GetRegistrationGone(), "an admin delete removes the registration")

	// GitHub unregisters an ephemeral runner once the job it started is
	// done: the provisioner is told not to spend an API call on it. One
	// not busy may never have received its (cancelled) job.
	busy, idle := r, r
	busy.State, idle.State = state.Busy, state.Idle
	for _, tc := range []struct {
		r      state.Runner
		reason string
		gone   bool
	}{
		{busy, state.ReasonJobCompleted, true},
		{idle, state.ReasonJobCompleted, false},
		{idle, state.ReasonRegistrationGone, true},
		{busy, state.ReasonTimeToLive, false},
		{idle, state.ReasonTimeToStart, false},
		{idle, state.ReasonScaleDown, false},
	} {
		del, err := b.Delete(ctx, tc.r, tc.reason)
		require.NoError(t, err)
		require.Equal(t, tc.gone, decode(t, del).GetDelete().GetRegistrationGone(), "%s %s", tc.r.State, tc.reason)
	}

	// A group removed from the configuration still gets its runners
	// deleted, where its record says they are.
	old := state.Runner{Name: "rm-old-x", Group: "old", Backend: "aws", Organization: "acme", Repository: "web",
		Location: map[string]string{"region": "eu-west-1"}}
	del, err = b.Delete(ctx, old, state.ReasonTimeToLive)
	require.NoError(t, err)
	d = decode(t, del).GetDelete()
	require.Equal(t, "aws", d.GetBackendType())
	require.Equal(t, "acme", d.GetOrganization())
	require.Equal(t, "web", d.GetRepository())
	require.Equal(t, map[string]string{"region": "eu-west-1"}, d.GetLocation())
	// A group whose configuration changed: the record wins.
	moved := r
	moved.Organization, moved.Repository, moved.Location = "acme-old", "", map[string]string{"host": "unix:///old.sock"}
	del, err = b.Delete(ctx, moved, state.ReasonScaleDown)
	require.NoError(t, err)
	d = decode(t, del).GetDelete()
	require.Equal(t, "acme-old", d.GetOrganization())
	require.Empty(t, d.GetRepository())
	require.Equal(t, map[string]string{"host": "unix:///old.sock"}, d.GetLocation())
	_, err = b.Creates(ctx, state.Group{Name: "old", MaxRunners: 1}, 0, 1)
	require.Error(t, err)
}
