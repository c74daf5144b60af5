package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

// fakeSource is an in-memory webhook: deliveries oldest first, listed newest
// first with cursor pagination, and the redeliveries asked for.
type fakeSource struct {
	mu          sync.Mutex
	deliveries  []Delivery
	nextID      int64
	listCalls   int
	redelivered []int64
	failList    error
	failRedeliv map[int64]error
}

func newFakeSource() *fakeSource { return &fakeSource{nextID: 1000, failRedeliv: map[int64]error{}} }

// add records a "queued" delivery attempt of guid at at and returns its ID.
func (f *fakeSource) add(guid, event string, code int, at time.Time) int64 {
	return f.addAction(guid, event, "queued", code, at)
}

// addAction records a delivery attempt of guid with action.
func (f *fakeSource) addAction(guid, event, action string, code int, at time.Time) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	redelivery := slices.ContainsFunc(f.deliveries, func(d Delivery) bool { return d.GUID == guid })
	f.deliveries = append(f.deliveries, Delivery{
		ID: f.nextID, GUID: guid, DeliveredAt: at, Redelivery: redelivery,
		StatusCode: code, Event: event, Action: action,
	})
	return f.nextID
}

func (f *fakeSource) ListDeliveries(_ context.Context, cursor string, perPage int) ([]Delivery, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listCalls++
	if f.failList != nil {
		return nil, "", f.failList
	}
	before := int64(-1)
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("bad cursor %q", cursor)
		}
		before = n
	}
	var page []Delivery
	for _, d := range slices.Backward(f.deliveries) {
		if before >= 0 && d.ID >= before {
			continue
		}
		if len(page) == perPage {
			return page, strconv.FormatInt(page[len(page)-1].ID, 10), nil
		}
		page = append(page, d)
	}
	return page, "", nil
}

func (f *fakeSource) Redeliver(_ context.Context, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failRedeliv[id]; err != nil {
		return err
	}
	f.redelivered = append(f.redelivered, id)
	return nil
}

func (f *fakeSource) redeliveries() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.redelivered)
}

func (f *fakeSource) lists() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listCalls
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type bundle struct {
	rdb   *redis.Client
	keys  keys.Keys
	src   *fakeSource
	clock *clock
	reg   *prometheus.Registry
	opts  Options
}

func setup(t *testing.T, mod func(*Options)) (*bundle, *Recovery) {
	t.Helper()
	b := &bundle{
		rdb:   redistest.Client(t),
		keys:  keys.New(redistest.NewName("recovery")),
		src:   newFakeSource(),
		clock: &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)},
		reg:   prometheus.NewRegistry(),
	}
	b.opts = Options{Redis: b.rdb, Keys: b.keys, Source: b.src, PerPage: 10, Registerer: b.reg, Now: b.clock.Now}
	if mod != nil {
		mod(&b.opts)
	}
	return b, New(b.opts)
}

// again is another process with the same Redis (no state but Redis's).
func (b *bundle) again() *Recovery {
	o := b.opts
	o.Registerer = nil
	return New(o)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPaginatesBackToCheckpoint(t *testing.T) {
	t.Parallel()
	b, r := setup(t, nil)
	now := b.clock.Now()
	for i := range 25 {
		b.src.add(fmt.Sprintf("ok-%d", i), EventWorkflowJob, 200, now.Add(-time.Hour+time.Duration(i)*time.Second))
	}
	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 3, rep.Pages, "25 deliveries, 10 a page, no checkpoint: every page")
	require.Equal(t, 25, rep.Deliveries)
	require.Zero(t, rep.Failed)
	require.Empty(t, b.src.redeliveries())
	require.Equal(t, int64(1025), rep.Checkpoint.ID)

	// 3 new deliveries: the next pass (another process) reads one page and
	// stops at the checkpoint.
	failedID := b.src.add("lost", EventWorkflowJob, 503, now)
	b.src.add("ok-new-1", EventWorkflowJob, 200, now)
	b.src.add("ok-new-2", EventWorkflowJob, 202, now)
	before := b.src.lists()
	rep, err = b.again().RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 1, b.src.lists()-before)
	require.Equal(t, 3, rep.Deliveries)
	require.Equal(t, []string{"lost"}, rep.Redelivered)
	require.Equal(t, []int64{failedID}, b.src.redeliveries())
}

