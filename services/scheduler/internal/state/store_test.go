package state_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// fakeCommands encodes commands as readable strings: "create <name> <attempt>",
// "delete <name> <reason>".
type fakeCommands struct{ n atomic.Int64 }

func (f *fakeCommands) Creates(_ context.Context, g state.Group, forJob int64, n int) ([]state.Candidate, error) {
	out := make([]state.Candidate, n)
	for i := range out {
		name := fmt.Sprintf("rm-%s-%06d", g.Name, f.n.Add(1))
		out[i] = state.Candidate{Name: name, ForJob: forJob, Create: state.Command{Data: []byte("create " + name + " 1")}}
	}
	return out, nil
}

func (f *fakeCommands) Retry(_ context.Context, r state.Runner, attempt int) (state.Command, error) {
	return state.Command{Data: fmt.Appendf(nil, "create %s %d", r.Name, attempt)}, nil
}

func (f *fakeCommands) Delete(_ context.Context, r state.Runner, reason string) (state.Command, error) {
	return state.Command{Data: []byte("delete " + r.Name + " " + reason)}, nil
}

func (f *fakeCommands) Update(_ context.Context, r state.Runner, u state.JobUpdate) (state.Command, error) {
	return state.Command{Data: fmt.Appendf(nil, "update %s %d", r.Name, u.JobID)}, nil
}

type bundle struct {
	rdb   *redis.Client
	keys  keys.Keys
	store *state.Store
	now   time.Time
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{rdb: redistest.Client(t), keys: keys.New(redistest.NewName("st")), now: time.UnixMilli(1_700_000_000_000)}
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: &fakeCommands{}, Now: func() time.Time { return b.now }})
	return b
}

// commands returns the data of every command on the docker stream.
func (b *bundle) commands(t *testing.T) []string {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), b.keys.Provision("docker"), "-", "+").Result()
	require.NoError(t, err)
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		require.Equal(t, "command", m.Values["type"])
		out = append(out, m.Values["data"].(string))
	}
	return out
}

func (b *bundle) card(t *testing.T, key string) int64 {
	t.Helper()
	n, err := b.rdb.ZCard(context.Background(), key).Result()
	require.NoError(t, err)
	return n
}

func (b *bundle) runner(t *testing.T, name string) state.Runner {
	t.Helper()
	r, ok, err := b.store.Runner(context.Background(), name)
	require.NoError(t, err)
	require.True(t, ok, "runner %s has no record", name)
	return r
}

var small = state.Group{Name: "small", Backend: "docker", MinRunners: 0, MaxRunners: 3}

func TestTransitionsTable(t *testing.T) {
	require.True(t, state.Pending.CanMove(state.Started))
	require.True(t, state.Idle.CanMove(state.Deleting))
	require.False(t, state.Busy.CanMove(state.Idle))
	require.False(t, state.Deleting.CanMove(state.Pending))
	require.True(t, state.Deleting.CanMove(state.Busy), "a busy result takes a deleting runner back")
	require.False(t, state.Deleting.CanMove(state.Idle))
	for _, s := range state.States() {
		require.True(t, s.Valid())
		require.False(t, s.CanMove(s), "%s -> %s", s, s)
	}
	require.False(t, state.State("creating").Valid())
}

func TestQueuedReservesOnceAndKeysMatchLibsKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	out, err := b.store.Queued(ctx, small, 42, b.now)
	require.NoError(t, err)
	require.False(t, out.Known)
	require.Len(t, out.Reserved, 1)
	name := out.Reserved[0]

	// The Lua key names are those of libs/keys.
	require.EqualValues(t, 1, b.card(t, b.keys.GroupRunners("small")))
	require.EqualValues(t, 1, b.card(t, b.keys.GroupFree("small")))
	require.EqualValues(t, 1, b.card(t, b.keys.GroupDemand("small")))
	require.EqualValues(t, 2, b.rdb.Exists(ctx, b.keys.Job(42), b.keys.Runner(name)).Val())

	r := b.runner(t, name)
	require.Equal(t, state.Pending, r.State)
	require.Equal(t, "small", r.Group)
	require.Equal(t, "docker", r.Backend)
	require.EqualValues(t, 42, r.ForJob)
	require.Equal(t, 1, r.Attempt)
	require.Equal(t, b.now, r.CreatedAt)
	j, ok, err := b.store.Job(ctx, 42)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, state.JobQueued, j.Status)
	require.Equal(t, []string{"create " + name + " 1"}, b.commands(t))

	// A duplicate queued changes nothing.
	out, err = b.store.Queued(ctx, small, 42, b.now)
	require.NoError(t, err)
	require.True(t, out.Known)
	require.Empty(t, out.Reserved)
	require.EqualValues(t, 1, b.card(t, b.keys.GroupRunners("small")))
	require.Len(t, b.commands(t), 1)
}

func TestCapacityRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := state.Group{Name: "g", Backend: "docker", MinRunners: 2, MaxRunners: 5}

	// min_runners alone, with a batch of 1 so that the method has to top up again.
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: &fakeCommands{}, Batch: 1, Now: func() time.Time { return b.now }})
	res, err := b.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.Len(t, res.Reserved, 2)
	res, err = b.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.Empty(t, res.Reserved)

	// Each queued job adds one runner, up to max_runners.
	for job := int64(1); job <= 6; job++ {
		_, err := b.store.Queued(ctx, g, job, b.now)
		require.NoError(t, err)
	}
	require.EqualValues(t, 5, b.card(t, b.keys.GroupRunners("g")))
	require.EqualValues(t, 6, b.card(t, b.keys.GroupDemand("g")))
	require.Len(t, b.commands(t), 5)

	// A group in backoff waits.
	require.NoError(t, b.rdb.Set(ctx, b.keys.GroupBackoff("h"), "1", time.Minute).Err())
	out, err := b.store.Queued(ctx, state.Group{Name: "h", Backend: "docker", MaxRunners: 5}, 100, b.now)
	require.NoError(t, err)
	require.Empty(t, out.Reserved)
	require.EqualValues(t, 1, b.card(t, b.keys.GroupDemand("h")))

	// A group no longer configured (MaxRunners 0) never reserves.
	out, err = b.store.Queued(ctx, state.Group{Name: "gone"}, 101, b.now)
	require.NoError(t, err)
	require.Empty(t, out.Reserved)
}

// A script that cannot emit its command writes nothing: a scheduler killed
// between reserving and emitting cannot exist, and a failing XADD leaves no
// reservation behind.
func TestReservationAndCommandAreAllOrNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	require.NoError(t, b.rdb.Set(ctx, b.keys.Provision("docker"), "not a stream", 0).Err())

	_, err := b.store.Queued(ctx, small, 7, b.now)
	require.Error(t, err)
	require.Contains(t, err.Error(), "WRONGTYPE")
	n, err := b.rdb.Exists(ctx, b.keys.Job(7), b.keys.GroupDemand("small"), b.keys.GroupRunners("small"), b.keys.GroupFree("small")).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a failed script left state behind")
	keys, err := b.rdb.Keys(ctx, b.keys.Runner("*")).Result()
	require.NoError(t, err)
	require.Empty(t, keys)

	// Once the stream can be written, the same event reserves normally.
	require.NoError(t, b.rdb.Del(ctx, b.keys.Provision("docker")).Err())
	out, err := b.store.Queued(ctx, small, 7, b.now)
	require.NoError(t, err)
	require.Len(t, out.Reserved, 1)
	require.Len(t, b.commands(t), 1)
}

func TestJobLifecycleAndOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("in order", func(t *testing.T) {
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 1, b.now.Add(-time.Minute))
		require.NoError(t, err)
		name := q.Reserved[0]
		ip, err := b.store.InProgress(ctx, small, state.JobUpdate{JobID: 1, RunnerName: name})
		require.NoError(t, err)
		require.True(t, ip.Applied)
		require.True(t, ip.Ours)
		require.Equal(t, b.now.Add(-time.Minute), ip.QueuedAt)
		require.Empty(t, ip.Reserved)
		r := b.runner(t, name)
		require.Equal(t, state.Busy, r.State)
		require.EqualValues(t, 1, r.JobID)
		require.Zero(t, b.card(t, b.keys.GroupFree("small")))
		require.Zero(t, b.card(t, b.keys.GroupDemand("small")))

		c, err := b.store.Completed(ctx, small, state.JobUpdate{JobID: 1, RunnerName: name})
		require.NoError(t, err)
		require.True(t, c.Applied)
		require.Equal(t, name, c.Deleting)
		require.Equal(t, state.Deleting, b.runner(t, name).State)
		require.Equal(t, []string{"create " + name + " 1", "update " + name + " 1", "delete " + name + " job_completed"}, b.commands(t))
		ttl := b.rdb.PTTL(ctx, b.keys.Job(1)).Val()
		require.Greater(t, ttl, 71*time.Hour)
		// Still counted against the limit until deleted.
		require.EqualValues(t, 1, b.card(t, b.keys.GroupRunners("small")))

		d, err := b.store.Deleted(ctx, small, name)
		require.NoError(t, err)
		require.True(t, d.Removed)
		require.Empty(t, d.Reserved)
		require.Zero(t, b.card(t, b.keys.GroupRunners("small")))
		_, ok, err := b.store.Runner(ctx, name)
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("completed before in_progress", func(t *testing.T) {
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 2, b.now)
		require.NoError(t, err)
		name := q.Reserved[0]
		c, err := b.store.Completed(ctx, small, state.JobUpdate{JobID: 2, RunnerName: name})
		require.NoError(t, err)
		require.True(t, c.Applied)
		ip, err := b.store.InProgress(ctx, small, state.JobUpdate{JobID: 2, RunnerName: name})
		require.NoError(t, err)
		require.False(t, ip.Applied, "a late in_progress moved a completed job back")
		require.Equal(t, state.Deleting, b.runner(t, name).State)
		j, _, _ := b.store.Job(ctx, 2)
		require.Equal(t, state.JobCompleted, j.Status)
		// A repeated completed emits no second delete.
		c, err = b.store.Completed(ctx, small, state.JobUpdate{JobID: 2, RunnerName: name})
		require.NoError(t, err)
		require.False(t, c.Applied)
		require.Len(t, b.commands(t), 2)
	})

	t.Run("in_progress before queued", func(t *testing.T) {
		b := setup(t)
		ip, err := b.store.InProgress(ctx, small, state.JobUpdate{JobID: 3, RunnerName: "someone-else"})
		require.NoError(t, err)
		require.True(t, ip.Applied)
		require.False(t, ip.Ours)
		q, err := b.store.Queued(ctx, small, 3, b.now)
		require.NoError(t, err)
		require.True(t, q.Known)
		require.Empty(t, q.Reserved)
		require.Zero(t, b.card(t, b.keys.GroupDemand("small")))
		require.Empty(t, b.commands(t))
	})

	t.Run("cancelled while queued", func(t *testing.T) {
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 4, b.now)
		require.NoError(t, err)
		c, err := b.store.Completed(ctx, small, state.JobUpdate{JobID: 4})
		require.NoError(t, err)
		require.True(t, c.Applied)
		require.Empty(t, c.Deleting)
		require.Zero(t, b.card(t, b.keys.GroupDemand("small")))
		// The surplus runner stays free, for the reconcile loop to scale down.
		require.Equal(t, state.Pending, b.runner(t, q.Reserved[0]).State)
	})

	t.Run("dropped completed", func(t *testing.T) {
		// What remains for the health checks when the completed event is lost:
		// the job in_progress (with a bounded TTL), the runner busy and counted.
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 5, b.now)
		require.NoError(t, err)
		name := q.Reserved[0]
		_, err = b.store.InProgress(ctx, small, state.JobUpdate{JobID: 5, RunnerName: name})
		require.NoError(t, err)
		j, ok, err := b.store.Job(ctx, 5)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, state.JobInProgress, j.Status)
		require.Equal(t, name, j.RunnerName)
		ttl := b.rdb.PTTL(ctx, b.keys.Job(5)).Val()
		require.Greater(t, ttl, 6*24*time.Hour)
		r := b.runner(t, name)
		require.Equal(t, state.Busy, r.State)
		require.EqualValues(t, 5, r.JobID)
		require.Equal(t, b.now, r.StateSince)
		st, err := b.store.GroupStatus(ctx, "small")
		require.NoError(t, err)
		require.EqualValues(t, 1, st.Total)
		require.EqualValues(t, 1, st.ByState[state.Busy])
		require.Zero(t, st.Free)
		require.Zero(t, st.Demand)
	})

	t.Run("runner takes a job nobody asked for", func(t *testing.T) {
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 6, b.now)
		require.NoError(t, err)
		// Its runner runs job 60, whose queued event was lost: job 6 still
		// waits, so the group is topped up in the same script.
		ip, err := b.store.InProgress(ctx, small, state.JobUpdate{JobID: 60, RunnerName: q.Reserved[0]})
		require.NoError(t, err)
		require.Len(t, ip.Reserved, 1)
		require.EqualValues(t, 2, b.card(t, b.keys.GroupRunners("small")))
		require.EqualValues(t, 1, b.card(t, b.keys.GroupFree("small")))
	})
}

func TestResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("created", func(t *testing.T) {
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 1, b.now)
		require.NoError(t, err)
		name := q.Reserved[0]
		out, err := b.store.Created(ctx, state.Runner{Name: name, Group: "small", Backend: "docker", InstanceID: "i-1", GitHubRunnerID: 77,
			Organization: "acme", Repository: "app", Location: map[string]string{"host": "unix:///d.sock"}})
		require.NoError(t, err)
		require.Equal(t, state.CreatedRecorded, out)
		r := b.runner(t, name)
		require.Equal(t, state.Started, r.State)
		require.Equal(t, "i-1", r.InstanceID)
		require.EqualValues(t, 77, r.GitHubRunnerID)
		// What a delete needs is kept, whatever the configuration becomes.
		require.Equal(t, "acme", r.Organization)
		require.Equal(t, "app", r.Repository)
		require.Equal(t, map[string]string{"host": "unix:///d.sock"}, r.Location)
		// A duplicate created changes nothing.
		out, err = b.store.Created(ctx, state.Runner{Name: name, Group: "small", Backend: "docker", InstanceID: "i-1"})
		require.NoError(t, err)
		require.Equal(t, state.CreatedRecorded, out)
		require.Equal(t, state.Started, b.runner(t, name).State)
		require.Len(t, b.commands(t), 1)
	})

	t.Run("created without record is deleted", func(t *testing.T) {
		b := setup(t)
		out, err := b.store.Created(ctx, state.Runner{Name: "rm-small-lost", Group: "small", Backend: "docker", InstanceID: "i-9"})
		require.NoError(t, err)
		require.Equal(t, state.CreatedOrphan, out)
		require.Equal(t, []string{"delete rm-small-lost created_without_record"}, b.commands(t))
	})

	t.Run("created while deleting emits the delete again", func(t *testing.T) {
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 1, b.now)
		require.NoError(t, err)
		name := q.Reserved[0]
		_, err = b.store.RequestDelete(ctx, name, []state.State{state.Pending}, state.ReasonAdmin)
		require.NoError(t, err)
		out, err := b.store.Created(ctx, state.Runner{Name: name, Group: "small", Backend: "docker", InstanceID: "i-2"})
		require.NoError(t, err)
		require.Equal(t, state.CreatedWhileDeleting, out)
		cmds := b.commands(t)
		require.Len(t, cmds, 3)
		require.True(t, strings.HasPrefix(cmds[2], "delete "+name))
		require.Equal(t, "i-2", b.runner(t, name).InstanceID)
	})

	t.Run("deleted tops up", func(t *testing.T) {
		b := setup(t)
		g := state.Group{Name: "one", Backend: "docker", MaxRunners: 1}
		q, err := b.store.Queued(ctx, g, 1, b.now)
		require.NoError(t, err)
		q2, err := b.store.Queued(ctx, g, 2, b.now)
		require.NoError(t, err)
		require.Empty(t, q2.Reserved, "max_runners 1")
		_, err = b.store.InProgress(ctx, g, state.JobUpdate{JobID: 1, RunnerName: q.Reserved[0]})
		require.NoError(t, err)
		_, err = b.store.Completed(ctx, g, state.JobUpdate{JobID: 1, RunnerName: q.Reserved[0]})
		require.NoError(t, err)
		d, err := b.store.Deleted(ctx, g, q.Reserved[0])
		require.NoError(t, err)
		require.True(t, d.Removed)
		require.Len(t, d.Reserved, 1, "job 2 gets the freed capacity")
		// A duplicate deleted neither removes nor reserves.
		d, err = b.store.Deleted(ctx, g, q.Reserved[0])
		require.NoError(t, err)
		require.False(t, d.Removed)
		require.Empty(t, d.Reserved)
		require.EqualValues(t, 1, b.card(t, b.keys.GroupRunners("one")))
	})

	t.Run("failed create retries then releases", func(t *testing.T) {
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 1, b.now)
		require.NoError(t, err)
		name := q.Reserved[0]

		out, err := b.store.CreateFailed(ctx, name, 1, b.now.Add(10*time.Second), 0)
		require.NoError(t, err)
		require.Equal(t, state.FailureRetrying, out)
		// A stale failure (older attempt) is ignored.
		out, err = b.store.CreateFailed(ctx, name, 0, time.Time{}, time.Minute)
		require.NoError(t, err)
		require.Equal(t, state.FailureIgnored, out)

		due, err := b.store.DueRetries(ctx, b.now, 10)
		require.NoError(t, err)
		require.Empty(t, due, "not due yet")
		due, err = b.store.DueRetries(ctx, b.now.Add(10*time.Second), 10)
		require.NoError(t, err)
		require.Equal(t, []state.Retry{{Kind: state.RetryCreateKind, Runner: name, Due: b.now.Add(10 * time.Second)}}, due)

		ok, err := b.store.RetryCreate(ctx, name)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = b.store.RetryCreate(ctx, name)
		require.NoError(t, err)
		require.False(t, ok, "a retry is emitted once")
		require.Equal(t, 2, b.runner(t, name).Attempt)
		require.Equal(t, []string{"create " + name + " 1", "create " + name + " 2"}, b.commands(t))

		// Exhausted: released, demand kept, the group backs off. The
		// instance may have been made (a create that timed out, a command
		// dead-lettered after the provisioner started it): the runner goes
		// deleting with its delete command, and keeps counting against
		// max_runners until the deleted result.
		out, err = b.store.CreateFailed(ctx, name, 2, time.Time{}, time.Minute)
		require.NoError(t, err)
		require.Equal(t, state.FailureReleased, out)
		require.Equal(t, state.Deleting, b.runner(t, name).State)
		require.Equal(t, []string{"create " + name + " 1", "create " + name + " 2", "delete " + name + " " + state.ReasonCreateFailed}, b.commands(t))
		require.EqualValues(t, 1, b.card(t, b.keys.GroupRunners("small")), "still counted until deleted")
		require.Zero(t, b.card(t, b.keys.GroupFree("small")))
		require.EqualValues(t, 1, b.card(t, b.keys.GroupDemand("small")))
		due, err = b.store.DueRetries(ctx, b.now.Add(time.Hour), 10)
		require.NoError(t, err)
		require.Empty(t, due, "no create retry left behind")
		st, err := b.store.GroupStatus(ctx, "small")
		require.NoError(t, err)
		require.Positive(t, st.BackoffRemaining)
		res, err := b.store.TopUp(ctx, small)
		require.NoError(t, err)
		require.Empty(t, res.Reserved, "top-up waits out the backoff")
		require.NoError(t, b.rdb.Del(ctx, b.keys.GroupBackoff("small")).Err())
		res, err = b.store.TopUp(ctx, small)
		require.NoError(t, err)
		require.Len(t, res.Reserved, 1, "the demand gets a new runner")
		require.EqualValues(t, 2, b.card(t, b.keys.GroupRunners("small")), "the deleting runner still counts against max_runners")
		// A second failure of the same create changes nothing.
		out, err = b.store.CreateFailed(ctx, name, 2, time.Time{}, time.Minute)
		require.NoError(t, err)
		require.Equal(t, state.FailureIgnored, out)
		d, err := b.store.Deleted(ctx, small, name)
		require.NoError(t, err)
		require.True(t, d.Removed, "the deleted result releases the capacity")
		require.EqualValues(t, 1, b.card(t, b.keys.GroupRunners("small")))
	})

	t.Run("failed delete retries", func(t *testing.T) {
		b := setup(t)
		q, err := b.store.Queued(ctx, small, 1, b.now)
		require.NoError(t, err)
		name := q.Reserved[0]
		at := func(n int) time.Time { return b.now.Add(time.Duration(n) * time.Second) }
		n, err := b.store.DeleteFailed(ctx, name, "x", at)
		require.NoError(t, err)
		require.Zero(t, n, "not deleting")
		_, err = b.store.RequestDelete(ctx, name, []state.State{state.Pending}, state.ReasonAdmin)
		require.NoError(t, err)
		n, err = b.store.DeleteFailed(ctx, name, "refused (unknown_group): "+strings.Repeat("x", 300), at)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		r, _, err := b.store.Runner(ctx, name)
		require.NoError(t, err)
		require.Equal(t, 1, r.DeleteFailures)
		require.Len(t, r.DeleteError, state.MaxDeleteErrorLen)
		require.True(t, strings.HasPrefix(r.DeleteError, "refused (unknown_group)"))
		due, err := b.store.DueRetries(ctx, b.now.Add(time.Second), 10)
		require.NoError(t, err)
		require.Equal(t, []state.Retry{{Kind: state.RetryDeleteKind, Runner: name, Due: b.now.Add(time.Second)}}, due)
		ok, err := b.store.RetryDelete(ctx, name)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "delete "+name+" retry", b.commands(t)[2])
		require.Equal(t, state.Deleting, b.runner(t, name).State)
		// The second failure is due later: the caller's backoff sees 2.
		n, err = b.store.DeleteFailed(ctx, name, "again", at)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		due, err = b.store.DueRetries(ctx, b.now.Add(time.Hour), 10)
		require.NoError(t, err)
		require.Equal(t, []state.Retry{{Kind: state.RetryDeleteKind, Runner: name, Due: b.now.Add(2 * time.Second)}}, due)
	})
}

