// Package lease is a leader lease in Redis: one key with a TTL, held by one
// owner at a time, so that one replica at a time does periodic work (health
// checks). A holder that dies loses it within one TTL.
//
// A lease is advisory: a holder paused longer than the TTL (GC, a frozen VM)
// may still believe it holds it. Run cancels the work's context when the TTL
// may have passed without a renewal, and the work itself must be safe to run
// twice (every step of runner-manager is).
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLost is the cause of the context given to Run's fn when the lease is lost.
var ErrLost = errors.New("lease: lost")

// acquireScript takes the lease if it is free, or extends it if owner holds it.
//
// KEYS[1] lease key
// ARGV[1] owner, ARGV[2] TTL in ms
// Returns 1 when owner holds the lease for the TTL from now, 0 otherwise.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if cur then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseScript deletes the lease if owner holds it.
//
// KEYS[1] lease key
// ARGV[1] owner
// Returns 1 when it was deleted.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Lease is one owner's handle on a lease key.
type Lease struct {
	rdb   redis.UniversalClient
	key   string
	owner string
	ttl   time.Duration
	// Logger logs Run's renewal errors and fn's errors (default slog.Default()).
	Logger *slog.Logger
}

// New returns owner's handle on the lease key, held for ttl after each
// acquisition or renewal. owner must be unique per process (for example the
// pod name).
func New(rdb redis.UniversalClient, key, owner string, ttl time.Duration) *Lease {
	return &Lease{rdb: rdb, key: key, owner: owner, ttl: ttl}
}

// Key is the lease's Redis key.
func (l *Lease) Key() string { return l.key }

// TryAcquire takes the lease if it is free, or extends it by the TTL if this
// owner holds it; it reports whether this owner holds it now.
func (l *Lease) TryAcquire(ctx context.Context) (bool, error) {
	n, err := acquireScript.Run(ctx, l.rdb, []string{l.key}, l.owner, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", l.key, err)
	}
	return n == 1, nil
}

// Release gives the lease up if this owner holds it, so another can take it
// at once.
func (l *Lease) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.owner).Err(); err != nil {
		return fmt.Errorf("release lease %s: %w", l.key, err)
	}
	return nil
}

// Run tries to acquire the lease every ttl/3 until ctx is cancelled, then
// releases it. While it holds it, it calls fn at once and then every interval,
// with a context cancelled (cause ErrLost) as soon as the lease is lost or
// may have expired without a renewal. fn's errors are logged. Run returns when
// ctx is cancelled and fn returned.
func (l *Lease) Run(ctx context.Context, interval time.Duration, fn func(ctx context.Context) error) error {
	if l.ttl < 3*time.Millisecond || interval <= 0 {
		return fmt.Errorf("lease %s: TTL (%s) must be at least 3ms and interval (%s) positive", l.key, l.ttl, interval)
	}
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("lease", l.key, "owner", l.owner)
	renew := l.ttl / 3
	t := time.NewTicker(renew)
	defer t.Stop()

	var h *holding
	stop := func(cause error) {
		if h != nil {
			h.stop(cause)
			h = nil
		}
	}
	defer func() {
		stop(context.Canceled)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second+renew)
		defer cancel()
		if err := l.Release(rctx); err != nil {
			log.Warn("releasing lease failed; it expires by itself", "error", err)
		}
	}()
	for {
		sent := time.Now()
		actx, cancel := context.WithTimeout(ctx, renew)
		held, err := l.TryAcquire(actx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			// Keep working until the TTL may have run out; the holding's
			// deadline cancels it then.
			log.Warn("renewing lease failed", "error", err)
		case held:
			if h != nil && h.ctx.Err() != nil {
				stop(ErrLost) // its validity ran out before this renewal
			}
			if h == nil {
				log.Info("lease acquired")
				h = l.start(ctx, log, interval, fn)
			}
			h.extend(sent.Add(l.ttl))
		case h != nil:
			log.Warn("lease lost to another owner")
			stop(ErrLost)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// holding is the time this owner holds the lease: fn runs every interval with
// ctx, which ends when the lease is lost or its validity runs out.
type holding struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	expiry *time.Timer
	done   chan struct{}
}

func (l *Lease) start(parent context.Context, log *slog.Logger, interval time.Duration, fn func(context.Context) error) *holding {
	ctx, cancel := context.WithCancelCause(parent)
	h := &holding{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	h.expiry = time.AfterFunc(l.ttl, func() { cancel(ErrLost) })
	go func() {
		defer close(h.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				log.Error("work under lease failed", "error", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// extend moves the end of the holding to until (a renewal sent before until-TTL).
func (h *holding) extend(until time.Time) {
	h.expiry.Reset(time.Until(until))
}

func (h *holding) stop(cause error) {
	h.expiry.Stop()
	h.cancel(cause)
	<-h.done
}
