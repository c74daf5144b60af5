package reconcile_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/dispatch"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/metrics"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/reconcile"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

type fakeGitHub struct {
	mu      sync.Mutex
	runners map[string]github.Runner
	calls   map[github.Scope]int
	// err, when set, is what every listing fails with.
	err error
}

func (f *fakeGitHub) ListRunners(_ context.Context, scope github.Scope) ([]github.Runner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[scope]++
	if f.err != nil {
		return nil, f.err
	}
	out := make([]github.Runner, 0, len(f.runners))
	for _, r := range f.runners {
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeGitHub) set(name, status string, busy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runners[name] = github.Runner{Name: name, Status: status, Busy: busy}
}

func (f *fakeGitHub) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

type bundle struct {
	rdb   *redis.Client
	cfg   *config.Config
	keys  keys.Keys
	store *state.Store
	gh    *fakeGitHub
	m     *metrics.Metrics
	loop  *reconcile.Loop
	now   time.Time
}

func setup(t *testing.T, minRunners, maxRunners int) *bundle {
	t.Helper()
	cfg := &config.Config{
		Name: redistest.NewName("rc"),
		RunnerGroups: []config.RunnerGroup{{
			Name: "pool", Organization: "acme", MinRunners: minRunners, MaxRunners: maxRunners,
			Labels:  []string{"linux"},
			Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}},
		}},
	}
	cfg.SetDefaults()
	b := &bundle{rdb: redistest.Client(t), cfg: cfg, keys: keys.New(cfg.Name), now: time.UnixMilli(1_800_000_000_000),
		gh: &fakeGitHub{runners: map[string]github.Runner{}, calls: map[github.Scope]int{}}, m: metrics.New(nil)}
	builder := command.New(cfg, nil)
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: builder, Now: func() time.Time { return b.now }})
	b.loop = reconcile.New(cfg, b.store, b.gh, b.m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return b
}

func (b *bundle) group() state.Group {
	g, _ := command.Group(b.cfg, "pool")
	return g
}

func (b *bundle) commands(t *testing.T) []*rmv1.ProvisionCommand {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), b.keys.Provision("docker"), "-", "+").Result()
	require.NoError(t, err)
	out := make([]*rmv1.ProvisionCommand, 0, len(msgs))
	for _, m := range msgs {
		var c rmv1.ProvisionCommand
		require.NoError(t, proto.Unmarshal([]byte(m.Values["data"].(string)), &c))
		out = append(out, &c)
	}
	return out
}

func (b *bundle) state(t *testing.T, name string) state.State {
	t.Helper()
	r, ok, err := b.store.Runner(context.Background(), name)
	require.NoError(t, err)
	require.True(t, ok)
	return r.State
}

func TestTopUpAndScaleDown(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, 3)
	ctx := context.Background()

	// min_runners: one runner, without asking GitHub.
	require.NoError(t, b.loop.Once(ctx))
	require.Len(t, b.commands(t), 1)
	require.Zero(t, b.gh.callCount())
	require.NoError(t, b.loop.Once(ctx))
	require.Len(t, b.commands(t), 1, "a second pass reserves nothing more")

	// A job queued, then cancelled while queued: one runner too many.
	q, err := b.store.Queued(ctx, b.group(), 1, b.now)
	require.NoError(t, err)
	require.Len(t, q.Reserved, 1)
	_, err = b.store.Completed(ctx, b.group(), state.JobUpdate{JobID: 1})
	require.NoError(t, err)
	cmds := b.commands(t)
	minRunner, extra := cmds[0].GetCreate().GetSpec().GetName(), q.Reserved[0]

	// Still pending: nothing registered at GitHub yet, so no call.
	require.NoError(t, b.loop.Once(ctx))
	require.Zero(t, b.gh.callCount())

	for _, n := range []string{minRunner, extra} {
		_, err := b.store.Created(ctx, state.Runner{Name: n, Group: "pool", Backend: "docker"})
		require.NoError(t, err)
	}
	// GitHub: the min runner is busy (its in_progress is late), the extra one idle.
	b.gh.set(minRunner, github.RunnerOnline, true)
	b.gh.set(extra, github.RunnerOnline, false)
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 1, b.gh.callCount(), "one list per scope and pass")
	require.Equal(t, state.Started, b.state(t, minRunner), "a runner busy at GitHub is left alone")
	require.Equal(t, state.Deleting, b.state(t, extra))
	cmds = b.commands(t)
	require.Len(t, cmds, 3)
	require.Equal(t, extra, cmds[2].GetDelete().GetName())
	require.Equal(t, state.ReasonScaleDown, cmds[2].GetDelete().GetReason())

	// No surplus any more: GitHub is not asked again.
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 1, b.gh.callCount())

	// Gauges follow Redis.
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Runners.WithLabelValues("pool", "started")))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Runners.WithLabelValues("pool", "deleting")))
	require.Equal(t, 0.0, testutil.ToFloat64(b.m.Demand.WithLabelValues("pool")))
}