func TestRequestDeleteIsCompareAndSet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	q, err := b.store.Queued(ctx, small, 1, b.now)
	require.NoError(t, err)
	name := q.Reserved[0]
	_, err = b.store.InProgress(ctx, small, state.JobUpdate{JobID: 1, RunnerName: name})
	require.NoError(t, err)

	prev, err := b.store.RequestDelete(ctx, name, []state.State{state.Idle}, state.ReasonScaleDown)
	require.ErrorIs(t, err, state.ErrState)
	require.Equal(t, state.Busy, prev)
	require.Equal(t, state.Busy, b.runner(t, name).State, "a busy runner is never scaled down")

	_, err = b.store.RequestDelete(ctx, "nobody", []state.State{state.Idle}, state.ReasonAdmin)
	require.ErrorIs(t, err, state.ErrNotFound)

	prev, err = b.store.RequestDelete(ctx, name, []state.State{state.Busy}, state.ReasonTimeToLive)
	require.NoError(t, err)
	require.Equal(t, state.Busy, prev)
	_, err = b.store.RequestDelete(ctx, name, []state.State{state.Busy, state.Deleting}, state.ReasonAdmin)
	require.ErrorIs(t, err, state.ErrState, "deleting cannot move to deleting")
	require.Len(t, b.commands(t), 3) // create, update (job 1 started), delete
}

