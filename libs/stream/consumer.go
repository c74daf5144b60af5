package stream

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/runner-manager/runner-manager/libs/backoff"
)

// Handler handles one entry. Returning nil acknowledges it; an error leaves it
// pending, to be retried with backoff. ctx carries the entry's trace context.
//
// An entry may be delivered more than once (a consumer that died after acting
// and before acknowledging): handlers must be idempotent. ctx is cancelled when
// the consumer gives the entry up (shutdown deadline, or another consumer took it
// over because this one could not reach Redis); a handler should then return
// promptly, and its entry stays pending.
type Handler func(ctx context.Context, m Message) error

// Defaults of ConsumerConfig.
const (
	DefaultConcurrency     = 1
	DefaultMinIdle         = time.Minute
	DefaultMaxDeliveries   = 5
	DefaultMaxLen          = 100_000
	DefaultBlock           = 2 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// Errors given as the cause of a handler's cancelled context.
var (
	// ErrShutdown: the consumer stopped and its shutdown deadline passed.
	ErrShutdown = errors.New("stream: consumer shut down before the handler finished")
	// ErrClaimLost: the entry may be with another consumer now (this one could
	// not refresh its claim, or saw it taken over).
	ErrClaimLost = errors.New("stream: entry taken over by another consumer")
	// ErrHandlerPanic wraps the value of a handler's recovered panic.
	ErrHandlerPanic = errors.New("stream: handler panicked")
)

// ConsumerConfig configures a Consumer; zero fields take the defaults below.
type ConsumerConfig struct {
	Stream   string
	Group    string
	Consumer string // stable per replica: pod name or hostname (default ConsumerName(""): the host name)
	// Concurrency bounds the handlers running at once (default 1).
	Concurrency int
	// MinIdle before a dead consumer's entry is taken over with XAUTOCLAIM
	// (default 1m). A live consumer refreshes the idle time of the entries its
	// handlers are working on every MinIdle/4, so MinIdle need not exceed the
	// slowest handler: it bounds how long the entries of a crashed replica wait.
	MinIdle time.Duration
	// MaxDeliveries moves an entry to DLQ after that many deliveries (default 5).
	MaxDeliveries int64
	// DLQ stream; required.
	DLQ string
	// MaxLen trims the DLQ with MAXLEN ~ (default 100000).
	MaxLen int64
	// Block of XREADGROUP, short so that shutdown is prompt (default 2s).
	Block time.Duration
	// Backoff before a failed entry is tried again, by delivery count
	// (default DefaultBackoff). A failed entry is retried by this consumer; if
	// this consumer dies, by another one after MinIdle.
	Backoff func(deliveries int64) time.Duration
	// ShutdownTimeout waits for in-flight handlers on shutdown (default 30s).
	ShutdownTimeout time.Duration
	// OnDeadLetter, when set, is called before an entry goes to the DLQ (for
	// example to publish a failed result). An error keeps the entry pending.
	OnDeadLetter func(ctx context.Context, m Message, reason string) error
	Logger       *slog.Logger
	// Metrics, when set, records deliveries, durations, dead letters and the
	// group's pending entries and lag.
	Metrics *Metrics
}

// DefaultBackoff is exponential from 1s, doubling with each delivery, capped at 1m.
func DefaultBackoff(deliveries int64) time.Duration {
	return defaultBackoff.Delay(int(min(deliveries, math.MaxInt32)))
}

var defaultBackoff = backoff.Exponential{Base: time.Second, Max: time.Minute}

// ConsumerName is podName (service.Env.PodName, $POD_NAME), else the host
// name: stable across restarts of one replica, so that it finds its own
// pending entries again.
func ConsumerName(podName string) string {
	if podName != "" {
		return podName
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		return name
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "consumer-" + hex.EncodeToString(b)
}

func (cfg *ConsumerConfig) setDefaults() {
	cfg.Consumer = cmp.Or(cfg.Consumer, ConsumerName(""))
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.MinIdle = cmp.Or(cfg.MinIdle, DefaultMinIdle)
	cfg.MaxDeliveries = cmp.Or(cfg.MaxDeliveries, DefaultMaxDeliveries)
	cfg.MaxLen = cmp.Or(cfg.MaxLen, DefaultMaxLen)
	cfg.Block = cmp.Or(cfg.Block, DefaultBlock)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

func (cfg *ConsumerConfig) validate() error {
	var problems []string
	if cfg.Stream == "" {
		problems = append(problems, "stream is required")
	}
	if cfg.Group == "" {
		problems = append(problems, "group is required")
	}
	if cfg.DLQ == "" {
		problems = append(problems, "DLQ is required")
	}
	if cfg.Concurrency < 1 {
		problems = append(problems, "concurrency must be at least 1")
	}
	if cfg.MinIdle < 40*time.Millisecond {
		problems = append(problems, "min idle must be at least 40ms")
	}
	if cfg.MaxDeliveries < 1 {
		problems = append(problems, "max deliveries must be at least 1")
	}
	if cfg.MaxLen < 1 {
		problems = append(problems, "max len must be at least 1")
	}
	if cfg.Block < time.Millisecond {
		problems = append(problems, "block must be at least 1ms")
	}
	if cfg.ShutdownTimeout < 0 {
		problems = append(problems, "shutdown timeout must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("stream consumer of %q: %s", cfg.Stream, strings.Join(problems, "; "))
	}
	return nil
}

const (
	opTimeout       = 5 * time.Second       // bound of one Redis call or script
	retryScanPeriod = time.Second           // longest wait between two looks for retries due
	retryScanLimit  = 1000                  // own pending entries looked at per scan
	errDelayMax     = 5 * time.Second       // longest wait after a Redis error
	abandonGrace    = time.Second           // wait for cancelled handlers after the shutdown deadline
	groupInfoPeriod = 15 * time.Second      // refresh of the pending and lag gauges, stale consumer removal
	staleConsumer   = time.Hour             // idle time after which a consumer with no pending entry is removed
	reasonMaxLen    = 1024                  // longest DLQ reason kept
	maxClaimPeriod  = 30 * time.Second      // longest wait between two XAUTOCLAIM
	minBeatPeriod   = 10 * time.Millisecond // shortest heartbeat period
	pendingPage     = int64(100)            // XPENDING page size
	noBlock         = time.Duration(-1)     // XREADGROUP without BLOCK
	farFuture       = 100 * 365 * 24 * time.Hour
)

// Consumer reads one stream in one consumer group: its own pending entries
// first (after a restart, or after a failure whose backoff elapsed), then
// entries of dead consumers (XAUTOCLAIM after MinIdle), then new ones.
//
// Guarantees, for handlers that are idempotent:
//   - at-least-once: an entry is acknowledged only after its handler returned
//     nil (or it went to the DLQ); a crash, a failed acknowledgement or a
//     shutdown leaves it pending, to be delivered again;
//   - no two live consumers handle one entry at once: a claim (read, XCLAIM,
//     XAUTOCLAIM) is atomic, and the consumer refreshes the idle time of the
//     entries its handlers work on every MinIdle/4 (XCLAIM JUSTID, only if
//     still its own), so others take them over only after MinIdle without
//     news; if it cannot refresh for 3/4 of MinIdle, or sees an entry taken
//     over, it cancels that handler's context (cause ErrClaimLost);
//   - a failed entry is retried after Backoff(deliveries) counted from the
//     failure, without holding up other entries; after MaxDeliveries it goes to
//     the DLQ (OnDeadLetter first), XADD and XACK in one script;
//   - the group is created at the start of the stream ("0"), with MKSTREAM, at
//     start and again whenever Redis answers NOGROUP (it lost its data).
type Consumer struct {
	rdb    redis.UniversalClient
	cfg    ConsumerConfig
	h      Handler
	log    *slog.Logger
	tracer trace.Tracer
	sem    chan struct{}
	wg     sync.WaitGroup

	staleIdle time.Duration // see staleConsumer

	mu        sync.Mutex
	inflight  map[string]*delivery
	nextRetry time.Time // next look at own pending entries, from the last scan
	wake      time.Time // earliest retry due of a failure since the last scan
}

// delivery is one entry being handled.
type delivery struct {
	entry
	cancel context.CancelCauseFunc
	// claimed is the last time the entry's idle time was reset: when it was
	// read or claimed, then by each heartbeat.
	claimed time.Time
	// settling: the handler returned; the entry is being acknowledged, left
	// for a retry or dead-lettered, so the heartbeat leaves it alone.
	settling bool
}

// entry is an entry as read or claimed.
type entry struct {
	id         string
	values     map[string]any // nil: trimmed away while pending
	deliveries int64
	readAt     time.Time // before the command that delivered it was sent
}

// NewConsumer returns a consumer of cfg.Stream that calls h for each entry.
// Run it once.
func NewConsumer(rdb redis.UniversalClient, cfg ConsumerConfig, h Handler) *Consumer {
	cfg.setDefaults()
	return &Consumer{
		rdb:       rdb,
		cfg:       cfg,
		h:         h,
		log:       cfg.Logger.With("stream", cfg.Stream, "group", cfg.Group, "consumer", cfg.Consumer),
		tracer:    otel.Tracer("github.com/runner-manager/runner-manager/libs/stream"),
		sem:       make(chan struct{}, max(cfg.Concurrency, 1)),
		inflight:  make(map[string]*delivery),
		staleIdle: staleConsumer,
	}
}

// Run consumes until ctx is cancelled, then drains in-flight handlers: it
// waits for them up to ShutdownTimeout, acknowledges those that succeed, then
// cancels the others, whose entries stay pending. It returns nil after a
// shutdown, or an error for an invalid configuration. Redis errors are
// logged and retried, never returned.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.cfg.validate(); err != nil {
		return err
	}
	if c.h == nil {
		return fmt.Errorf("stream consumer of %q: handler is required", c.cfg.Stream)
	}
	// Handlers outlive ctx by up to ShutdownTimeout; the heartbeat keeps their
	// entries claimed meanwhile.
	base, cancelHandlers := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelHandlers(ErrShutdown)
	beatCtx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		c.heartbeat(beatCtx)
	}()
	infoDone := make(chan struct{})
	go func() {
		defer close(infoDone)
		c.housekeep(ctx)
	}()

	c.log.Info("consuming", "concurrency", c.cfg.Concurrency, "min_idle", c.cfg.MinIdle, "max_deliveries", c.cfg.MaxDeliveries)
	c.loop(ctx, base)
	c.drain(cancelHandlers)
	stopBeat()
	<-beatDone
	<-infoDone
	return nil
}

// Ready reports whether Redis answers and the consumer group exists.
func (c *Consumer) Ready(ctx context.Context) error {
	groups, err := c.rdb.XInfoGroups(ctx, c.cfg.Stream).Result()
	if err != nil {
		return fmt.Errorf("read consumer groups of %s: %w", c.cfg.Stream, err)
	}
	for _, g := range groups {
		if g.Name == c.cfg.Group {
			return nil
		}
	}
	return fmt.Errorf("consumer group %s of %s does not exist", c.cfg.Group, c.cfg.Stream)
}

// ensureGroup creates the consumer group, and the stream with it. A new group
// starts at the beginning of the stream, so that entries published before the
// first consumer started (or after Redis lost the group) are not skipped.
func (c *Consumer) ensureGroup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := c.rdb.XGroupCreateMkStream(ctx, c.cfg.Stream, c.cfg.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s of %s: %w", c.cfg.Group, c.cfg.Stream, err)
	}
	return nil
}

