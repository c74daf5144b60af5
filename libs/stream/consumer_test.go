package stream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

// bundle is what most tests need: a Redis client and fresh names.
type bundle struct {
	rdb    *redis.Client
	stream string
	group  string
	dlq    string
}

func setup(t *testing.T) bundle {
	t.Helper()
	return bundleFor(t, redistest.Client(t))
}

func bundleFor(t *testing.T, rdb *redis.Client) bundle {
	t.Helper()
	return bundle{
		rdb:    rdb,
		stream: redistest.NewName("{test}:stream"),
		group:  redistest.NewName("group"),
		dlq:    redistest.NewName("{test}:dlq"),
	}
}

// config returns a consumer config with short timings for tests.
func (b bundle) config(consumer string) stream.ConsumerConfig {
	return stream.ConsumerConfig{
		Stream:          b.stream,
		Group:           b.group,
		Consumer:        consumer,
		DLQ:             b.dlq,
		MinIdle:         500 * time.Millisecond,
		Block:           100 * time.Millisecond,
		Backoff:         func(int64) time.Duration { return 10 * time.Millisecond },
		ShutdownTimeout: 5 * time.Second,
		Logger:          quietLogger(),
	}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// publish adds n entries with data "<prefix>-<i>" and returns their ids.
func (b bundle) publish(t *testing.T, prefix string, n int) []string {
	t.Helper()
	ctx := context.Background()
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i := range n {
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: b.stream, Values: []any{
			stream.FieldType, "test",
			stream.FieldData, fmt.Sprintf("%s-%d", prefix, i),
			stream.FieldTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}})
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	ids := make([]string, n)
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids
}

func (b bundle) pending(t *testing.T) int64 {
	t.Helper()
	p, err := b.rdb.XPending(context.Background(), b.stream, b.group).Result()
	require.NoError(t, err)
	return p.Count
}

// running is a consumer running in the background.
type running struct {
	c      *stream.Consumer
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned
}

// stop cancels the consumer and waits for Run to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		require.NoError(t, r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not stop")
	}
}

func start(t *testing.T, rdb redis.UniversalClient, cfg stream.ConsumerConfig, h stream.Handler) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: stream.NewConsumer(rdb, cfg, h), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = r.c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// eventually polls cond every 10ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// handling is one call of a handler.
type handling struct {
	consumer   string
	id         string
	data       string
	deliveries int64
	at         time.Time
	err        error
}

// recorder records handler calls.
type recorder struct {
	mu    sync.Mutex
	calls []handling
}

func (r *recorder) add(h handling) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, h)
}

func (r *recorder) all() []handling {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]handling(nil), r.calls...)
}