func TestIdleRunnersAreMarkedAndOnlyIdleOnesDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, 3)
	ctx := context.Background()
	q, err := b.store.Queued(ctx, b.group(), 1, b.now)
	require.NoError(t, err)
	name := q.Reserved[0]
	_, err = b.store.Created(ctx, state.Runner{Name: name, Group: "pool", Backend: "docker"})
	require.NoError(t, err)
	// Offline at GitHub: not marked idle, not deleted even though surplus.
	_, err = b.store.Completed(ctx, b.group(), state.JobUpdate{JobID: 1})
	require.NoError(t, err)
	b.gh.set(name, github.RunnerOffline, false)
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, state.Started, b.state(t, name))
	// Online and idle: marked idle and deleted in the same pass.
	b.gh.set(name, github.RunnerOnline, false)
	b.now = b.now.Add(b.cfg.Scheduler.ReconcileInterval)
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, state.Deleting, b.state(t, name))
}

// GitHub is listed only when the records show a surplus of runners that may
// be idle, and at most once per reconcile interval however often passes run.
func TestListsGitHubOnlyForASurplusAndOncePerInterval(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, 4)
	ctx := context.Background()
	require.NoError(t, b.loop.Once(ctx))
	minRunner := b.commands(t)[0].GetCreate().GetSpec().GetName()
	_, err := b.store.Created(ctx, state.Runner{Name: minRunner, Group: "pool", Backend: "docker"})
	require.NoError(t, err)
	b.gh.set(minRunner, github.RunnerOnline, false)

	// The warm pool at its target: no surplus, no list, pass after pass.
	for range 3 {
		b.now = b.now.Add(b.cfg.Scheduler.ReconcileInterval)
		require.NoError(t, b.loop.Once(ctx))
	}
	require.Zero(t, b.gh.callCount(), "listed without a surplus")

	// A surplus: a job queued then cancelled. Its runner is pending: the
	// records say it cannot be idle yet, still no list.
	q, err := b.store.Queued(ctx, b.group(), 1, b.now)
	require.NoError(t, err)
	_, err = b.store.Completed(ctx, b.group(), state.JobUpdate{JobID: 1})
	require.NoError(t, err)
	require.NoError(t, b.loop.Once(ctx))
	require.Zero(t, b.gh.callCount(), "listed for a pending surplus")

	// Started: one list; both runners are busy at GitHub (their in_progress
	// events are late), so both are kept.
	extra := q.Reserved[0]
	_, err = b.store.Created(ctx, state.Runner{Name: extra, Group: "pool", Backend: "docker"})
	require.NoError(t, err)
	b.gh.set(extra, github.RunnerOnline, true)
	b.gh.set(minRunner, github.RunnerOnline, true)
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 1, b.gh.callCount())

	// Passes within the interval do not list again.
	for range 5 {
		b.now = b.now.Add(b.cfg.Scheduler.ReconcileInterval / 10)
		require.NoError(t, b.loop.Once(ctx))
	}
	require.Equal(t, 1, b.gh.callCount(), "listed more than once per interval")

	// An interval later: listed again, and one of the now idle runners goes.
	b.gh.set(extra, github.RunnerOnline, false)
	b.gh.set(minRunner, github.RunnerOnline, false)
	b.now = b.now.Add(b.cfg.Scheduler.ReconcileInterval / 2)
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 2, b.gh.callCount())
	require.ElementsMatch(t, []state.State{state.Deleting, state.Idle},
		[]state.State{b.state(t, extra), b.state(t, minRunner)}, "min_runners is kept")
}