func isNoGroup(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOGROUP")
}

// fetchState is the loop's position in the XAUTOCLAIM scan.
type fetchState struct {
	claimStart string
	nextClaim  time.Time
}

func (c *Consumer) claimPeriod() time.Duration {
	return min(max(c.cfg.MinIdle/2, minBeatPeriod), maxClaimPeriod)
}

// loop reads and dispatches entries until ctx is cancelled.
func (c *Consumer) loop(ctx, base context.Context) {
	st := fetchState{claimStart: "0-0"}
	var errDelay time.Duration
	groupReady := false
	for ctx.Err() == nil {
		if !groupReady {
			if err := c.ensureGroup(ctx); err != nil {
				errDelay = c.pause(ctx, err, errDelay)
				continue
			}
			groupReady = true
			errDelay = 0
		}
		n := c.acquire(ctx)
		if n == 0 {
			return
		}
		entries, err := c.fetch(ctx, n, &st)
		c.release(n - len(entries))
		for _, e := range entries {
			c.dispatch(base, e)
		}
		switch {
		case err == nil:
			errDelay = 0
		case ctx.Err() != nil:
			return
		case isNoGroup(err):
			c.log.Warn("consumer group lost (Redis restarted without its data?); creating it again", "error", err)
			groupReady = false
			st = fetchState{claimStart: "0-0"}
		default:
			errDelay = c.pause(ctx, err, errDelay)
		}
	}
}

