package state_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// Benchmarks of the scheduler's hottest decision, a queued job (docs/benchmarks.md):
//
//	go test ./services/scheduler/internal/state -run '^$' -bench Queued -benchmem -cpuprofile cpu.out
//
// They use the real command builder (protobuf commands, runner names) and
// report, besides the client's time, the Redis commands sent per job
// (redis-calls/op) and the time Redis spent in them (redis-µs/op, from INFO
// commandstats: the Lua scripts run there).

// countingHook counts the commands the client sends (a pipeline counts each).
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// redisUsec sums usec of INFO commandstats: the CPU time Redis spent
// executing commands (scripts included).
func redisUsec(b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, "usec=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			total += n
		}
	}
	return total
}

func benchStore(b *testing.B) (*redis.Client, *countingHook, *state.Store, state.Group) {
	b.Helper()
	rdb := redistest.Client(b)
	hook := &countingHook{}
	rdb.AddHook(hook)
	name := redistest.NewName("bench")
	cfg := &config.Config{
		Name: name,
		RunnerGroups: []config.RunnerGroup{{
			Name: "g", Organization: "org", MaxRunners: 1 << 30, Labels: []string{"self-hosted", "linux"},
			Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:dev"}},
		}},
	}
	builder := command.New(cfg, nil)
	store := state.New(rdb, keys.New(name), state.Options{Commands: builder})
	builder.SetGroupIDs(store)
	g, _ := command.Group(cfg, "g")
	return rdb, hook, store, g
}

func reportRedis(b *testing.B, rdb *redis.Client, hook *countingHook, calls0, usec0 int64) {
	b.ReportMetric(float64(hook.n.Load()-calls0)/float64(b.N), "redis-calls/op")
	b.ReportMetric(float64(redisUsec(b, rdb)-usec0)/float64(b.N), "redis-µs/op")
}

// BenchmarkQueued records one queued job per iteration for a group with
// room: job record, demand, one runner reserved and its create command.
func BenchmarkQueued(b *testing.B) {
	rdb, hook, store, g := benchStore(b)
	ctx := context.Background()
	now := time.Now()
	calls0, usec0 := hook.n.Load(), redisUsec(b, rdb)
	b.ResetTimer()
	for i := range b.N {
		out, err := store.Queued(ctx, g, int64(i+1), now)
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Reserved) != 1 {
			b.Fatalf("job %d: %d runners reserved, want 1", i+1, len(out.Reserved))
		}
	}
	b.StopTimer()
	reportRedis(b, rdb, hook, calls0, usec0)
}

// BenchmarkQueuedParallel is BenchmarkQueued from 8 goroutines, the
// concurrency of one scheduler replica's event consumer.
func BenchmarkQueuedParallel(b *testing.B) {
	rdb, hook, store, g := benchStore(b)
	ctx := context.Background()
	now := time.Now()
	var next atomic.Int64
	calls0, usec0 := hook.n.Load(), redisUsec(b, rdb)
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := store.Queued(ctx, g, next.Add(1), now); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportRedis(b, rdb, hook, calls0, usec0)
}

// BenchmarkCreates is the command builder alone: the runner names and the
// protobuf create commands of one job (DefaultBatch candidates), with the
// GitHub group id lookup in Redis.
func BenchmarkCreates(b *testing.B) {
	rdb, hook, store, g := benchStore(b)
	_ = store
	cfg := &config.Config{Name: "bench", RunnerGroups: []config.RunnerGroup{{
		Name: "g", Organization: "org", MaxRunners: 10, Labels: []string{"self-hosted"},
		Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:dev"}},
	}}}
	builder := command.New(cfg, store)
	ctx := context.Background()
	calls0, usec0 := hook.n.Load(), redisUsec(b, rdb)
	b.ResetTimer()
	for i := range b.N {
		if _, err := builder.Creates(ctx, g, int64(i), state.DefaultBatch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRedis(b, rdb, hook, calls0, usec0)
}

// cachedGroupIDs remembers the GitHub group id of each group: what
// BenchmarkQueuedCachedGroupID measures against BenchmarkQueued, the gain of
// not reading {P}:ghgroup:<group> once per candidate runner.
type cachedGroupIDs struct {
	ids  command.GroupIDs
	seen map[string]int64
}

func (c *cachedGroupIDs) GitHubGroupID(ctx context.Context, group string) (int64, error) {
	if id, ok := c.seen[group]; ok {
		return id, nil
	}
	id, err := c.ids.GitHubGroupID(ctx, group)
	if err == nil {
		c.seen[group] = id
	}
	return id, err
}

// BenchmarkQueuedCachedGroupID is BenchmarkQueued with the group ids read
// once (not safe for concurrent use: sequential only).
func BenchmarkQueuedCachedGroupID(b *testing.B) {
	rdb, hook, store, g := benchStore(b)
	cfg := &config.Config{
		Name: strings.Trim(store.Keys().Prefix(), "{}"),
		RunnerGroups: []config.RunnerGroup{{
			Name: "g", Organization: "org", MaxRunners: 1 << 30, Labels: []string{"self-hosted", "linux"},
			Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:dev"}},
		}},
	}
	builder := command.New(cfg, nil)
	cached := state.New(rdb, store.Keys(), state.Options{Commands: builder})
	builder.SetGroupIDs(&cachedGroupIDs{ids: cached, seen: map[string]int64{}})
	ctx := context.Background()
	now := time.Now()
	calls0, usec0 := hook.n.Load(), redisUsec(b, rdb)
	b.ResetTimer()
	for i := range b.N {
		out, err := cached.Queued(ctx, g, int64(i+1), now)
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Reserved) != 1 {
			b.Fatalf("job %d: %d runners reserved, want 1", i+1, len(out.Reserved))
		}
	}
	b.StopTimer()
	reportRedis(b, rdb, hook, calls0, usec0)
}