func TestDueRetriesAreEmitted(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, 3)
	ctx := context.Background()
	q, err := b.store.Queued(ctx, b.group(), 1, b.now)
	require.NoError(t, err)
	name := q.Reserved[0]
	out, err := b.store.CreateFailed(ctx, name, 1, b.now.Add(time.Minute), 0)
	require.NoError(t, err)
	require.Equal(t, state.FailureRetrying, out)

	require.NoError(t, b.loop.Once(ctx))
	require.Len(t, b.commands(t), 1, "not due yet")
	b.now = b.now.Add(time.Minute)
	require.NoError(t, b.loop.Once(ctx))
	cmds := b.commands(t)
	require.Len(t, cmds, 2)
	require.EqualValues(t, 2, cmds[1].GetCreate().GetAttempt())
	require.Equal(t, name, cmds[1].GetCreate().GetSpec().GetName())
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Commands.WithLabelValues("create", "retry")))
}

// Two replicas run the loop; the lease lets one at a time do it, and the
// group is topped up exactly to min_runners.
func TestRunUnderLease(t *testing.T) {
	t.Parallel()
	b := setup(t, 2, 3)
	b.cfg.Scheduler.ReconcileInterval = 20 * time.Millisecond
	b.cfg.Scheduler.LeaseTTL = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, owner := range []string{"a", "b"} {
		wg.Go(func() {
			if err := b.loop.Run(ctx, owner); err != nil {
				t.Errorf("loop of %s: %v", owner, err)
			}
		})
	}
	require.Eventually(t, func() bool {
		return b.rdb.ZCard(ctx, b.keys.GroupRunners("pool")).Val() == 2 && b.rdb.Exists(ctx, b.keys.Lease(reconcile.LeaseTask)).Val() == 1
	}, 10*time.Second, 10*time.Millisecond)
	cancel()
	wg.Wait()
	require.Len(t, b.commands(t), 2)
}

func TestMaxRunnersAndDLQGauges(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, 7)
	ctx := context.Background()

	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 7.0, testutil.ToFloat64(b.m.MaxRunners.WithLabelValues("pool")))
	require.Equal(t, 0.0, testutil.ToFloat64(b.m.DLQEntries), "no dead-letter stream yet")

	for i := range 3 {
		require.NoError(t, b.rdb.XAdd(ctx, &redis.XAddArgs{
			Stream: b.keys.DLQ(),
			Values: []any{"type", "command", "data", fmt.Sprint(i)},
		}).Err())
	}
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 3.0, testutil.ToFloat64(b.m.DLQEntries))

	require.NoError(t, b.rdb.XTrimMaxLen(ctx, b.keys.DLQ(), 1).Err())
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.DLQEntries), "the gauge follows the stream down")
}