// pause logs a Redis error and waits before the next attempt, longer each
// time; it returns the next wait.
func (c *Consumer) pause(ctx context.Context, err error, d time.Duration) time.Duration {
	d = min(max(2*d, 100*time.Millisecond), errDelayMax)
	c.log.Warn("reading stream failed; retrying", "error", err, "retry_in", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return d
}

// acquire takes at least one handler slot, waiting for it, and as many more
// as are free. It returns 0 when ctx is done.
func (c *Consumer) acquire(ctx context.Context) int {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < cap(c.sem) {
		select {
		case c.sem <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func (c *Consumer) release(n int) {
	for range n {
		<-c.sem
	}
}

// fetch returns up to room entries: own entries due for a retry first, then
// entries taken over from dead consumers, then new entries.
func (c *Consumer) fetch(ctx context.Context, room int, st *fetchState) ([]entry, error) {
	var out []entry
	now := time.Now()
	if !now.Before(c.retryDue()) {
		es, err := c.claimOwn(ctx, room)
		out = append(out, es...)
		if err != nil {
			return out, err
		}
	}
	if len(out) < room && !now.Before(st.nextClaim) {
		es, next, err := c.autoClaim(ctx, st.claimStart, room-len(out))
		out = append(out, es...)
		if err != nil {
			return out, err
		}
		st.claimStart = next
		if next == "0-0" {
			st.nextClaim = now.Add(c.claimPeriod())
		} else {
			st.nextClaim = now // more to scan
		}
	}
	if len(out) >= room {
		return out, nil
	}
	block := noBlock
	if len(out) == 0 {
		wait := min(c.cfg.Block, time.Until(c.retryDue()), time.Until(st.nextClaim))
		if wait >= time.Millisecond {
			block = wait
		}
	}
	es, err := c.readNew(ctx, room-len(out), block)
	return append(out, es...), err
}

// retryDue is when to look at own pending entries again.
func (c *Consumer) retryDue() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake.Before(c.nextRetry) {
		return c.wake
	}
	return c.nextRetry
}

func (c *Consumer) readNew(ctx context.Context, count int, block time.Duration) ([]entry, error) {
	readAt := time.Now()
	res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    c.cfg.Group,
		Consumer: c.cfg.Consumer,
		Streams:  []string{c.cfg.Stream, ">"},
		Count:    int64(count),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read new entries of %s: %w", c.cfg.Stream, err)
	}
	var out []entry
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, entry{id: m.ID, values: m.Values, deliveries: 1, readAt: readAt})
		}
	}
	return out, nil
}