// in_progress writes the job's metadata into the runner's record and emits
// one UpdateRunner command: a duplicated or redelivered in_progress, or a
// second in_progress of the same job after its job record expired, emits
// none; a deleting runner gets none; and a backend that keeps the metadata
// in the record (Commands.Update returns no data) gets none.
func TestInProgressEmitsOneUpdatePerJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := func(job int64, name string) state.JobUpdate {
		return state.JobUpdate{JobID: job, RunnerName: name, RunID: 900 + job, Repository: "octo-org/hello", Workflow: "CI"}
	}
	updates := func(b *bundle) []string {
		var out []string
		for _, c := range b.commands(t) {
			if strings.HasPrefix(c, "update ") {
				out = append(out, c)
			}
		}
		return out
	}

	b := setup(t)
	q, err := b.store.Queued(ctx, small, 1, b.now)
	require.NoError(t, err)
	name := q.Reserved[0]
	ip, err := b.store.InProgress(ctx, small, u(1, name))
	require.NoError(t, err)
	require.True(t, ip.Updated)
	require.Equal(t, []string{"update " + name + " 1"}, updates(b))
	r := b.runner(t, name)
	require.EqualValues(t, 1, r.JobID)
	require.EqualValues(t, 901, r.JobRunID)
	require.Equal(t, "octo-org/hello", r.JobRepository)
	require.Equal(t, "CI", r.JobWorkflow)

	// The same webhook delivered again, twice.
	for range 2 {
		ip, err = b.store.InProgress(ctx, small, u(1, name))
		require.NoError(t, err)
		require.False(t, ip.Applied)
		require.False(t, ip.Updated)
	}
	// The job record expired (or was removed): the runner has the job, still no second update.
	require.NoError(t, b.rdb.Del(ctx, b.keys.Job(1)).Err())
	ip, err = b.store.InProgress(ctx, small, u(1, name))
	require.NoError(t, err)
	require.True(t, ip.Applied)
	require.False(t, ip.Updated)
	require.Equal(t, []string{"update " + name + " 1"}, updates(b))

	// A deleting runner that GitHub gave a job: its record has the job, no update.
	q, err = b.store.Queued(ctx, small, 2, b.now)
	require.NoError(t, err)
	other := q.Reserved[0]
	_, err = b.store.RequestDelete(ctx, other, []state.State{state.Pending}, state.ReasonAdmin)
	require.NoError(t, err)
	ip, err = b.store.InProgress(ctx, small, u(2, other))
	require.NoError(t, err)
	require.True(t, ip.Ours)
	require.False(t, ip.Updated)
	require.Equal(t, "octo-org/hello", b.runner(t, other).JobRepository)
	require.Len(t, updates(b), 1)
}

// recordOnly is a Commands whose backend keeps the metadata in the record.
type recordOnly struct{ fakeCommands }

func (*recordOnly) Update(context.Context, state.Runner, state.JobUpdate) (state.Command, error) {
	return state.Command{}, nil
}

func TestInProgressMetadataInRecordEmitsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: &recordOnly{}, Now: func() time.Time { return b.now }})
	q, err := b.store.Queued(ctx, small, 1, b.now)
	require.NoError(t, err)
	name := q.Reserved[0]
	ip, err := b.store.InProgress(ctx, small, state.JobUpdate{JobID: 1, RunnerName: name, RunID: 7, Repository: "o/r", Workflow: "w"})
	require.NoError(t, err)
	require.True(t, ip.Applied)
	require.False(t, ip.Updated)
	require.Equal(t, []string{"create " + name + " 1"}, b.commands(t))
	r := b.runner(t, name)
	require.Equal(t, state.Busy, r.State)
	require.Equal(t, "o/r", r.JobRepository)
	require.Equal(t, "w", r.JobWorkflow)
	require.EqualValues(t, 7, r.JobRunID)
}