// The runners of a group removed from the configuration are drained: the
// pending, started and idle ones are deleted at once (where their records
// say they are), the busy one is left to its job's completion (or
// time_to_live).
func TestRemovedGroupIsDrained(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, 3)
	ctx := context.Background()
	// The records were made under the previous configuration, which had
	// group old.
	prev := *b.cfg
	prev.RunnerGroups = append(append([]config.RunnerGroup(nil), b.cfg.RunnerGroups...), config.RunnerGroup{
		Name: "old", Organization: "acme", MinRunners: 4, MaxRunners: 4, Labels: []string{"old"},
		Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}},
	})
	before := state.New(b.rdb, b.keys, state.Options{Commands: command.New(&prev, nil), Now: func() time.Time { return b.now }})
	old, _ := command.Group(&prev, "old")
	q, err := before.TopUp(ctx, old)
	require.NoError(t, err)
	require.Len(t, q.Reserved, 4)
	pending, started, idle, busy := q.Reserved[0], q.Reserved[1], q.Reserved[2], q.Reserved[3]
	for _, n := range []string{started, idle, busy} {
		_, err := before.Created(ctx, state.Runner{Name: n, Group: "old", Backend: "docker", InstanceID: "c-" + n,
			Organization: "acme", Location: map[string]string{"host": ""}})
		require.NoError(t, err)
	}
	_, err = before.MarkIdle(ctx, idle)
	require.NoError(t, err)
	_, err = before.InProgress(ctx, old, state.JobUpdate{JobID: 4, RunnerName: busy})
	require.NoError(t, err)
	creates := len(b.commands(t))

	require.NoError(t, b.loop.Once(ctx))
	cmds := b.commands(t)[creates:]
	deleted := map[string]*rmv1.DeleteRunner{}
	for _, c := range cmds {
		if d := c.GetDelete(); d != nil {
			deleted[d.GetName()] = d
		}
	}
	require.Len(t, deleted, 3, "commands: %v", cmds)
	for _, n := range []string{pending, started, idle} {
		require.Contains(t, deleted, n)
		require.Equal(t, state.ReasonGroupRemoved, deleted[n].GetReason())
		require.Equal(t, state.Deleting, b.state(t, n))
	}
	require.Equal(t, map[string]string{"host": ""}, deleted[idle].GetLocation())
	require.Equal(t, "acme", deleted[idle].GetOrganization())
	require.Equal(t, state.Busy, b.state(t, busy))
	require.EqualValues(t, 3, testutil.ToFloat64(b.m.Commands.WithLabelValues("delete", state.ReasonGroupRemoved)))

	// The next pass emits nothing more.
	require.NoError(t, b.loop.Once(ctx))
	require.Len(t, b.commands(t), creates+len(cmds))
}

// After a change of a group's configuration (here its image), its started
// and idle runners made from the earlier one are replaced (spec_changed);
// the busy one is left to its job, and the runners of the current
// configuration, or whose record has no spec hash, stay.
func TestRunnersOfAnEarlierSpecAreReplaced(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, 6)
	ctx := context.Background()
	prev := *b.cfg
	prev.RunnerGroups = append([]config.RunnerGroup(nil), b.cfg.RunnerGroups...)
	prev.RunnerGroups[0].Backend.Docker = &config.DockerSpec{Image: "runner:old"}
	oldHash, err := config.SpecHash(&prev.RunnerGroups[0])
	require.NoError(t, err)
	newHash, err := config.SpecHash(&b.cfg.RunnerGroups[0])
	require.NoError(t, err)
	require.NotEqual(t, oldHash, newHash)

	g := b.group()
	g.MinRunners = 5
	q, err := b.store.TopUp(ctx, g)
	require.NoError(t, err)
	require.Len(t, q.Reserved, 5)
	started, idle, busy, current, unknown := q.Reserved[0], q.Reserved[1], q.Reserved[2], q.Reserved[3], q.Reserved[4]
	hashes := map[string]string{started: oldHash, idle: oldHash, busy: oldHash, current: newHash, unknown: ""}
	for n, h := range hashes {
		_, err := b.store.Created(ctx, state.Runner{Name: n, Group: "pool", Backend: "docker", InstanceID: "c-" + n,
			Organization: "acme", Location: map[string]string{"host": ""}, SpecHash: h})
		require.NoError(t, err)
	}
	for _, n := range []string{idle, current, unknown} {
		_, err := b.store.MarkIdle(ctx, n)
		require.NoError(t, err)
	}
	_, err = b.store.InProgress(ctx, b.group(), state.JobUpdate{JobID: 4, RunnerName: busy})
	require.NoError(t, err)
	r, _, err := b.store.Runner(ctx, idle)
	require.NoError(t, err)
	require.Equal(t, oldHash, r.SpecHash, "the record keeps the created result's spec hash")
	before := len(b.commands(t))

	require.NoError(t, b.loop.Once(ctx))
	deleted := map[string]*rmv1.DeleteRunner{}
	for _, c := range b.commands(t)[before:] {
		if d := c.GetDelete(); d != nil {
			deleted[d.GetName()] = d
		}
	}
	require.Len(t, deleted, 2, "deletes: %v", deleted)
	for _, n := range []string{started, idle} {
		require.Contains(t, deleted, n)
		require.Equal(t, state.ReasonSpecChanged, deleted[n].GetReason())
		require.Equal(t, map[string]string{"host": ""}, deleted[n].GetLocation())
		require.Equal(t, state.Deleting, b.state(t, n))
	}
	require.Equal(t, state.Busy, b.state(t, busy))
	require.Equal(t, state.Idle, b.state(t, current))
	require.Equal(t, state.Idle, b.state(t, unknown))
	require.EqualValues(t, 2, testutil.ToFloat64(b.m.Commands.WithLabelValues("delete", state.ReasonSpecChanged)))
}