// claimOwn claims again up to room entries pending with this consumer whose
// backoff elapsed, and sets when to look again.
func (c *Consumer) claimOwn(ctx context.Context, room int) ([]entry, error) {
	now := time.Now()
	next := now.Add(retryScanPeriod)
	c.mu.Lock()
	c.wake = now.Add(farFuture)
	c.mu.Unlock()

	var args []any
	start := "-"
	for seen := 0; len(args)/2 < room && seen < retryScanLimit; {
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		ps, err := c.rdb.XPendingExt(rctx, &redis.XPendingExtArgs{
			Stream: c.cfg.Stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer,
			Start: start, End: "+", Count: pendingPage,
		}).Result()
		cancel()
		if err != nil {
			c.setNextRetry(now) // look again at once
			return nil, fmt.Errorf("list own pending entries of %s: %w", c.cfg.Stream, err)
		}
		for _, p := range ps {
			if c.isInflight(p.ID) {
				continue
			}
			wait := c.cfg.Backoff(p.RetryCount)
			if p.Idle >= wait {
				args = append(args, p.ID, wait.Milliseconds())
				if len(args)/2 >= room {
					break
				}
			} else if due := now.Add(wait - p.Idle); due.Before(next) {
				next = due
			}
		}
		seen += len(ps)
		if int64(len(ps)) < pendingPage {
			break
		}
		start = "(" + ps[len(ps)-1].ID
	}
	if len(args)/2 >= room {
		next = now // more may be due
	}
	c.setNextRetry(next)
	if len(args) == 0 {
		return nil, nil
	}
	readAt := time.Now()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	res, err := claimOwnScript.Run(rctx, c.rdb, []string{c.cfg.Stream}, append([]any{c.cfg.Group, c.cfg.Consumer}, args...)...).Slice()
	if err != nil {
		return nil, fmt.Errorf("claim own entries due for a retry of %s: %w", c.cfg.Stream, err)
	}
	return parseEntries(res, readAt)
}

