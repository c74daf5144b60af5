package state_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// Issue 19: a paused group gets no new runner, whatever asks for one (a
// queued job, min_runners); its demand is still counted and its runners are
// kept. The mode is read from the key libs/keys names, by every replica.
func TestPausedGroupGetsNoNewRunner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := state.Group{Name: "p", Backend: "docker", MinRunners: 1, MaxRunners: 3}

	res, err := b.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.Len(t, res.Reserved, 1, "min_runners while active")
	warm := res.Reserved[0]

	prev, err := b.store.SetGroupMode(ctx, g.Name, state.ModePaused)
	require.NoError(t, err)
	require.Equal(t, state.ModeActive, prev)
	v, err := b.rdb.Get(ctx, b.keys.GroupMode(g.Name)).Result()
	require.NoError(t, err)
	require.Equal(t, "paused", v, "stored under the libs/keys name")

	// Another replica's store (no cache) sees the pause.
	other := state.New(b.rdb, b.keys, state.Options{Commands: &fakeCommands{}, Now: func() time.Time { return b.now }})
	for job := int64(1); job <= 3; job++ {
		out, err := other.Queued(ctx, g, job, b.now)
		require.NoError(t, err)
		require.Equal(t, "p", out.Group)
		require.Empty(t, out.Reserved, "job %d: paused", job)
	}
	require.EqualValues(t, 3, b.card(t, b.keys.GroupDemand(g.Name)), "the demand is still counted")
	// min_runners is not topped up either: the warm runner's delete leaves none.
	_, err = b.store.Deleted(ctx, g, warm)
	require.NoError(t, err)
	res, err = b.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.Empty(t, res.Reserved)
	require.Zero(t, b.card(t, b.keys.GroupRunners(g.Name)))
	st, err := b.store.GroupStatus(ctx, g.Name)
	require.NoError(t, err)
	require.Equal(t, state.ModePaused, st.Mode)
	require.EqualValues(t, 3, st.Demand)

	// Resume: the waiting demand gets its runners at the next top-up.
	prev, err = other.SetGroupMode(ctx, g.Name, state.ModeActive)
	require.NoError(t, err)
	require.Equal(t, state.ModePaused, prev)
	require.Zero(t, b.rdb.Exists(ctx, b.keys.GroupMode(g.Name)).Val(), "active is no key")
	res, err = b.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.Len(t, res.Reserved, 3)
	m, err := b.store.GroupMode(ctx, g.Name)
	require.NoError(t, err)
	require.Equal(t, state.ModeActive, m)
}

// A draining group gets no new runner either; DeleteFree moves its pending,
// started and idle runners to deleting (reason drained), never a busy one,
// and the busy one's completed event deletes it without a replacement.
func TestDrainingGroup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := state.Group{Name: "d", Backend: "docker", MinRunners: 2, MaxRunners: 4}

	res, err := b.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.Len(t, res.Reserved, 2)
	idle, pending := res.Reserved[0], res.Reserved[1]
	_, err = b.store.Created(ctx, state.Runner{Name: idle, Group: g.Name, Backend: "docker"})
	require.NoError(t, err)
	_, err = b.store.MarkIdle(ctx, idle)
	require.NoError(t, err)
	out, err := b.store.Queued(ctx, g, 7, b.now)
	require.NoError(t, err)
	require.Len(t, out.Reserved, 1)
	busy := out.Reserved[0]
	_, err = b.store.InProgress(ctx, g, state.JobUpdate{JobID: 7, RunnerName: busy})
	require.NoError(t, err)
	require.Equal(t, state.Busy, b.runner(t, busy).State)
	before := len(b.commands(t))

	_, err = b.store.SetGroupMode(ctx, g.Name, state.ModeDraining)
	require.NoError(t, err)
	moved, err := b.store.DeleteFree(ctx, g.Name, state.ReasonDrained)
	require.NoError(t, err)
	names := make([]string, 0, len(moved))
	for _, r := range moved {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	want := []string{idle, pending}
	slices.Sort(want)
	require.Equal(t, want, names)
	require.Equal(t, state.Deleting, b.runner(t, idle).State)
	require.Equal(t, state.Deleting, b.runner(t, pending).State)
	require.Equal(t, state.Busy, b.runner(t, busy).State)
	cmds := b.commands(t)[before:]
	require.ElementsMatch(t, []string{"delete " + idle + " drained", "delete " + pending + " drained"}, cmds)

	// Nothing new while draining: not for min_runners, not for a queued job,
	// not when capacity is released.
	for _, name := range []string{idle, pending} {
		del, err := b.store.Deleted(ctx, g, name)
		require.NoError(t, err)
		require.Empty(t, del.Reserved)
	}
	out, err = b.store.Queued(ctx, g, 8, b.now)
	require.NoError(t, err)
	require.Empty(t, out.Reserved)
	done, err := b.store.Completed(ctx, g, state.JobUpdate{JobID: 7, RunnerName: busy})
	require.NoError(t, err)
	require.Equal(t, busy, done.Deleting, "the busy runner goes when its job completes")
	require.Empty(t, done.Reserved)
	del, err := b.store.Deleted(ctx, g, busy)
	require.NoError(t, err)
	require.Empty(t, del.Reserved)
	require.Zero(t, b.card(t, b.keys.GroupRunners(g.Name)))
	require.Equal(t, []string{"delete " + busy + " job_completed"}, b.commands(t)[before+2:])
}