// A rate-limited listing skips the scale-down, said once for the pass and
// counted; the retries and top-ups of every group still happen, and the pass
// is no failure.
func TestRateLimitedListingSkipsOnlyTheScaleDown(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, 4)
	ctx := context.Background()
	require.NoError(t, b.loop.Once(ctx))
	minRunner := b.commands(t)[0].GetCreate().GetSpec().GetName()
	var extra []string
	for job := int64(1); job <= 2; job++ {
		q, err := b.store.Queued(ctx, b.group(), job, b.now)
		require.NoError(t, err)
		require.Len(t, q.Reserved, 1)
		extra = append(extra, q.Reserved[0])
	}
	for job := int64(1); job <= 2; job++ { // cancelled while queued
		_, err := b.store.Completed(ctx, b.group(), state.JobUpdate{JobID: job})
		require.NoError(t, err)
	}
	for _, n := range []string{minRunner, extra[0]} {
		_, err := b.store.Created(ctx, state.Runner{Name: n, Group: "pool", Backend: "docker"})
		require.NoError(t, err)
	}
	// The other one's create failed: a retry is due now.
	out, err := b.store.CreateFailed(ctx, extra[1], 1, b.now, 0)
	require.NoError(t, err)
	require.Equal(t, state.FailureRetrying, out)
	b.gh.set(extra[0], github.RunnerOnline, false)
	b.gh.err = fmt.Errorf("list runners of acme: %w", github.ErrRateLimited)

	require.NoError(t, b.loop.Once(ctx), "a rate limit is no failure of the pass")
	require.Equal(t, 1, b.gh.callCount(), "the scale-down asked")
	require.Equal(t, state.Started, b.state(t, extra[0]), "nothing deleted without GitHub's word")
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Commands.WithLabelValues("create", "retry")), "the retry went out")
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.ReconcileStepsSkipped.WithLabelValues(reconcile.StepScaleDown)))
}

// deadLetter adds an entry to the DLQ as a consumer gives one up, at the
// loop's clock.
func (b *bundle) deadLetter(t *testing.T, origin, typ string, data []byte) string {
	t.Helper()
	id, err := b.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: b.keys.DLQ(), Values: []any{
		stream.FieldType, typ, stream.FieldData, data, stream.FieldOriginStream, origin, stream.FieldOriginID, "1-1",
		stream.FieldReason, "boom", stream.FieldDeliveries, "5", stream.FieldGroup, keys.GroupScheduler,
		stream.FieldConsumer, "c1", stream.FieldTime, b.now.UTC().Format(time.RFC3339Nano),
	}}).Result()
	require.NoError(t, err)
	return id
}

// The DLQ gauge by origin stream counts the entries of each stream.
func TestDLQEntriesByStream(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, 2)
	ctx := context.Background()
	b.deadLetter(t, b.keys.Events(), stream.TypeWorkflowJob, []byte("a"))
	b.deadLetter(t, b.keys.Events(), stream.TypeWorkflowJob, []byte("b"))
	b.deadLetter(t, b.keys.Results(), "result", []byte("c"))
	b.deadLetter(t, b.keys.Provision("docker"), "command", []byte("d"))
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 2.0, testutil.ToFloat64(b.m.DLQByStream.WithLabelValues(b.keys.Events())))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.DLQByStream.WithLabelValues(b.keys.Results())))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.DLQByStream.WithLabelValues(b.keys.Provision("docker"))))

	require.NoError(t, b.rdb.Del(ctx, b.keys.DLQ()).Err())
	require.NoError(t, b.loop.Once(ctx))
	require.Equal(t, 0, testutil.CollectAndCount(b.m.DLQByStream), "an empty DLQ leaves no series")
}