func (c *Consumer) setNextRetry(t time.Time) {
	c.mu.Lock()
	c.nextRetry = t
	c.mu.Unlock()
}

// autoClaim takes over up to count entries idle for MinIdle from start on.
func (c *Consumer) autoClaim(ctx context.Context, start string, count int) ([]entry, string, error) {
	readAt := time.Now()
	// Not cancelled by ctx: a claim whose answer is lost would leave entries
	// pending with this consumer until its next start.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	res, err := autoClaimScript.Run(rctx, c.rdb, []string{c.cfg.Stream},
		c.cfg.Group, c.cfg.Consumer, c.cfg.MinIdle.Milliseconds(), start, count).Slice()
	if err != nil {
		return nil, "0-0", fmt.Errorf("claim entries of dead consumers of %s: %w", c.cfg.Stream, err)
	}
	if len(res) != 3 {
		return nil, "0-0", fmt.Errorf("claim entries of dead consumers of %s: unexpected reply %v", c.cfg.Stream, res)
	}
	next, _ := res[0].(string)
	list, _ := res[1].([]any)
	entries, err := parseEntries(list, readAt)
	if err != nil {
		return nil, "0-0", err
	}
	deleted, _ := res[2].([]any)
	for _, d := range deleted {
		if id, ok := d.(string); ok {
			// XAUTOCLAIM already dropped it from the pending list; the
			// handling of a nil entry acknowledges and counts it.
			entries = append(entries, entry{id: id, readAt: readAt})
		}
	}
	c.cfg.Metrics.observeClaimed(c.cfg.Stream, c.cfg.Group, len(entries))
	if len(entries) > 0 {
		c.log.Info("took over entries of a consumer idle for the min idle time", "count", len(entries))
	}
	return entries, cmp.Or(next, "0-0"), nil
}