// A busy result: the idle surplus runner chosen for scale-down took a job
// before the provisioner acted, and GitHub refused to remove it. The runner
// goes back to busy (compare-and-set), its job's completed event deletes it.
func TestBusyResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := state.Group{Name: "small", Backend: "docker", MinRunners: 1, MaxRunners: 3}
	res, err := b.store.TopUp(ctx, g)
	require.NoError(t, err)
	name := res.Reserved[0]
	_, err = b.store.MarkIdle(ctx, name)
	require.NoError(t, err)
	_, err = b.store.RequestDelete(ctx, name, []state.State{state.Idle}, state.ReasonScaleDown)
	require.NoError(t, err)
	require.NoError(t, b.rdb.ZAdd(ctx, b.keys.Retry(), redis.Z{Score: 1, Member: "delete:" + name}).Err())

	// The job's in_progress event arrives before the busy result: the
	// delete command is in flight, the runner stays deleting.
	_, err = b.store.Queued(ctx, g, 7, b.now)
	require.NoError(t, err)
	_, err = b.store.InProgress(ctx, g, state.JobUpdate{JobID: 7, RunnerName: name})
	require.NoError(t, err)
	require.Equal(t, state.Deleting, b.runner(t, name).State)

	out, err := b.store.Busy(ctx, name)
	require.NoError(t, err)
	require.Equal(t, state.BusyRestored, out)
	r := b.runner(t, name)
	require.Equal(t, state.Busy, r.State)
	require.EqualValues(t, 7, r.JobID)
	require.Zero(t, b.card(t, b.keys.Retry()), "the delete retry was dropped")
	n := len(b.commands(t))

	// A repeated busy result changes nothing.
	out, err = b.store.Busy(ctx, name)
	require.NoError(t, err)
	require.Equal(t, state.BusyIgnored, out)
	require.Len(t, b.commands(t), n)

	// Its job completes: deleted like any busy runner.
	c, err := b.store.Completed(ctx, g, state.JobUpdate{JobID: 7, RunnerName: name})
	require.NoError(t, err)
	require.Equal(t, name, c.Deleting)
	require.Contains(t, b.commands(t), "delete "+name+" job_completed")

	out, err = b.store.Busy(ctx, "nobody")
	require.NoError(t, err)
	require.Equal(t, state.BusyIgnored, out)
}

// A busy result that arrives after the runner's job completed (its completed
// event found the runner deleting and emitted nothing): the runner stays
// deleting and the delete of a finished job is emitted again.
func TestBusyResultAfterTheJobCompleted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := state.Group{Name: "small", Backend: "docker", MinRunners: 1, MaxRunners: 3}
	res, err := b.store.TopUp(ctx, g)
	require.NoError(t, err)
	name := res.Reserved[0]
	_, err = b.store.RequestDelete(ctx, name, []state.State{state.Started, state.Pending}, state.ReasonScaleDown)
	require.NoError(t, err)
	_, err = b.store.InProgress(ctx, g, state.JobUpdate{JobID: 8, RunnerName: name})
	require.NoError(t, err)
	_, err = b.store.Completed(ctx, g, state.JobUpdate{JobID: 8, RunnerName: name})
	require.NoError(t, err)
	before := len(b.commands(t))

	out, err := b.store.Busy(ctx, name)
	require.NoError(t, err)
	require.Equal(t, state.BusyJobDone, out)
	require.Equal(t, state.Deleting, b.runner(t, name).State)
	cmds := b.commands(t)
	require.Len(t, cmds, before+1)
	require.Equal(t, "delete "+name+" job_completed", cmds[len(cmds)-1])
}

func TestMarkIdle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	res, err := b.store.TopUp(ctx, state.Group{Name: "m", Backend: "docker", MinRunners: 1, MaxRunners: 2})
	require.NoError(t, err)
	name := res.Reserved[0]
	ok, err := b.store.MarkIdle(ctx, name)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, state.Idle, b.runner(t, name).State)
	require.EqualValues(t, 1, b.card(t, b.keys.GroupFree("m")), "idle is free")
	ok, err = b.store.MarkIdle(ctx, name)
	require.NoError(t, err)
	require.False(t, ok)
}