// A queued event dead-lettered by the scheduler is put back on {P}:events
// automatically, 1 min after it was dead-lettered, then 2, 4, 8, 16 min after
// each new dead-lettering; after reconcile.DLQAutoRetries retries it stays
// for an operator. Entries of other streams are never retried automatically.
// Once retried, the event reserves its runner.
func TestDeadLetteredQueuedEventRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, 2)
	ctx := context.Background()
	ev, err := proto.Marshal(&rmv1.WorkflowJobEvent{Action: "queued", JobId: 42, Labels: []string{"linux"}, Owner: "acme", Repository: "app"})
	require.NoError(t, err)
	cmd := b.deadLetter(t, b.keys.Provision("docker"), "command", []byte("cmd"))
	res := b.deadLetter(t, b.keys.Results(), "result", []byte("res"))
	b.deadLetter(t, b.keys.Events(), stream.TypeWorkflowJob, ev)

	dlqIDs := func() []string {
		var ids []string
		for _, m := range b.rdb.XRange(ctx, b.keys.DLQ(), "-", "+").Val() {
			ids = append(ids, m.ID)
		}
		return ids
	}
	events := func() []redis.XMessage { return b.rdb.XRange(ctx, b.keys.Events(), "-", "+").Val() }

	delay := time.Minute
	for retry := 1; retry <= reconcile.DLQAutoRetries; retry++ {
		b.now = b.now.Add(delay - time.Second)
		require.NoError(t, b.loop.Once(ctx))
		require.Len(t, events(), retry-1, "retry %d: not due yet", retry)
		b.now = b.now.Add(time.Second)
		require.NoError(t, b.loop.Once(ctx))
		evs := events()
		require.Len(t, evs, retry, "retry %d: due", retry)
		require.Equal(t, string(ev), evs[retry-1].Values[stream.FieldData])
		require.Equal(t, []string{cmd, res}, dlqIDs(), "the event left the DLQ, the others stay")
		// The consumer gives it up again.
		b.deadLetter(t, b.keys.Events(), stream.TypeWorkflowJob, ev)
		delay *= 2
	}
	b.now = b.now.Add(24 * time.Hour)
	require.NoError(t, b.loop.Once(ctx))
	require.Len(t, events(), reconcile.DLQAutoRetries, "after the last automatic retry it waits for an operator")
	require.Len(t, dlqIDs(), 3)
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.DLQByStream.WithLabelValues(b.keys.Events())))

	// The retried event reserves its runner.
	evs := events()
	h := dispatch.New(b.cfg, b.store, slog.New(slog.NewTextHandler(io.Discard, nil)), b.m)
	last := evs[len(evs)-1]
	require.NoError(t, h.Event(ctx, stream.Message{Stream: b.keys.Events(), ID: last.ID, Type: stream.TypeWorkflowJob,
		Data: []byte(last.Values[stream.FieldData].(string))}))
	creates := 0
	for _, c := range b.commands(t) {
		if c.GetCreate() != nil {
			creates++
		}
	}
	require.Equal(t, 1, creates, "the job has its runner")
}

func TestDLQRetryBackoff(t *testing.T) {
	t.Parallel()
	var got []time.Duration
	for i := range 9 {
		got = append(got, reconcile.DLQRetryBackoff(i))
	}
	require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute,
		32 * time.Minute, time.Hour, time.Hour, time.Hour}, got)
}