func TestGroupsAttemptsByGUID(t *testing.T) {
	t.Parallel()
	b, r := setup(t, nil)
	now := b.clock.Now()
	at := func(m int) time.Time { return now.Add(time.Duration(m-60) * time.Minute) }

	b.src.add("healed", EventWorkflowJob, 503, at(1))
	b.src.add("twice", EventWorkflowJob, 0, at(2)) // no answer
	b.src.add("ping", "ping", 503, at(3))          // not a workflow_job
	b.src.add("healed", EventWorkflowJob, 200, at(4))
	newestTwice := b.src.add("twice", EventWorkflowJob, 500, at(5))
	b.src.add("fine", EventWorkflowJob, 204, at(6))
	lone := b.src.add("lone", EventWorkflowJob, 404, at(7))

	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 2, rep.Failed, "twice and lone never succeeded")
	require.Equal(t, []string{"twice", "lone"}, rep.Redelivered, "oldest first, once per GUID")
	require.Equal(t, []int64{newestTwice, lone}, b.src.redeliveries(), "the newest attempt is redelivered")
	require.Equal(t, 4.0, testutil.ToFloat64(r.metrics.failed), "failed workflow_job attempts, the healed one included")
	require.Equal(t, 2.0, testutil.ToFloat64(r.metrics.redeliveries))
}

func TestRedeliveryInFlightIsNotAskedAgainAndAttemptsAreBounded(t *testing.T) {
	t.Parallel()
	b, r := setup(t, func(o *Options) { o.MaxAttempts = 2; o.InFlightTimeout = 10 * time.Minute })
	now := b.clock.Now()
	first := b.src.add("lost", EventWorkflowJob, 503, now.Add(-time.Minute))
	b.src.add("ok", EventWorkflowJob, 200, now.Add(-time.Second))

	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"lost"}, rep.Redelivered)
	require.Equal(t, first-1, rep.Checkpoint.ID, "the checkpoint holds below the unsettled GUID")

	// The redelivery has not shown up yet: in flight, not asked again.
	b.clock.Advance(time.Minute)
	rep, err = b.again().RunOnce(ctx(t))
	require.NoError(t, err)
	require.Empty(t, rep.Redelivered)
	require.Equal(t, 1, rep.InFlight)
	require.Len(t, b.src.redeliveries(), 1)

	// The redelivery failed too: asked again (attempt 2 of 2).
	second := b.src.add("lost", EventWorkflowJob, 503, b.clock.Now())
	rep, err = b.again().RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"lost"}, rep.Redelivered)
	require.Equal(t, []int64{first, second}, b.src.redeliveries())

	// It failed again: given up, and the checkpoint moves past it.
	third := b.src.add("lost", EventWorkflowJob, 503, b.clock.Now())
	rep, err = b.again().RunOnce(ctx(t))
	require.NoError(t, err)
	require.Empty(t, rep.Redelivered)
	require.Equal(t, 1, rep.GivenUp)
	require.Equal(t, third, rep.Checkpoint.ID)
	require.Len(t, b.src.redeliveries(), 2)
}

func TestRedeliveryLostIsAskedAgainAfterInFlightTimeout(t *testing.T) {
	t.Parallel()
	b, r := setup(t, func(o *Options) { o.InFlightTimeout = 5 * time.Minute })
	id := b.src.add("lost", EventWorkflowJob, 503, b.clock.Now().Add(-time.Minute))
	_, err := r.RunOnce(ctx(t))
	require.NoError(t, err)

	b.clock.Advance(4 * time.Minute)
	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 1, rep.InFlight)

	b.clock.Advance(2 * time.Minute) // GitHub never performed it
	rep, err = r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"lost"}, rep.Redelivered)
	require.Equal(t, []int64{id, id}, b.src.redeliveries())
}

