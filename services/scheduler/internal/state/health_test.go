package state_test

import (
	"context"
	"fmt"
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

// healthCommands encodes commands as readable strings (this file's own, so
// that it does not depend on the other tests' helpers).
type healthCommands struct{ n atomic.Int64 }

func (f *healthCommands) Creates(_ context.Context, g state.Group, forJob int64, n int) ([]state.Candidate, error) {
	out := make([]state.Candidate, n)
	for i := range out {
		name := fmt.Sprintf("hc-%s-%06d", g.Name, f.n.Add(1))
		out[i] = state.Candidate{Name: name, ForJob: forJob, Create: state.Command{Data: []byte("create " + name)}}
	}
	return out, nil
}

func (f *healthCommands) Retry(_ context.Context, r state.Runner, attempt int) (state.Command, error) {
	return state.Command{Data: fmt.Appendf(nil, "create %s %d", r.Name, attempt)}, nil
}

func (f *healthCommands) Delete(_ context.Context, r state.Runner, reason string) (state.Command, error) {
	return state.Command{Data: []byte("delete " + r.Name + " " + reason)}, nil
}

func (f *healthCommands) Update(_ context.Context, r state.Runner, u state.JobUpdate) (state.Command, error) {
	return state.Command{Data: fmt.Appendf(nil, "update %s %d", r.Name, u.JobID)}, nil
}

type healthBundle struct {
	rdb   *redis.Client
	keys  keys.Keys
	store *state.Store
	mu    sync.Mutex
	now   time.Time
}

func newHealthBundle(t *testing.T) *healthBundle {
	t.Helper()
	b := &healthBundle{rdb: redistest.Client(t), keys: keys.New(redistest.NewName("sh")), now: time.UnixMilli(1_700_000_000_000)}
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: &healthCommands{}, Now: b.clock})
	return b
}

func (b *healthBundle) clock() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.now
}

func (b *healthBundle) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = b.now.Add(d)
}

func (b *healthBundle) stream(t *testing.T, backend string) []string {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), b.keys.Provision(backend), "-", "+").Result()
	require.NoError(t, err)
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Values["data"].(string))
	}
	return out
}

