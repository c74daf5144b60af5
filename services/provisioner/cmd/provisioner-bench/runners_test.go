package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backend"
)

func TestRunnerBackendKeepsAnEndedRunnerUntilDeleted(t *testing.T) {
	ctx := context.Background()
	b := &RunnerBackend{}
	t.Cleanup(b.Close)

	// An undecodable JIT configuration: the fake runner ends at once, as a
	// container whose process exits.
	spec := backend.RunnerSpec{Name: "r1", Group: "g", JITConfig: "not-a-jit-config"}
	inst, err := b.Create(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, "r1", inst.Name)
	again, err := b.Create(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, inst.ID, again.ID, "a second create returns the same instance")

	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := b.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		if list[0].State == "exited" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the runner never ended")
		time.Sleep(10 * time.Millisecond)
	}
	require.NotContains(t, b.Exits(), "success")

	require.NoError(t, b.Delete(ctx, "r1"))
	require.NoError(t, b.Delete(ctx, "r1"), "deleting twice is fine")
	require.Zero(t, b.Len())

	_, err = b.Create(ctx, backend.RunnerSpec{})
	require.ErrorIs(t, err, backend.ErrPermanent)
}
