package dispatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/dispatch"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func testConfig(name string, maxRunners, minRunners int) *config.Config {
	cfg := &config.Config{
		Name: name,
		RunnerGroups: []config.RunnerGroup{{
			Name:         "pool",
			Organization: "acme",
			MaxRunners:   maxRunners,
			MinRunners:   minRunners,
			Labels:       []string{"self-hosted", "linux"},
			Backend:      config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}},
		}},
	}
	cfg.SetDefaults()
	return cfg
}

// replica is one scheduler: its own store, command builder and handlers.
type replica struct {
	store *state.Store
	h     *dispatch.Handlers
}

func newReplica(rdb redis.UniversalClient, cfg *config.Config) *replica {
	b := command.New(cfg, nil)
	st := state.New(rdb, keys.New(cfg.Name), state.Options{Commands: b, MaxLen: cfg.Streams.MaxLen})
	b.SetGroupIDs(st)
	return &replica{store: st, h: dispatch.New(cfg, st, quiet, nil)}
}

func consume(ctx context.Context, t *testing.T, wg *sync.WaitGroup, rdb redis.UniversalClient, k keys.Keys, streamKey, group, consumer string, h stream.Handler) {
	t.Helper()
	c := stream.NewConsumer(rdb, stream.ConsumerConfig{
		Stream: streamKey, Group: group, Consumer: consumer, Concurrency: 4,
		DLQ: k.DLQ(), Block: 50 * time.Millisecond, Logger: quiet,
		Backoff: func(int64) time.Duration { return 10 * time.Millisecond },
	}, h)
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("consumer %s of %s: %v", consumer, streamKey, err)
		}
	})
}

// fakeWorld is a provisioner and a GitHub: it creates instances on create
// commands, gives each new runner one queued job (in_progress, then
// completed), and deletes instances on delete commands.
type fakeWorld struct {
	t    *testing.T
	pub  *stream.Publisher
	keys keys.Keys
	jobs chan int64 // queued at GitHub, not yet taken
	ctx  context.Context

	mu       sync.Mutex
	live     map[string]bool
	maxLive  int
	creates  int
	ranBy    map[int64][]string // job -> runners that ran it
	ran      map[string][]int64 // runner -> jobs it ran
	finished int
	done     chan struct{}
	total    int
	wg       sync.WaitGroup
}

func (w *fakeWorld) publishResult(ctx context.Context, r *rmv1.ProvisionResult) error {
	_, err := w.pub.Publish(ctx, w.keys.Results(), stream.TypeResult, r)
	return err
}

func (w *fakeWorld) event(action string, job int64, runner string) *rmv1.WorkflowJobEvent {
	return &rmv1.WorkflowJobEvent{
		DeliveryId: fmt.Sprintf("%s-%d", action, job), Action: action, JobId: job,
		Labels: []string{"self-hosted", "linux"}, Owner: "acme", Repository: "app", RunnerName: runner,
	}
}

func (w *fakeWorld) provision(ctx context.Context, m stream.Message) error {
	var cmd rmv1.ProvisionCommand
	if err := m.Unmarshal(&cmd); err != nil {
		return err
	}
	switch c := cmd.GetCommand().(type) {
	case *rmv1.ProvisionCommand_Create:
		name := c.Create.GetSpec().GetName()
		w.mu.Lock()
		if !w.live[name] {
			w.live[name] = true
			w.creates++
			w.maxLive = max(w.maxLive, len(w.live))
		}
		w.mu.Unlock()
		if err := w.publishResult(ctx, &rmv1.ProvisionResult{
			CommandId: cmd.GetCommandId(), RunnerName: name, Group: c.Create.GetSpec().GetGroup(), BackendType: "docker",
			Attempt: c.Create.GetAttempt(), Outcome: &rmv1.ProvisionResult_Created{Created: &rmv1.Created{InstanceId: "c-" + name}},
		}); err != nil {
			return err
		}
		// The runner comes online and GitHub gives it one queued job (on the
		// world's context: the handler's ends when the handler returns).
		w.wg.Go(func() { w.runJob(w.ctx, name) })
	case *rmv1.ProvisionCommand_Delete:
		name := c.Delete.GetName()
		w.mu.Lock()
		delete(w.live, name)
		w.mu.Unlock()
		return w.publishResult(ctx, &rmv1.ProvisionResult{
			CommandId: cmd.GetCommandId(), RunnerName: name, Group: c.Delete.GetGroup(), BackendType: "docker",
			Outcome: &rmv1.ProvisionResult_Deleted{Deleted: &rmv1.Deleted{}},
		})
	}
	return nil
}