// successes counts the successful handlings per entry id.
func (r *recorder) successes() map[string]int {
	out := map[string]int{}
	for _, h := range r.all() {
		if h.err == nil {
			out[h.id]++
		}
	}
	return out
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	tests := []struct {
		name string
		cfg  stream.ConsumerConfig
		want string
	}{
		{"no stream", stream.ConsumerConfig{Group: "g", DLQ: "d"}, "stream is required"},
		{"no group", stream.ConsumerConfig{Stream: "s", DLQ: "d"}, "group is required"},
		{"no dlq", stream.ConsumerConfig{Stream: "s", Group: "g"}, "DLQ is required"},
		{"negative concurrency", stream.ConsumerConfig{Stream: "s", Group: "g", DLQ: "d", Concurrency: -1}, "concurrency"},
		{"tiny min idle", stream.ConsumerConfig{Stream: "s", Group: "g", DLQ: "d", MinIdle: time.Millisecond}, "min idle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := stream.NewConsumer(rdb, tt.cfg, func(context.Context, stream.Message) error { return nil }).Run(context.Background())
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestDefaultBackoff(t *testing.T) {
	t.Parallel()
	for d, want := range map[int64]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second, 7: time.Minute, 100: time.Minute} {
		require.Equal(t, want, stream.DefaultBackoff(d), "deliveries %d", d)
	}
}

func TestConsumerName(t *testing.T) {
	t.Parallel()
	require.Equal(t, "scheduler-7d9f-abc", stream.ConsumerName("scheduler-7d9f-abc"))
	host, err := os.Hostname()
	require.NoError(t, err)
	require.Equal(t, host, stream.ConsumerName(""))
}

func TestReadyAndMessage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	noop := func(context.Context, stream.Message) error { return nil }
	require.Error(t, stream.NewConsumer(b.rdb, b.config("c1"), noop).Ready(ctx), "group does not exist yet")

	got := make(chan stream.Message, 1)
	var traceparent atomic.Value
	r := start(t, b.rdb, b.config("c1"), func(ctx context.Context, m stream.Message) error {
		traceparent.Store(stream.Traceparent(ctx))
		got <- m
		return nil
	})
	eventually(t, 10*time.Second, func() bool { return r.c.Ready(ctx) == nil }, "consumer never ready")

	ids := b.publish(t, "hello", 1)
	m := <-got
	require.Equal(t, stream.Message{
		Stream: b.stream, ID: ids[0], Type: "test", Data: []byte("hello-0"),
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Deliveries: 1,
	}, m)
	// The handler's context continues the entry's trace.
	require.Contains(t, traceparent.Load(), "4bf92f3577b34da6a3ce929d0e0e4736")
	eventually(t, 10*time.Second, func() bool { return b.pending(t) == 0 }, "entry never acknowledged")
}

// A consumer that dies while handling an entry: another replica handles it,
// but only after MinIdle without news of the first one, never while the first
// one is alive (even when its handler runs much longer than MinIdle).
func TestTakeoverOnlyAfterMinIdle(t *testing.T) {
	t.Parallel()
	t.Run("live consumer with a long handler, then killed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := &recorder{}
		first := make(chan string, 2)
		var once sync.Once
		handler := func(name string) stream.Handler {
			return func(ctx context.Context, m stream.Message) error {
				h := handling{consumer: name, id: m.ID, deliveries: m.Deliveries, at: time.Now()}
				isFirst := false
				once.Do(func() { isFirst = true })
				if isFirst {
					first <- name
					<-ctx.Done() // dies holding it
					h.err = context.Cause(ctx)
					rec.add(h)
					return h.err
				}
				rec.add(h)
				return nil
			}
		}
		cfgA, cfgB := b.config("a"), b.config("b")
		cfgA.ShutdownTimeout, cfgB.ShutdownTimeout = 10*time.Millisecond, 10*time.Millisecond
		rs := map[string]*running{
			"a": start(t, b.rdb, cfgA, handler("a")),
			"b": start(t, b.rdb, cfgB, handler("b")),
		}
		ids := b.publish(t, "job", 1)
		holder := <-first
		// The holder keeps it for 4 x MinIdle: the other must not take it.
		time.Sleep(4 * cfgA.MinIdle)
		killed := time.Now()
		rs[holder].stop(t)

		eventually(t, 20*time.Second, func() bool { return len(rec.successes()) == 1 }, "entry never taken over")
		calls := rec.all()
		require.Len(t, calls, 2, "handled once by each consumer: %+v", calls)
		require.Equal(t, holder, calls[0].consumer)
		taker := calls[1]
		require.NotEqual(t, holder, taker.consumer)
		require.Equal(t, ids[0], taker.id)
		require.Equal(t, int64(2), taker.deliveries)
		require.True(t, taker.at.After(killed), "taken over at %s, while the holder was alive (killed at %s)", taker.at, killed)
		require.GreaterOrEqual(t, taker.at.Sub(calls[0].at), cfgA.MinIdle)
		eventually(t, 10*time.Second, func() bool { return b.pending(t) == 0 }, "entry never acknowledged")
	})
	t.Run("consumer killed right after reading", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		require.NoError(t, b.rdb.XGroupCreateMkStream(ctx, b.stream, b.group, "0").Err())
		ids := b.publish(t, "job", 1)
		readAt := time.Now()
		res, err := b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: b.group, Consumer: "dead", Streams: []string{b.stream, ">"}, Count: 1, Block: -1}).Result()
		require.NoError(t, err)
		require.Len(t, res[0].Messages, 1)

		rec := &recorder{}
		start(t, b.rdb, b.config("alive"), func(ctx context.Context, m stream.Message) error {
			rec.add(handling{consumer: "alive", id: m.ID, deliveries: m.Deliveries, at: time.Now()})
			return nil
		})
		eventually(t, 20*time.Second, func() bool { return len(rec.all()) > 0 }, "entry never taken over")
		eventually(t, 10*time.Second, func() bool { return b.pending(t) == 0 }, "entry never acknowledged")
		calls := rec.all()
		require.Len(t, calls, 1)
		require.Equal(t, ids[0], calls[0].id)
		require.Equal(t, int64(2), calls[0].deliveries)
		require.GreaterOrEqual(t, calls[0].at.Sub(readAt), 500*time.Millisecond, "taken over before MinIdle")
	})
}