// Issue 19: the loop reads a group's mode from Redis every pass. Paused:
// min_runners is not topped up, its runners are kept. Draining: the pass
// deletes its pending, started and idle runners (reason drained; a drain
// the API's request left unfinished), never a busy one, and creates
// nothing. The gauge runner_manager_group_mode follows. The mode of a group
// no longer configured is forgotten.
func TestGroupModeInTheLoop(t *testing.T) {
	t.Parallel()
	b := setup(t, 2, 4)
	ctx := context.Background()
	mode := func(m state.Mode) float64 {
		return testutil.ToFloat64(b.m.GroupMode.WithLabelValues("pool", string(m)))
	}

	require.NoError(t, b.loop.Once(ctx))
	require.Len(t, b.commands(t), 2, "min_runners")
	require.Equal(t, 1.0, mode(state.ModeActive))
	require.Equal(t, 0.0, mode(state.ModePaused))
	warm := []string{b.commands(t)[0].GetCreate().GetSpec().GetName(), b.commands(t)[1].GetCreate().GetSpec().GetName()}

	// Paused: a warm runner gone is not replaced, the other is kept.
	_, err := b.store.SetGroupMode(ctx, "pool", state.ModePaused)
	require.NoError(t, err)
	_, err = b.store.Deleted(ctx, b.group(), warm[0])
	require.NoError(t, err)
	require.NoError(t, b.loop.Once(ctx))
	require.Len(t, b.commands(t), 2, "no top-up while paused")
	require.Equal(t, state.Pending, b.state(t, warm[1]))
	require.Equal(t, 0.0, mode(state.ModeActive))
	require.Equal(t, 1.0, mode(state.ModePaused))

	// Resumed, a job takes one runner: it is busy.
	_, err = b.store.SetGroupMode(ctx, "pool", state.ModeActive)
	require.NoError(t, err)
	q, err := b.store.Queued(ctx, b.group(), 9, b.now)
	require.NoError(t, err)
	require.Len(t, q.Reserved, 2, "warm[0]'s place (min_runners) and the job's")
	_, err = b.store.InProgress(ctx, b.group(), state.JobUpdate{JobID: 9, RunnerName: q.Reserved[0]})
	require.NoError(t, err)

	// Draining, set without the API's deletes: the loop does them.
	_, err = b.store.SetGroupMode(ctx, "pool", state.ModeDraining)
	require.NoError(t, err)
	before := len(b.commands(t))
	require.NoError(t, b.loop.Once(ctx))
	cmds := b.commands(t)[before:]
	require.NotEmpty(t, cmds)
	for _, c := range cmds {
		require.NotNil(t, c.GetDelete(), "only deletes while draining: %v", c)
		require.Equal(t, state.ReasonDrained, c.GetDelete().GetReason())
		require.NotEqual(t, q.Reserved[0], c.GetDelete().GetName(), "the busy runner stays")
	}
	runners, err := b.store.Runners(ctx, "pool")
	require.NoError(t, err)
	for _, r := range runners {
		if r.Name == q.Reserved[0] {
			require.Equal(t, state.Busy, r.State)
		} else {
			require.Equal(t, state.Deleting, r.State, r.Name)
		}
	}
	require.EqualValues(t, len(cmds), testutil.ToFloat64(b.m.Commands.WithLabelValues("delete", state.ReasonDrained)))
	require.Equal(t, 1.0, mode(state.ModeDraining))
	require.Equal(t, 0.0, mode(state.ModePaused))
	require.NoError(t, b.loop.Once(ctx))
	require.Len(t, b.commands(t), before+len(cmds), "the next pass emits nothing")

	// The mode of a group no longer configured is forgotten at the next
	// removed-groups pass (the first of a new loop: a restart).
	_, err = b.store.SetGroupMode(ctx, "old", state.ModePaused)
	require.NoError(t, err)
	fresh := reconcile.New(b.cfg, b.store, b.gh, b.m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, fresh.Once(ctx))
	require.Zero(t, b.rdb.Exists(ctx, b.keys.GroupMode("old")).Val())
	m, err := b.store.GroupMode(ctx, "pool")
	require.NoError(t, err)
	require.Equal(t, state.ModeDraining, m, "a configured group keeps its mode")
}