func TestSucceededRedeliverySettlesTheGUID(t *testing.T) {
	t.Parallel()
	b, r := setup(t, nil)
	b.src.add("lost", EventWorkflowJob, 503, b.clock.Now().Add(-time.Minute))
	_, err := r.RunOnce(ctx(t))
	require.NoError(t, err)

	ok := b.src.add("lost", EventWorkflowJob, 200, b.clock.Now())
	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Zero(t, rep.Failed)
	require.Empty(t, rep.Redelivered)
	require.Equal(t, ok, rep.Checkpoint.ID)
	require.Len(t, b.src.redeliveries(), 1)
}

func TestThreeDayBound(t *testing.T) {
	t.Parallel()
	b, r := setup(t, func(o *Options) { o.PerPage = 2 })
	now := b.clock.Now()
	for i := range 6 { // 3 pages of deliveries too old to redeliver
		b.src.add(fmt.Sprintf("old-%d", i), EventWorkflowJob, 503, now.Add(-73*time.Hour+time.Duration(i)*time.Minute))
	}
	recent := b.src.add("recent", EventWorkflowJob, 503, now.Add(-71*time.Hour))
	b.src.add("ok", EventWorkflowJob, 200, now)

	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 2, rep.Pages, "listing stops at the first delivery older than 3 days")
	require.Equal(t, 2, rep.Deliveries)
	require.Equal(t, []int64{recent}, b.src.redeliveries())
}

func TestPerPassBound(t *testing.T) {
	t.Parallel()
	b, r := setup(t, func(o *Options) { o.MaxPerPass = 2 })
	now := b.clock.Now()
	var ids []int64
	for i := range 5 {
		ids = append(ids, b.src.add(fmt.Sprintf("lost-%d", i), EventWorkflowJob, 503, now.Add(time.Duration(i-10)*time.Minute)))
	}
	b.src.add("ok", EventWorkflowJob, 200, now)

	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"lost-0", "lost-1"}, rep.Redelivered, "the oldest first")
	require.Equal(t, 3, rep.Deferred)
	require.Equal(t, ids[0]-1, rep.Checkpoint.ID)

	rep, err = b.again().RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"lost-2", "lost-3"}, rep.Redelivered)
	require.Equal(t, 2, rep.InFlight)
	require.Equal(t, 1, rep.Deferred)

	rep, err = b.again().RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"lost-4"}, rep.Redelivered)
	require.Equal(t, ids, b.src.redeliveries(), "each GUID once")
}

func TestCheckpointPersistedInRedis(t *testing.T) {
	t.Parallel()
	b, r := setup(t, nil)
	now := b.clock.Now()
	b.src.add("a", EventWorkflowJob, 200, now.Add(-time.Minute))
	last := b.src.add("b", EventWorkflowJob, 200, now)

	_, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	h, err := b.rdb.HGetAll(ctx(t), b.keys.RecoveryCheckpoint("")).Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"id": strconv.FormatInt(last, 10), "newest": strconv.FormatInt(last, 10),
		"at": strconv.FormatInt(now.UnixMilli(), 10),
	}, h)

	cp, err := b.again().LoadCheckpoint(ctx(t))
	require.NoError(t, err)
	require.Equal(t, Checkpoint{ID: last, Newest: last, At: now}, Checkpoint{ID: cp.ID, Newest: cp.Newest, At: cp.At.UTC()})
}