func TestDeleteOrphanOncePerGuard(t *testing.T) {
	t.Parallel()
	b := newHealthBundle(t)
	ctx := context.Background()
	orphan := state.Runner{Name: "hc-pool-orphan", Group: "pool", Backend: "docker", InstanceID: "c1"}

	// Concurrent handlers of the same inventory emit one delete.
	var wg sync.WaitGroup
	var sent atomic.Int64
	for range 8 {
		wg.Go(func() {
			ok, err := b.store.DeleteOrphan(ctx, orphan, state.ReasonOrphan, time.Minute)
			require.NoError(t, err)
			if ok {
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(1), sent.Load())
	require.Equal(t, []string{"delete hc-pool-orphan orphan"}, b.stream(t, "docker"))

	// A runner that has a record is never an orphan.
	res, err := b.store.TopUp(ctx, state.Group{Name: "pool", Backend: "docker", MinRunners: 1, MaxRunners: 1})
	require.NoError(t, err)
	require.Len(t, res.Reserved, 1)
	ok, err := b.store.DeleteOrphan(ctx, state.Runner{Name: res.Reserved[0], Group: "pool", Backend: "docker"}, state.ReasonOrphan, time.Minute)
	require.NoError(t, err)
	require.False(t, ok)
	require.Len(t, b.stream(t, "docker"), 2, "the delete plus the top-up's create")
}

func TestEmitListSpacingAndMeta(t *testing.T) {
	t.Parallel()
	b := newHealthBundle(t)
	ctx := context.Background()
	cmd := state.Command{ID: "cmd-1", Data: []byte("list")}
	ok, err := b.store.EmitList(ctx, "aws", cmd, []byte(`{"groups":{}}`), time.Minute, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.store.EmitList(ctx, "aws", state.Command{ID: "cmd-2", Data: []byte("list")}, []byte("x"), time.Minute, time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "one list per backend and spacing")
	ok, err = b.store.EmitList(ctx, "gcp", state.Command{ID: "cmd-3", Data: []byte("list")}, []byte("y"), time.Minute, time.Hour)
	require.NoError(t, err)
	require.True(t, ok, "the spacing is per backend")
	require.Equal(t, []string{"list"}, b.stream(t, "aws"))

	meta, found, err := b.store.ListMeta(ctx, "cmd-1")
	require.NoError(t, err)
	require.True(t, found)
	require.JSONEq(t, `{"groups":{}}`, string(meta))
	_, found, err = b.store.ListMeta(ctx, "cmd-2")
	require.NoError(t, err)
	require.False(t, found, "a list not emitted is not remembered")
	ttl, err := b.rdb.PTTL(ctx, b.keys.HealthList("cmd-1")).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 59*time.Minute)
}

// The scripts of queued and in_progress events write where the job runs
// with the event: in the same script, so a job's record never lacks it once
// its event was handled, and a script that fails writes neither.
func TestJobRepositoryIsWrittenWithTheEvent(t *testing.T) {
	t.Parallel()
	b := newHealthBundle(t)
	ctx := context.Background()
	pool := state.Group{Name: "pool", Backend: "docker", MaxRunners: 1}
	where := func(id int64) string {
		t.Helper()
		owner, repo, err := b.store.JobRepository(ctx, id)
		require.NoError(t, err)
		return owner + "/" + repo
	}

	// A script that fails (the command stream is broken) writes neither
	// the job nor its repository.
	require.NoError(t, b.rdb.Set(ctx, b.keys.Provision("docker"), "not a stream", 0).Err())
	_, err := b.store.QueuedIn(ctx, []state.Group{pool}, state.QueuedJob{ID: 7, QueuedAt: b.clock(), Owner: "acme", Repo: "app"})
	require.ErrorContains(t, err, "WRONGTYPE")
	exists, err := b.rdb.Exists(ctx, b.keys.Job(7)).Result()
	require.NoError(t, err)
	require.Zero(t, exists)
	require.NoError(t, b.rdb.Del(ctx, b.keys.Provision("docker")).Err())

	out, err := b.store.QueuedIn(ctx, []state.Group{pool}, state.QueuedJob{ID: 7, QueuedAt: b.clock(), Owner: "acme", Repo: "app"})
	require.NoError(t, err)
	require.False(t, out.Known)
	require.Equal(t, "acme/app", where(7), "written with the queued job")
	j, _, err := b.store.Job(ctx, 7)
	require.NoError(t, err)
	require.Equal(t, state.JobQueued, j.Status)
	ttl, err := b.rdb.PTTL(ctx, b.keys.Job(7)).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Duration(0), "the job record keeps its TTL")

	// A job queued without a repository gets it from a later event, even one
	// that changes nothing else (a repeated queued, an old in_progress).
	_, err = b.store.Queued(ctx, pool, 8, b.clock())
	require.NoError(t, err)
	require.Equal(t, "/", where(8))
	out, err = b.store.QueuedIn(ctx, []state.Group{pool}, state.QueuedJob{ID: 8, QueuedAt: b.clock(), Owner: "acme", Repo: "lib"})
	require.NoError(t, err)
	require.True(t, out.Known)
	require.Equal(t, "acme/lib", where(8))

	// In progress: a job never seen is recorded with its repository; so is
	// one whose in_progress is old (it completed already).
	ip, err := b.store.InProgress(ctx, pool, state.JobUpdate{JobID: 9, Owner: "acme", Repo: "web"})
	require.NoError(t, err)
	require.True(t, ip.Applied)
	require.Equal(t, "acme/web", where(9))
	_, err = b.store.Completed(ctx, pool, state.JobUpdate{JobID: 10})
	require.NoError(t, err)
	ip, err = b.store.InProgress(ctx, pool, state.JobUpdate{JobID: 10, Owner: "acme", Repo: "api"})
	require.NoError(t, err)
	require.False(t, ip.Applied)
	require.Equal(t, "acme/api", where(10))

	require.Equal(t, "/", where(11), "unknown job")
}

func TestSeenGitHubOrphans(t *testing.T) {
	t.Parallel()
	b := newHealthBundle(t)
	ctx := context.Background()
	a, c := state.GitHubOrphan{ID: 1, Name: "hc-a"}, state.GitHubOrphan{ID: 2, Name: "hc-c"}
	t0 := b.clock()
	first, err := b.store.SeenGitHubOrphans(ctx, "acme", []state.GitHubOrphan{a})
	require.NoError(t, err)
	require.Equal(t, map[state.GitHubOrphan]time.Time{a: t0}, first)

	b.advance(time.Minute)
	first, err = b.store.SeenGitHubOrphans(ctx, "acme", []state.GitHubOrphan{a, c})
	require.NoError(t, err)
	require.Equal(t, t0, first[a], "first sighting kept")
	require.Equal(t, t0.Add(time.Minute), first[c])

	b.advance(time.Minute)
	first, err = b.store.SeenGitHubOrphans(ctx, "acme", []state.GitHubOrphan{c})
	require.NoError(t, err)
	require.Equal(t, map[state.GitHubOrphan]time.Time{c: t0.Add(time.Minute)}, first, "a is forgotten once not seen")
	first, err = b.store.SeenGitHubOrphans(ctx, "acme", []state.GitHubOrphan{a})
	require.NoError(t, err)
	require.Equal(t, t0.Add(2*time.Minute), first[a], "seen again: a new first sighting")

	require.NoError(t, b.store.ForgetGitHubOrphan(ctx, "acme", a))
	first, err = b.store.SeenGitHubOrphans(ctx, "other", nil)
	require.NoError(t, err)
	require.Empty(t, first)
}

func TestRecordedGroupsAndExisting(t *testing.T) {
	t.Parallel()
	b := newHealthBundle(t)
	ctx := context.Background()
	var names []string
	for _, g := range []string{"pool", "old-pool"} {
		res, err := b.store.TopUp(ctx, state.Group{Name: g, Backend: "docker", MinRunners: 1, MaxRunners: 1})
		require.NoError(t, err)
		names = append(names, res.Reserved...)
	}
	groups, err := b.store.RecordedGroups(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"old-pool", "pool"}, groups, "sorted")

	have, err := b.store.Existing(ctx, append(names, "hc-none"))
	require.NoError(t, err)
	require.Equal(t, map[string]bool{names[0]: true, names[1]: true}, have)
}

func TestJobChecks(t *testing.T) {
	t.Parallel()
	b := newHealthBundle(t)
	ctx := context.Background()
	t0 := b.clock()
	require.NoError(t, b.store.JobChecked(ctx, 1, t0))
	require.NoError(t, b.store.JobChecked(ctx, 2, t0.Add(time.Hour)))
	got, err := b.store.JobChecks(ctx, []int64{1, 2, 3}, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, map[int64]time.Time{2: t0.Add(time.Hour)}, got, "checks older than forgetBefore are forgotten")
}