func (w *fakeWorld) runJob(ctx context.Context, runner string) {
	var job int64
	select {
	case job = <-w.jobs:
	case <-ctx.Done():
		return
	}
	w.mu.Lock()
	w.ranBy[job] = append(w.ranBy[job], runner)
	w.ran[runner] = append(w.ran[runner], job)
	w.mu.Unlock()
	for _, action := range []string{"in_progress", "completed"} {
		if _, err := w.pub.Publish(ctx, w.keys.Events(), stream.TypeWorkflowJob, w.event(action, job, runner)); err != nil {
			if ctx.Err() == nil {
				w.t.Errorf("publish %s: %v", action, err)
			}
			return
		}
	}
	w.mu.Lock()
	w.finished++
	if w.finished == w.total {
		close(w.done)
	}
	w.mu.Unlock()
}

// Three scheduler replicas in one consumer group, 500 queued jobs at once, a
// group of max_runners 5: never more than 5 runners reserved or alive, every
// job served once, nothing left behind.
func TestThreeReplicasBurst(t *testing.T) {
	const jobs, maxRunners = 500, 5
	rdb := redistest.Client(t)
	cfg := testConfig(redistest.NewName("burst"), maxRunners, 0)
	k := keys.New(cfg.Name)
	world := &fakeWorld{
		t: t, pub: stream.NewPublisher(rdb, cfg.Streams.MaxLen), keys: k, jobs: make(chan int64, jobs),
		live: map[string]bool{}, ranBy: map[int64][]string{}, ran: map[string][]int64{}, done: make(chan struct{}), total: jobs,
	}
	defer world.wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	world.ctx = ctx

	// Publish every queued event before anything consumes: one burst.
	for j := int64(1); j <= jobs; j++ {
		world.jobs <- j
		_, err := world.pub.Publish(ctx, k.Events(), stream.TypeWorkflowJob, world.event("queued", j, ""))
		require.NoError(t, err)
	}

	// Sample the reserved count all along.
	var maxReserved atomic.Int64
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for ctx.Err() == nil {
			if n, err := rdb.ZCard(ctx, k.GroupRunners("pool")).Result(); err == nil && n > maxReserved.Load() {
				maxReserved.Store(n)
			}
		}
	}()

	for i := range 3 {
		r := newReplica(rdb, cfg)
		consume(ctx, t, &wg, rdb, k, k.Events(), keys.GroupScheduler, fmt.Sprintf("s%d", i), r.h.Event)
		consume(ctx, t, &wg, rdb, k, k.Results(), keys.GroupScheduler, fmt.Sprintf("s%d", i), r.h.Result)
	}
	for i := range 2 {
		consume(ctx, t, &wg, rdb, k, k.Provision("docker"), keys.ProvisionerGroup("docker"), fmt.Sprintf("p%d", i), world.provision)
	}

	select {
	case <-world.done:
	case <-time.After(2 * time.Minute):
		n, _ := rdb.XLen(context.Background(), k.Events()).Result()
		groups, _ := rdb.XInfoGroups(context.Background(), k.Events()).Result()
		t.Logf("events: %d entries, groups %+v", n, groups)
		pend, _ := rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: k.Events(), Group: keys.GroupScheduler, Start: "-", End: "+", Count: 20}).Result()
		t.Logf("pending: %+v", pend)
		world.mu.Lock()
		t.Logf("ran: %v", world.ran)
		world.mu.Unlock()
		t.Fatalf("only %d of %d jobs finished", world.finished, jobs)
	}
	// Wait for the last deletes to come back.
	require.Eventually(t, func() bool {
		n, err := rdb.ZCard(ctx, k.GroupRunners("pool")).Result()
		return err == nil && n == 0
	}, time.Minute, 10*time.Millisecond, "runners left behind")
	cancel()
	<-sampleDone

	world.mu.Lock()
	defer world.mu.Unlock()
	require.LessOrEqual(t, maxReserved.Load(), int64(maxRunners), "reserved runners above max_runners")
	require.LessOrEqual(t, world.maxLive, maxRunners, "live instances above max_runners")
	require.Empty(t, world.live, "instances leaked")
	require.Len(t, world.ranBy, jobs)
	for job, runners := range world.ranBy {
		require.Len(t, runners, 1, "job %d ran on %v", job, runners)
	}
	for runner, js := range world.ran {
		require.Len(t, js, 1, "runner %s ran %v", runner, js)
	}
	require.Equal(t, jobs, world.creates, "one runner per job, none surplus")
	st, err := newReplica(rdb, cfg).store.GroupStatus(context.Background(), "pool")
	require.NoError(t, err)
	require.Zero(t, st.Demand)
	require.Zero(t, st.Total)
	for j := int64(1); j <= jobs; j++ {
		job, ok, err := newReplica(rdb, cfg).store.Job(context.Background(), j)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, state.JobCompleted, job.Status, "job %d", j)
	}
}