func TestPoisonEntryGoesToDLQ(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		failCallbacks int    // OnDeadLetter fails that many times first
		wantCallbacks int    // OnDeadLetter calls
		wantDelivered int64  // deliveries field of the dead letter
		wantReason    string // in the reason field
	}{
		{name: "after max deliveries", wantCallbacks: 1, wantDelivered: 3, wantReason: "boom at delivery 3"},
		{name: "callback fails once: stays pending, then dead-lettered", failCallbacks: 1, wantCallbacks: 2, wantDelivered: 4, wantReason: "delivered 4 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			reg := prometheus.NewRegistry()
			metrics := stream.NewMetrics(reg)
			var handled, callbacks atomic.Int64
			cfg := b.config("c1")
			cfg.MaxDeliveries = 3
			cfg.MaxLen = 1000
			cfg.Metrics = metrics
			cfg.OnDeadLetter = func(ctx context.Context, m stream.Message, reason string) error {
				if callbacks.Add(1) <= int64(tt.failCallbacks) {
					return errors.New("results stream unavailable")
				}
				return nil
			}
			start(t, b.rdb, cfg, func(ctx context.Context, m stream.Message) error {
				handled.Add(1)
				return fmt.Errorf("boom at delivery %d", m.Deliveries)
			})
			ids := b.publish(t, "poison", 1)

			var dl []stream.DeadLetter
			eventually(t, 20*time.Second, func() bool {
				var err error
				dl, err = stream.ListDLQ(context.Background(), b.rdb, b.dlq, 10)
				require.NoError(t, err)
				return len(dl) > 0
			}, "entry never dead-lettered")
			require.Len(t, dl, 1)
			d := dl[0]
			require.Equal(t, b.stream, d.OriginStream)
			require.Equal(t, ids[0], d.OriginID)
			require.Equal(t, "test", d.Type)
			require.Equal(t, []byte("poison-0"), d.Data)
			require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", d.Traceparent)
			require.Contains(t, d.Reason, tt.wantReason)
			require.Equal(t, tt.wantDelivered, d.Deliveries)
			require.Equal(t, b.group, d.Group)
			require.Equal(t, "c1", d.Consumer)
			require.WithinDuration(t, time.Now(), d.Time, time.Minute)
			require.Equal(t, int64(0), b.pending(t), "dead letter still pending")
			require.Equal(t, int64(3), handled.Load(), "handler calls")
			require.Equal(t, int64(tt.wantCallbacks), callbacks.Load(), "OnDeadLetter calls")
			// Counted after the move to the DLQ: wait for it.
			eventually(t, 20*time.Second, func() bool {
				return counterSum(t, reg, "runner_manager_stream_dead_lettered_total") == 1
			}, "dead-lettered counter")
		})
	}
}