// Spill-over: a draining group has no room (its free runners are going), a
// paused one has room only in a free runner its demand does not claim.
func TestQueuedSpillOverAroundHeldGroups(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := state.Group{Name: "a", Backend: "docker", MinRunners: 1, MaxRunners: 3}
	sp := state.Group{Name: "b", Backend: "docker", MaxRunners: 3}
	_, err := b.store.TopUp(ctx, a)
	require.NoError(t, err)

	_, err = b.store.SetGroupMode(ctx, a.Name, state.ModeDraining)
	require.NoError(t, err)
	out, err := b.store.QueuedIn(ctx, []state.Group{a, sp}, state.QueuedJob{ID: 1, QueuedAt: b.now})
	require.NoError(t, err)
	require.Equal(t, "b", out.Group, "a draining group has no room, even with a free runner")

	_, err = b.store.SetGroupMode(ctx, a.Name, state.ModePaused)
	require.NoError(t, err)
	out, err = b.store.QueuedIn(ctx, []state.Group{a, sp}, state.QueuedJob{ID: 2, QueuedAt: b.now})
	require.NoError(t, err)
	require.Equal(t, "a", out.Group, "the paused group's warm runner is room")
	require.Empty(t, out.Reserved)
	out, err = b.store.QueuedIn(ctx, []state.Group{a, sp}, state.QueuedJob{ID: 3, QueuedAt: b.now})
	require.NoError(t, err)
	require.Equal(t, "b", out.Group, "paused: no room to grow")
}

// A stray value in a mode key is active (never blocks a group), and the
// modes of groups no longer configured are forgotten.
func TestModeKeysNeverBlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := state.Group{Name: "s", Backend: "docker", MinRunners: 1, MaxRunners: 1}
	require.NoError(t, b.rdb.Set(ctx, b.keys.GroupMode(g.Name), "bogus", 0).Err())
	m, err := b.store.GroupMode(ctx, g.Name)
	require.NoError(t, err)
	require.Equal(t, state.ModeActive, m)
	res, err := b.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.Len(t, res.Reserved, 1)

	_, err = b.store.SetGroupMode(ctx, "gone", state.ModeDraining)
	require.NoError(t, err)
	_, err = b.store.SetGroupMode(ctx, "kept", state.ModePaused)
	require.NoError(t, err)
	_, err = b.store.SetGroupMode(ctx, "x", state.Mode("nope"))
	require.Error(t, err)
	gone, err := b.store.ForgetModes(ctx, func(g string) bool { return g == "kept" || g == "s" })
	require.NoError(t, err)
	require.Equal(t, []string{"gone"}, gone)
	require.Zero(t, b.rdb.Exists(ctx, b.keys.GroupMode("gone")).Val())
	m, err = b.store.GroupMode(ctx, "kept")
	require.NoError(t, err)
	require.Equal(t, state.ModePaused, m)
}