func TestRedeliveryErrorKeepsTheGUIDForTheNextPass(t *testing.T) {
	t.Parallel()
	b, r := setup(t, func(o *Options) { o.InFlightTimeout = time.Minute })
	now := b.clock.Now()
	bad := b.src.add("refused", EventWorkflowJob, 503, now.Add(-2*time.Minute))
	good := b.src.add("lost", EventWorkflowJob, 503, now.Add(-time.Minute))
	b.src.failRedeliv[bad] = errors.New("422 unprocessable")

	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err, "one refused redelivery does not fail the pass")
	require.Equal(t, 1, rep.Errors)
	require.Equal(t, []string{"lost"}, rep.Redelivered)
	require.Equal(t, bad-1, rep.Checkpoint.ID)

	delete(b.src.failRedeliv, bad)
	b.clock.Advance(2 * time.Minute)
	b.src.add("lost", EventWorkflowJob, 200, b.clock.Now())
	rep, err = r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"refused"}, rep.Redelivered)
	require.Equal(t, []int64{good, bad}, b.src.redeliveries())
}

func TestListErrorLeavesTheCheckpoint(t *testing.T) {
	t.Parallel()
	b, r := setup(t, nil)
	b.src.add("a", EventWorkflowJob, 200, b.clock.Now())
	_, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	before, err := r.LoadCheckpoint(ctx(t))
	require.NoError(t, err)

	b.src.add("lost", EventWorkflowJob, 503, b.clock.Now())
	b.src.failList = errors.New("boom")
	b.clock.Advance(time.Minute)
	_, err = r.RunOnce(ctx(t))
	require.ErrorContains(t, err, "list webhook deliveries")
	after, err := r.LoadCheckpoint(ctx(t))
	require.NoError(t, err)
	require.Equal(t, before, after)
	require.Empty(t, b.src.redeliveries())
	require.Equal(t, uint64(2), histogramCount(t, b.reg, "runner_manager_recovery_pass_duration_seconds"))
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestRunUnderLease(t *testing.T) {
	t.Parallel()
	b, _ := setup(t, nil)
	b.src.add("lost", EventWorkflowJob, 503, b.clock.Now())
	o := b.opts
	o.Owner = "replica-1"
	o.LeaseTTL = 3 * time.Second
	o.Registerer = nil
	r := New(o)

	c, cancel := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() { done <- r.Run(c, time.Hour) }()
	require.Eventually(t, func() bool { return len(b.src.redeliveries()) == 1 }, 10*time.Second, 10*time.Millisecond)
	owner, err := b.rdb.Get(ctx(t), b.keys.Lease(LeaseTask)).Result()
	require.NoError(t, err)
	require.Equal(t, "replica-1", owner)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, int64(0), b.rdb.Exists(ctx(t), b.keys.Lease(LeaseTask)).Val(), "the lease is released")

	o.Owner = ""
	require.Error(t, New(o).Run(ctx(t), time.Second), "Run needs an owner")
}

func TestQueuedDeliveriesFirst(t *testing.T) {
	t.Parallel()
	b, r := setup(t, func(o *Options) { o.MaxPerPass = 2 })
	now := b.clock.Now()
	b.src.addAction("completed-old", EventWorkflowJob, "completed", 503, now.Add(-3*time.Minute))
	b.src.addAction("in-progress", EventWorkflowJob, "in_progress", 503, now.Add(-2*time.Minute))
	b.src.addAction("queued-new", EventWorkflowJob, "queued", 503, now.Add(-time.Minute))

	rep, err := r.RunOnce(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"queued-new", "completed-old"}, rep.Redelivered, "a waiting job first, then the oldest")
	require.Equal(t, 1, rep.Deferred)
}

func TestMaxPerPassForKeepsThePace(t *testing.T) {
	t.Parallel()
	require.Equal(t, DefaultMaxPerPass, MaxPerPassFor(DefaultInterval))
	require.Equal(t, 25, MaxPerPassFor(30*time.Second))
	require.Equal(t, 8, MaxPerPassFor(10*time.Second))
	require.Equal(t, 1, MaxPerPassFor(time.Second))
}