// Many concurrent scripts never push a group above max_runners, and every
// queued job is recorded once.
func TestConcurrentQueuedNeverExceedsMax(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	g := state.Group{Name: "burst", Backend: "docker", MinRunners: 1, MaxRunners: 4}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	cmds := &fakeCommands{}
	for w := range 8 {
		st := state.New(b.rdb, b.keys, state.Options{Commands: cmds})
		wg.Go(func() {
			for j := range 25 {
				if _, err := st.Queued(ctx, g, int64(w*1000+j), time.Now()); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 4, b.card(t, b.keys.GroupRunners("burst")))
	require.EqualValues(t, 200, b.card(t, b.keys.GroupDemand("burst")))
	require.Len(t, b.commands(t), 4)
}

// Every script that emits checks its stream before writing anything: when
// the XADD cannot happen, no state changes either.
func TestEmittingScriptsWriteNothingWhenTheyCannotEmit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// prepare returns a runner in the wanted state, with a retry entry due.
	prepare := func(t *testing.T, b *bundle, st state.State) string {
		t.Helper()
		q, err := b.store.Queued(ctx, small, 1, b.now)
		require.NoError(t, err)
		name := q.Reserved[0]
		switch st {
		case state.Busy:
			_, err = b.store.InProgress(ctx, small, state.JobUpdate{JobID: 1, RunnerName: name})
		case state.Deleting:
			_, err = b.store.RequestDelete(ctx, name, []state.State{state.Pending}, state.ReasonAdmin)
			if err == nil {
				_, err = b.store.DeleteFailed(ctx, name, "x", func(int) time.Time { return b.now })
			}
		case state.Pending:
			_, err = b.store.CreateFailed(ctx, name, 1, b.now, 0)
		}
		require.NoError(t, err)
		return name
	}
	for _, tc := range []struct {
		name  string
		state state.State
		op    func(b *bundle, runner string) error
	}{
		{"completed", state.Busy, func(b *bundle, r string) error {
			_, err := b.store.Completed(ctx, small, state.JobUpdate{JobID: 1, RunnerName: r})
			return err
		}},
		{"deleted with top-up", state.Deleting, func(b *bundle, r string) error {
			_, err := b.store.Deleted(ctx, small, r)
			return err
		}},
		{"created without record", state.Busy, func(b *bundle, r string) error {
			_, err := b.store.Created(ctx, state.Runner{Name: "lost", Group: "small", Backend: "docker"})
			return err
		}},
		{"request delete", state.Busy, func(b *bundle, r string) error {
			_, err := b.store.RequestDelete(ctx, r, []state.State{state.Busy}, state.ReasonAdmin)
			return err
		}},
		{"retry create", state.Pending, func(b *bundle, r string) error {
			_, err := b.store.RetryCreate(ctx, r)
			return err
		}},
		{"create failed for good", state.Pending, func(b *bundle, r string) error {
			_, err := b.store.CreateFailed(ctx, r, 1, time.Time{}, time.Minute)
			return err
		}},
		{"retry delete", state.Deleting, func(b *bundle, r string) error {
			_, err := b.store.RetryDelete(ctx, r)
			return err
		}},
		{"top-up", state.Busy, func(b *bundle, r string) error {
			_, err := b.store.TopUp(ctx, small)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			runner := prepare(t, b, tc.state)
			snap := func() map[string]string {
				out := map[string]string{}
				keys, err := b.rdb.Keys(ctx, b.keys.All()).Result()
				require.NoError(t, err)
				for _, k := range keys {
					if k == b.keys.Provision("docker") {
						continue
					}
					d, err := b.rdb.Dump(ctx, k).Result()
					require.NoError(t, err)
					out[k] = d
				}
				return out
			}
			// Broken stream: the command cannot be appended.
			require.NoError(t, b.rdb.Rename(ctx, b.keys.Provision("docker"), b.keys.Provision("saved")).Err())
			require.NoError(t, b.rdb.Set(ctx, b.keys.Provision("docker"), "not a stream", 0).Err())
			if tc.name == "top-up" {
				// Make the group want one more runner than it has.
				require.NoError(t, b.rdb.ZAdd(ctx, b.keys.GroupDemand("small"), redis.Z{Score: 1, Member: "99"}).Err())
			}
			before := snap()
			err := tc.op(b, runner)
			require.Error(t, err)
			require.Contains(t, err.Error(), "WRONGTYPE")
			require.Equal(t, before, snap(), "state changed although the command was not emitted")
		})
	}
}

// A runner whose failed delete has a retry scheduled (backing off) is not
// stuck: the stuck-deleting check leaves it to its retry, so the backoff
// holds.
func TestRedeleteStaleRespectsTheDeleteBackoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	q, err := b.store.Queued(ctx, small, 1, b.now)
	require.NoError(t, err)
	name := q.Reserved[0]
	_, err = b.store.RequestDelete(ctx, name, []state.State{state.Pending}, state.ReasonAdmin)
	require.NoError(t, err)
	n, err := b.store.DeleteFailed(ctx, name, "refused (location)", func(int) time.Time { return b.now.Add(10 * time.Minute) })
	require.NoError(t, err)
	require.Equal(t, 1, n)
	before := len(b.commands(t))
	ok, err := b.store.RedeleteStale(ctx, b.runner(t, name), b.now.Add(time.Hour))
	require.NoError(t, err)
	require.False(t, ok, "a delete retry is scheduled")
	require.Len(t, b.commands(t), before)
	// Without a scheduled retry (a lost command), it is emitted again.
	require.NoError(t, b.store.DropRetry(ctx, state.Retry{Kind: state.RetryDeleteKind, Runner: name}))
	ok, err = b.store.RedeleteStale(ctx, b.runner(t, name), b.now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
}

// Issue 16 item 6: a group whose creates fail for good backs off longer with
// every failed round (10 s, 20 s, 40 s, ... up to MaxGroupBackoff), the
// backoff and its count live in Redis (every replica sees them), and the
// first successful create resets them.
func TestGroupBackoffGrowsWithConsecutiveFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	g := state.Group{Name: "broken", Backend: "docker", MinRunners: 2, MaxRunners: 2}
	base := 10 * time.Second
	backoff := func() time.Duration {
		d, err := b.rdb.PTTL(ctx, b.keys.GroupBackoff(g.Name)).Result()
		require.NoError(t, err)
		return d
	}
	// round reserves up to max_runners, fails every create, and returns the
	// backoff the group waits then.
	round := func() time.Duration {
		t.Helper()
		require.NoError(t, b.rdb.Del(ctx, b.keys.GroupBackoff(g.Name)).Err()) // the last one ran out
		res, err := b.store.TopUp(ctx, g)
		require.NoError(t, err)
		require.Len(t, res.Reserved, 2)
		for _, name := range res.Reserved {
			out, err := b.store.CreateFailed(ctx, name, 1, time.Time{}, base)
			require.NoError(t, err)
			require.Equal(t, state.FailureReleased, out)
		}
		d := backoff()
		for _, name := range res.Reserved { // the provisioner deletes them
			del, err := b.store.Deleted(ctx, g, name)
			require.NoError(t, err)
			require.True(t, del.Removed)
		}
		return d
	}
	want := base
	for i := range 8 {
		got := round()
		require.InDelta(t, want.Seconds(), got.Seconds(), 1, "round %d: the failures of one round count once", i+1)
		want = min(2*want, state.MaxGroupBackoff)
	}
	require.InDelta(t, state.MaxGroupBackoff.Seconds(), round().Seconds(), 1, "bounded")

	// Another replica's store sees the backoff: it reserves nothing.
	other := state.New(b.rdb, b.keys, state.Options{Commands: &fakeCommands{}, Now: func() time.Time { return b.now }})
	res, err := other.TopUp(ctx, g)
	require.NoError(t, err)
	require.Empty(t, res.Reserved)

	// One create succeeds: the backoff ends and the count starts again.
	require.NoError(t, b.rdb.Del(ctx, b.keys.GroupBackoff(g.Name)).Err())
	res, err = b.store.TopUp(ctx, g)
	require.NoError(t, err)
	_, err = b.store.Created(ctx, state.Runner{Name: res.Reserved[0], Group: g.Name, Backend: "docker"})
	require.NoError(t, err)
	n, err := b.rdb.Exists(ctx, b.keys.GroupCreateFailures(g.Name)).Result()
	require.NoError(t, err)
	require.Zero(t, n, "the count is reset by a success")
	out, err := b.store.CreateFailed(ctx, res.Reserved[1], 1, time.Time{}, base)
	require.NoError(t, err)
	require.Equal(t, state.FailureReleased, out)
	require.InDelta(t, base.Seconds(), backoff().Seconds(), 1)
}

// TestQueuedSpillOver: a job is counted in the first of its candidate groups
// that has room (a free runner not claimed by demand, or fewer runners than
// max_runners), else in the first; always in exactly one group.
func TestQueuedSpillOver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := state.Group{Name: "a", Backend: "docker", MinRunners: 1, MaxRunners: 1}
	sp := state.Group{Name: "b", Backend: "docker", MaxRunners: 2}
	both := []state.Group{a, sp}

	// a's idle runner (min_runners) is room for the first job.
	_, err := b.store.TopUp(ctx, a)
	require.NoError(t, err)
	out, err := b.store.QueuedIn(ctx, both, state.QueuedJob{ID: 1, QueuedAt: b.now})
	require.NoError(t, err)
	require.Equal(t, "a", out.Group)
	require.Empty(t, out.Reserved, "a's free runner serves it")

	// a is full: the next jobs go to b, up to its max_runners.
	for job := int64(2); job <= 3; job++ {
		out, err = b.store.QueuedIn(ctx, both, state.QueuedJob{ID: job, QueuedAt: b.now})
		require.NoError(t, err)
		require.Equal(t, "b", out.Group, "job %d", job)
		require.Len(t, out.Reserved, 1)
		require.True(t, strings.HasPrefix(out.Reserved[0], "rm-b-"), out.Reserved[0])
		j, ok, err := b.store.Job(ctx, job)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "b", j.Group)
	}
	// Both full: the job waits in the first group.
	out, err = b.store.QueuedIn(ctx, both, state.QueuedJob{ID: 4, QueuedAt: b.now})
	require.NoError(t, err)
	require.Equal(t, "a", out.Group)
	require.Empty(t, out.Reserved)

	require.EqualValues(t, 2, b.card(t, b.keys.GroupDemand("a")))
	require.EqualValues(t, 2, b.card(t, b.keys.GroupDemand("b")))
	require.EqualValues(t, 1, b.card(t, b.keys.GroupRunners("a")))
	require.EqualValues(t, 2, b.card(t, b.keys.GroupRunners("b")))

	// A duplicate changes nothing, whatever the room now.
	out, err = b.store.QueuedIn(ctx, []state.Group{sp, a}, state.QueuedJob{ID: 2, QueuedAt: b.now})
	require.NoError(t, err)
	require.True(t, out.Known)
	require.EqualValues(t, 2, b.card(t, b.keys.GroupDemand("b")))
	require.EqualValues(t, 2, b.card(t, b.keys.GroupDemand("a")))

	// The job's later events release the demand of the group it was counted in.
	_, err = b.store.Completed(ctx, a, state.JobUpdate{JobID: 2})
	require.NoError(t, err)
	require.EqualValues(t, 1, b.card(t, b.keys.GroupDemand("b")))
	require.EqualValues(t, 2, b.card(t, b.keys.GroupDemand("a")))

	// A group in create backoff has no room unless a runner is free.
	c := state.Group{Name: "c", Backend: "docker", MaxRunners: 5}
	require.NoError(t, b.rdb.Set(ctx, b.keys.GroupBackoff("c"), "1", time.Minute).Err())
	d := state.Group{Name: "d", Backend: "docker", MaxRunners: 5}
	out, err = b.store.QueuedIn(ctx, []state.Group{c, d}, state.QueuedJob{ID: 10, QueuedAt: b.now})
	require.NoError(t, err)
	require.Equal(t, "d", out.Group)

	// A single group is Queued.
	out, err = b.store.Queued(ctx, c, 11, b.now)
	require.NoError(t, err)
	require.Equal(t, "c", out.Group)
}
