package lease_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/lease"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTryAcquireAndTakeover(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	key := redistest.NewName("{test}:lease")
	const ttl = 300 * time.Millisecond
	a := lease.New(rdb, key, "a", ttl)
	b := lease.New(rdb, key, "b", ttl)

	ok, err := a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok, "a takes the free lease")
	ok, err = b.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok, "b cannot take a's lease")
	ok, err = a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok, "a extends its lease")
	require.Equal(t, "a", rdb.Get(ctx, key).Val())

	// b releasing changes nothing: it does not hold it.
	require.NoError(t, b.Release(ctx))
	require.Equal(t, "a", rdb.Get(ctx, key).Val())

	// a dies without releasing: b takes over once the TTL ran out, and
	// never while a's key is there.
	eventually(t, 5*time.Second, func() bool {
		holder := rdb.Get(ctx, key).Val()
		ok, err := b.TryAcquire(ctx)
		require.NoError(t, err)
		require.False(t, ok && holder == "a", "b acquired while a held the lease")
		return ok
	}, "b never took over")
	require.Equal(t, "b", rdb.Get(ctx, key).Val())

	// a comes back: it does not hold it any more.
	ok, err = a.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)

	// b releases: a takes it at once.
	require.NoError(t, b.Release(ctx))
	ok, err = a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
}

// runs records the calls of fn under a lease, checking in each call that the
// caller is the lease holder.
type runs struct {
	mu         sync.Mutex
	calls      map[string]int
	violations []string
}

func (r *runs) fn(t *testing.T, rdb *redis.Client, key, owner string) func(context.Context) error {
	return func(ctx context.Context) error {
		holder, err := rdb.Get(context.Background(), key).Result()
		r.mu.Lock()
		defer r.mu.Unlock()
		if ctx.Err() == nil && (err != nil || holder != owner) {
			r.violations = append(r.violations, owner+" ran while "+holder+" held the lease")
		}
		r.calls[owner]++
		return nil
	}
}

func (r *runs) count(owner string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[owner]
}

func TestRunTwoHolders(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	key := redistest.NewName("{test}:lease")
	const ttl = 300 * time.Millisecond
	r := &runs{calls: map[string]int{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	type holder struct {
		cancel context.CancelFunc
		done   chan error
	}
	startRun := func(owner string) holder {
		ctx, cancel := context.WithCancel(context.Background())
		l := lease.New(rdb, key, owner, ttl)
		l.Logger = quiet
		h := holder{cancel: cancel, done: make(chan error, 1)}
		go func() { h.done <- l.Run(ctx, 20*time.Millisecond, r.fn(t, rdb, key, owner)) }()
		t.Cleanup(func() { cancel() })
		return h
	}
	a := startRun("a")
	eventually(t, 5*time.Second, func() bool { return r.count("a") >= 3 }, "a never ran")
	b := startRun("b")
	// b waits while a renews: a keeps running, b does not run.
	before := r.count("a")
	eventually(t, 5*time.Second, func() bool { return r.count("a") >= before+2*int(ttl/(20*time.Millisecond)) }, "a stopped running")
	require.Zero(t, r.count("b"), "b ran while a held the lease")

	// a stops (and releases): b takes over.
	a.cancel()
	require.NoError(t, <-a.done)
	eventually(t, 5*time.Second, func() bool { return r.count("b") >= 3 }, "b never took over")
	b.cancel()
	require.NoError(t, <-b.done)

	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(t, r.violations)
}

func TestRunTakesOverFromDeadHolder(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	key := redistest.NewName("{test}:lease")
	const ttl = 300 * time.Millisecond
	dead := lease.New(rdb, key, "dead", ttl)
	ok, err := dead.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	acquired := time.Now()

	r := &runs{calls: map[string]int{}}
	l := lease.New(rdb, key, "b", ttl)
	l.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	var firstRun time.Time
	var once sync.Once
	fn := r.fn(t, rdb, key, "b")
	go func() {
		done <- l.Run(runCtx, 20*time.Millisecond, func(ctx context.Context) error {
			once.Do(func() { firstRun = time.Now() })
			return fn(ctx)
		})
	}()
	eventually(t, 5*time.Second, func() bool { return r.count("b") > 0 }, "b never took over from the dead holder")
	cancel()
	require.NoError(t, <-done)
	require.GreaterOrEqual(t, firstRun.Sub(acquired), ttl, "b ran before the dead holder's TTL ran out")
	require.Empty(t, r.violations)
	require.Zero(t, rdb.Exists(ctx, key).Val(), "released at the end of Run")
}

func TestRunValidates(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := lease.New(rdb, "k", "a", 0)
	require.Error(t, l.Run(context.Background(), time.Second, func(context.Context) error { return nil }))
}