// parseEntries reads the {id, fields|false, deliveries} replies of the scripts.
func parseEntries(list []any, readAt time.Time) ([]entry, error) {
	out := make([]entry, 0, len(list))
	for _, item := range list {
		t, ok := item.([]any)
		if !ok || len(t) != 3 {
			return nil, fmt.Errorf("unexpected entry in a script reply: %v", item)
		}
		id, _ := t[0].(string)
		n, _ := t[2].(int64)
		e := entry{id: id, deliveries: n, readAt: readAt}
		if fields, ok := t[1].([]any); ok {
			e.values = make(map[string]any, len(fields)/2)
			for i := 0; i+1 < len(fields); i += 2 {
				k, _ := fields[i].(string)
				e.values[k] = fields[i+1]
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func (c *Consumer) isInflight(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.inflight[id]
	return ok
}

// heartbeat refreshes the idle time of in-flight entries every MinIdle/4, so
// that no other consumer takes them over while their handlers run. A handler
// whose entry may have been taken over (lost, or not refreshed for 3/4 of
// MinIdle) has its context cancelled with ErrClaimLost.
func (c *Consumer) heartbeat(ctx context.Context) {
	period := max(c.cfg.MinIdle/4, minBeatPeriod)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		ids := make([]any, 0, len(c.inflight))
		for id, d := range c.inflight {
			if !d.settling {
				ids = append(ids, id)
			}
		}
		c.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, min(2*period, opTimeout))
		lost, err := heartbeatScript.Run(rctx, c.rdb, []string{c.cfg.Stream},
			append([]any{c.cfg.Group, c.cfg.Consumer}, ids...)...).StringSlice()
		cancel()
		if err != nil && ctx.Err() != nil {
			return
		}
		if isNoGroup(err) {
			// Redis lost the group: no other consumer can take these
			// entries over, so the handlers go on.
			err = nil
		}
		if err != nil {
			c.log.Warn("refreshing the claim of in-flight entries failed", "error", err, "entries", len(ids))
		}
		lostSet := make(map[string]bool, len(lost))
		for _, id := range lost {
			lostSet[id] = true
		}
		c.mu.Lock()
		for _, v := range ids {
			d, ok := c.inflight[v.(string)]
			if !ok || d.settling {
				continue
			}
			switch {
			case lostSet[d.id]:
				c.log.Warn("in-flight entry was taken over by another consumer; cancelling its handler", "id", d.id)
				d.cancel(ErrClaimLost)
			case err == nil:
				d.claimed = sent
			case time.Since(d.claimed) > c.cfg.MinIdle*3/4:
				c.log.Warn("claim of in-flight entry could not be refreshed in time; cancelling its handler", "id", d.id)
				d.cancel(ErrClaimLost)
			}
		}
		c.mu.Unlock()
	}
}

// housekeep updates the pending and lag gauges and removes stale consumers
// from the group, every groupInfoPeriod until ctx is done.
func (c *Consumer) housekeep(ctx context.Context) {
	t := time.NewTicker(groupInfoPeriod)
	defer t.Stop()
	for {
		c.reportGroupInfo(ctx)
		c.removeStaleConsumers(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Consumer) reportGroupInfo(ctx context.Context) {
	if c.cfg.Metrics == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	groups, err := c.rdb.XInfoGroups(rctx, c.cfg.Stream).Result()
	if err != nil {
		return
	}
	for _, g := range groups {
		if g.Name == c.cfg.Group {
			c.cfg.Metrics.setGroupInfo(c.cfg.Stream, c.cfg.Group, g.Pending, g.Lag)
		}
	}
}

// removeStaleConsumers deletes the consumers of the group idle for
// staleIdle with no pending entry: replicas gone for good (pods get new names
// on each rollout). The check of pending entries and the deletion happen in one
// script, so that no entry is dropped with its consumer.
func (c *Consumer) removeStaleConsumers(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	consumers, err := c.rdb.XInfoConsumers(rctx, c.cfg.Stream, c.cfg.Group).Result()
	if err != nil {
		return
	}
	for _, cons := range consumers {
		if cons.Name == c.cfg.Consumer || cons.Pending > 0 || cons.Idle < c.staleIdle {
			continue
		}
		n, err := deleteIdleConsumerScript.Run(rctx, c.rdb, []string{c.cfg.Stream}, c.cfg.Group, cons.Name).Int()
		if err != nil {
			c.log.Warn("removing a stale consumer failed", "stale_consumer", cons.Name, "error", err)
			return
		}
		if n == 1 {
			c.log.Info("removed a stale consumer from the group", "stale_consumer", cons.Name, "idle", cons.Idle)
		}
	}
}

// drain waits for in-flight handlers up to ShutdownTimeout, then cancels the
// rest and waits a little for them to return; their entries stay pending.
func (c *Consumer) drain(cancelHandlers context.CancelCauseFunc) {
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(c.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
		c.log.Info("consumer stopped")
		return
	case <-t.C:
	}
	c.mu.Lock()
	n := len(c.inflight)
	c.mu.Unlock()
	c.log.Warn("shutdown timeout: cancelling in-flight handlers; their entries stay pending", "entries", n)
	cancelHandlers(ErrShutdown)
	g := time.NewTimer(abandonGrace)
	defer g.Stop()
	select {
	case <-done:
	case <-g.C:
		c.log.Warn("handlers did not return after cancellation; leaving them", "entries", n)
	}
}