// metricVec returns the only series of a metric family as a collector for
// testutil.ToFloat64.
func metricVec(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			require.Len(t, mf.GetMetric(), 1, name)
			v := mf.GetMetric()[0].GetCounter().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func TestFailingEntryDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := &recorder{}
	cfg := b.config("c1")
	cfg.MaxDeliveries = 1000
	cfg.Backoff = func(int64) time.Duration { return 200 * time.Millisecond }
	poison := b.publish(t, "poison", 1)[0]
	start(t, b.rdb, cfg, func(ctx context.Context, m stream.Message) error {
		h := handling{id: m.ID, deliveries: m.Deliveries, at: time.Now()}
		if m.ID == poison {
			h.err = errors.New("always fails")
		}
		rec.add(h)
		return h.err
	})
	good := b.publish(t, "good", 20)
	eventually(t, 20*time.Second, func() bool {
		s := rec.successes()
		for _, id := range good {
			if s[id] != 1 {
				return false
			}
		}
		return true
	}, "good entries not all handled")
	// And the failing one is retried meanwhile.
	eventually(t, 20*time.Second, func() bool {
		n := 0
		for _, h := range rec.all() {
			if h.id == poison {
				n++
			}
		}
		return n >= 2
	}, "failing entry not retried")
}

func TestTwoReplicasHandleEachEntryOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 10_000
	ids := b.publish(t, "job", n)
	reg := prometheus.NewRegistry()
	metrics := stream.NewMetrics(reg)

	var mu sync.Mutex
	counts := make(map[string]int, n)
	perConsumer := map[string]int{}
	for _, name := range []string{"replica-1", "replica-2"} {
		cfg := b.config(name)
		cfg.Concurrency = 8
		cfg.Metrics = metrics
		start(t, b.rdb, cfg, func(ctx context.Context, m stream.Message) error {
			mu.Lock()
			counts[m.ID]++
			perConsumer[name]++
			mu.Unlock()
			return nil
		})
	}
	eventually(t, 2*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(counts) == n
	}, "not all entries handled")
	eventually(t, 30*time.Second, func() bool { return b.pending(t) == 0 }, "entries left pending")

	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		require.Equal(t, 1, counts[id], "entry %s handled %d times", id, counts[id])
	}
	require.Equal(t, n, perConsumer["replica-1"]+perConsumer["replica-2"])
	t.Logf("per consumer: %v", perConsumer)
	// Counted after the acknowledgement: wait for it.
	eventually(t, 20*time.Second, func() bool {
		return counterSum(t, reg, "runner_manager_stream_handled_total") == float64(n)
	}, "handled counter")
	require.Equal(t, float64(n), testutil.ToFloat64(metricVec(t, reg, "runner_manager_stream_handled_total")), "outcomes other than ok")
}

func TestShutdownLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := &recorder{}
	release := make(chan struct{})
	started := make(chan string, 10)
	// Entries 0-1 never finish in the first consumer; 2-3 finish once
	// released, within the shutdown timeout; 4-5 are not read before shutdown
	// (4 handler slots).
	ids := b.publish(t, "job", 6)
	kind := map[string]string{ids[0]: "stuck", ids[1]: "stuck", ids[2]: "finishing", ids[3]: "finishing", ids[4]: "unread", ids[5]: "unread"}

	cfg := b.config("replica-1")
	cfg.Concurrency = 4
	cfg.ShutdownTimeout = 500 * time.Millisecond
	first := start(t, b.rdb, cfg, func(ctx context.Context, m stream.Message) error {
		started <- m.ID
		h := handling{consumer: "first", id: m.ID, deliveries: m.Deliveries}
		switch kind[m.ID] {
		case "stuck":
			<-ctx.Done()
			h.err = context.Cause(ctx)
		case "finishing":
			<-release
		default:
			h.err = errors.New("read after shutdown began")
		}
		h.at = time.Now()
		rec.add(h)
		return h.err
	})
	for range 4 {
		<-started
	}
	first.cancel()
	close(release)
	first.stop(t)

	calls := rec.all()
	require.Len(t, calls, 4, "%+v", calls)
	for _, h := range calls {
		if kind[h.id] == "finishing" {
			require.NoError(t, h.err)
		} else {
			require.ErrorIs(t, h.err, stream.ErrShutdown)
		}
	}
	ps, err := b.rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: b.stream, Group: b.group, Start: "-", End: "+", Count: 10}).Result()
	require.NoError(t, err)
	var pendingIDs []string
	for _, p := range ps {
		pendingIDs = append(pendingIDs, p.ID)
	}
	require.ElementsMatch(t, []string{ids[0], ids[1]}, pendingIDs, "stuck entries pending, finished ones acknowledged")

	// The replica restarts: its own pending entries first, then the rest.
	start(t, b.rdb, cfg, func(ctx context.Context, m stream.Message) error {
		rec.add(handling{consumer: "second", id: m.ID, deliveries: m.Deliveries, at: time.Now()})
		return nil
	})
	eventually(t, 20*time.Second, func() bool { return len(rec.successes()) == 6 }, "not all entries handled after restart")
	eventually(t, 10*time.Second, func() bool { return b.pending(t) == 0 }, "entries left pending")
	for id, n := range rec.successes() {
		require.Equal(t, 1, n, "entry %s (%s) handled successfully %d times", id, kind[id], n)
	}
	for _, h := range rec.all() {
		if h.consumer == "second" {
			require.NotEqual(t, "finishing", kind[h.id], "acknowledged entry handled again")
		}
	}
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	cfg := b.config("c1")
	cfg.Metrics = stream.NewMetrics(reg)
	var calls atomic.Int64
	r := start(t, b.rdb, cfg, func(ctx context.Context, m stream.Message) error {
		if calls.Add(1) == 1 {
			panic("nil map somewhere")
		}
		return nil
	})
	b.publish(t, "job", 1)
	eventually(t, 20*time.Second, func() bool { return calls.Load() == 2 && b.pending(t) == 0 }, "entry not retried after the panic")
	select {
	case <-r.done:
		t.Fatalf("Run returned after a panic: %v", r.err)
	default:
	}
	// The outcome is counted after the acknowledgement: wait for it rather
	// than read it the moment the entry is no longer pending.
	want := map[string]float64{stream.OutcomePanic: 1, stream.OutcomeOK: 1}
	eventually(t, 20*time.Second, func() bool { return maps.Equal(handledOutcomes(t, reg), want) }, "outcome counters")
	require.Equal(t, want, handledOutcomes(t, reg))
}

// counterSum adds up the series of a counter family, 0 when it has none yet.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// handledOutcomes reads runner_manager_stream_handled_total by outcome.
func handledOutcomes(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	outcomes := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "runner_manager_stream_handled_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" {
						outcomes[l.GetValue()] = m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return outcomes
}

// An entry trimmed away while pending is acknowledged and skipped, whether
// its own consumer finds it after a restart or another one takes it over.
func TestTrimmedPendingEntryIsSkipped(t *testing.T) {
	t.Parallel()
	for _, consumer := range []string{"dead", "other"} {
		t.Run("found by "+consumer, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			require.NoError(t, b.rdb.XGroupCreateMkStream(ctx, b.stream, b.group, "0").Err())
			ids := b.publish(t, "job", 2)
			_, err := b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: b.group, Consumer: "dead", Streams: []string{b.stream, ">"}, Count: 2, Block: -1}).Result()
			require.NoError(t, err)
			require.NoError(t, b.rdb.XDel(ctx, b.stream, ids[0]).Err())

			rec := &recorder{}
			start(t, b.rdb, b.config(consumer), func(ctx context.Context, m stream.Message) error {
				rec.add(handling{id: m.ID, data: string(m.Data)})
				return nil
			})
			eventually(t, 20*time.Second, func() bool { return len(rec.all()) == 1 && b.pending(t) == 0 }, "pending entries not settled")
			require.Equal(t, []handling{{id: ids[1], data: "job-1"}}, rec.all())
		})
	}
}

func TestGroupRecreatedAfterRedisRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	opt, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	b := bundleFor(t, rdb)

	rec := &recorder{}
	r := start(t, rdb, b.config("c1"), func(ctx context.Context, m stream.Message) error {
		rec.add(handling{id: m.ID, data: string(m.Data)})
		return nil
	})
	b.publish(t, "before", 1)
	eventually(t, 10*time.Second, func() bool { return len(rec.all()) == 1 }, "entry not handled")

	srv.Restart() // without persistence: stream and group are gone
	eventually(t, 20*time.Second, func() bool { return r.c.Ready(context.Background()) == nil }, "group not recreated")
	b.publish(t, "after", 1)
	eventually(t, 20*time.Second, func() bool { return len(rec.all()) == 2 }, "entry not handled after the restart")
	require.Equal(t, "after-0", rec.all()[1].data)
	eventually(t, 10*time.Second, func() bool { return b.pending(t) == 0 }, "entry not acknowledged")
}

func TestDLQRetryRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var failing atomic.Bool
	failing.Store(true)
	rec := &recorder{}
	cfg := b.config("c1")
	cfg.MaxDeliveries = 1
	start(t, b.rdb, cfg, func(ctx context.Context, m stream.Message) error {
		h := handling{id: m.ID, data: string(m.Data), deliveries: m.Deliveries}
		if failing.Load() {
			h.err = errors.New("backend down")
		}
		rec.add(h)
		return h.err
	})
	ids := b.publish(t, "job", 1)
	var dl []stream.DeadLetter
	eventually(t, 20*time.Second, func() bool {
		var err error
		dl, err = stream.ListDLQ(ctx, b.rdb, b.dlq, 10)
		require.NoError(t, err)
		return len(dl) == 1
	}, "entry never dead-lettered")
	require.Equal(t, ids[0], dl[0].OriginID)
	require.Equal(t, "backend down", dl[0].Reason)

	failing.Store(false)
	require.NoError(t, stream.RetryDLQ(ctx, b.rdb, b.dlq, dl[0].ID, stream.WithMaxLen(1000)))
	eventually(t, 20*time.Second, func() bool { return len(rec.successes()) == 1 }, "retried entry not handled")
	calls := rec.all()
	last := calls[len(calls)-1]
	require.NotEqual(t, ids[0], last.id, "a new entry")
	require.Equal(t, "job-0", last.data)
	require.Equal(t, int64(1), last.deliveries)

	left, err := stream.ListDLQ(ctx, b.rdb, b.dlq, 10)
	require.NoError(t, err)
	require.Empty(t, left)
	require.ErrorIs(t, stream.RetryDLQ(ctx, b.rdb, b.dlq, dl[0].ID), stream.ErrNotFound)
	eventually(t, 10*time.Second, func() bool { return b.pending(t) == 0 }, "entry not acknowledged")
}

func TestMetricsRegisterTwice(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	require.NotPanics(t, func() {
		stream.NewMetrics(reg)
		stream.NewMetrics(reg)
	})
}

// A handler whose entry was taken over (here: claimed by hand, as an
// XAUTOCLAIM of a replica that thought this one dead would) is cancelled.
func TestLostClaimCancelsHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	started := make(chan string, 1)
	cause := make(chan error, 1)
	start(t, b.rdb, b.config("c1"), func(ctx context.Context, m stream.Message) error {
		started <- m.ID
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	})
	b.publish(t, "job", 1)
	id := <-started
	require.NoError(t, b.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: b.stream, Group: b.group, Consumer: "thief", Messages: []string{id}}).Err())
	select {
	case err := <-cause:
		require.ErrorIs(t, err, stream.ErrClaimLost)
	case <-time.After(20 * time.Second):
		t.Fatal("handler not cancelled after its entry was taken over")
	}
}

// A consumer that cannot reach Redis cancels its handlers before their
// entries could be taken over by another replica.
func TestRedisUnreachableCancelsHandlers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	opt, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	b := bundleFor(t, rdb)
	started := make(chan struct{}, 1)
	cause := make(chan error, 1)
	start(t, rdb, b.config("c1"), func(ctx context.Context, m stream.Message) error {
		started <- struct{}{}
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	})
	b.publish(t, "job", 1)
	<-started
	srv.Stop()
	select {
	case err := <-cause:
		require.ErrorIs(t, err, stream.ErrClaimLost)
	case <-time.After(20 * time.Second):
		t.Fatal("handler not cancelled while Redis was unreachable")
	}
}
