// Package recovery asks GitHub to redeliver the workflow_job webhooks that
// the ingress never accepted.
//
// GitHub does not retry a failed webhook delivery by itself: a job whose
// "queued" delivery hit a down ingress waits forever for a runner. A pass
// lists the webhook's recent deliveries (newest first, page by page, back to
// the checkpoint of the previous pass and never more than MaxAge), groups them
// by delivery GUID (a redelivery keeps the GUID), and asks for one
// redelivery of every workflow_job GUID that no attempt delivered (no 2xx).
//
// Bounds, so that recovery never competes with the calls that start runners:
//   - every call has the GitHub client's low priority (it leaves the API
//     reserve to the others);
//   - at most MaxPerPass redeliveries per pass: "queued" deliveries first
//     (a job waits for a runner), oldest first;
//   - at most MaxAttempts redeliveries per GUID, then it is given up;
//   - a redelivery in flight (requested, not yet seen in the listing) is not
//     asked for again until InFlightTimeout.
//
// State in Redis: the checkpoint ({P}:recovery:checkpoint, a hash) and one
// hash per redelivered GUID ({P}:recovery:guid:<guid>, TTL MaxAge). The
// checkpoint never passes a GUID that is still unsettled (deferred by the
// per-pass bound, or redelivered and not yet seen again), so a redelivery
// whose outcome is not known yet is looked at again by the next pass.
//
// A pass may run twice at once (a lease is advisory): the worst outcome is a
// duplicate redelivery, which the ingress' replay guard drops.
package recovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/lease"
)

// Defaults of Options.
const (
	// DefaultInterval between passes: a missed "queued" webhook leaves a job
	// waiting up to this long more. A pass with nothing new costs one call.
	DefaultInterval = 2 * time.Minute
	// DefaultMaxAge is how far back a pass looks: GitHub redelivers
	// deliveries of the last 3 days only.
	DefaultMaxAge = 72 * time.Hour
	// DefaultMaxPerPass bounds the redeliveries asked for in one pass
	// (RedeliveriesPerMinute at DefaultInterval).
	DefaultMaxPerPass = 100
	// RedeliveriesPerMinute is the pace MaxPerPassFor keeps, below GitHub's
	// secondary limit of 80 content-creating requests a minute.
	RedeliveriesPerMinute = 50
	// DefaultMaxAttempts bounds the redeliveries asked for one GUID.
	DefaultMaxAttempts = 3
	// DefaultInFlightTimeout is how long a requested redelivery may take to
	// appear in the listing before it is asked for again.
	DefaultInFlightTimeout = 10 * time.Minute
	// DefaultPerPage is the page size of the listing.
	DefaultPerPage = 100
	// DefaultCallTimeout bounds each GitHub and Redis call.
	DefaultCallTimeout = 2 * time.Minute
	// LeaseTask names the lease of the recovery (keys.Lease(LeaseTask)).
	LeaseTask = "recovery"
)

// MaxPerPassFor is the MaxPerPass that keeps the redeliveries at
// RedeliveriesPerMinute when a pass runs every interval (at least 1).
func MaxPerPassFor(interval time.Duration) int {
	return max(1, int(RedeliveriesPerMinute*interval/time.Minute))
}

// EventWorkflowJob is the only event recovered.
const EventWorkflowJob = "workflow_job"

// Delivery is one delivery attempt of a webhook, as GitHub lists them.
type Delivery struct {
	// ID of this attempt; a redelivery is a new attempt with a new, larger ID.
	ID int64
	// GUID is X-GitHub-Delivery, shared by a delivery and its redeliveries.
	GUID        string
	DeliveredAt time.Time
	Redelivery  bool
	// StatusCode is the receiver's HTTP status (0: no answer).
	StatusCode int
	Event      string
	Action     string
}

// Succeeded tells whether the receiver accepted this attempt (2xx).
func (d Delivery) Succeeded() bool { return d.StatusCode >= 200 && d.StatusCode <= 299 }

// Source is the part of GitHub a pass needs: the deliveries of one webhook
// (the App's or an organization's) and redelivery.
type Source interface {
	// ListDeliveries returns one page of deliveries, newest first, and the
	// cursor of the next page ("" on the last). "" asks for the first page.
	ListDeliveries(ctx context.Context, cursor string, perPage int) ([]Delivery, string, error)
	// Redeliver asks GitHub to deliver the delivery id again.
	Redeliver(ctx context.Context, id int64) error
}

// Hook is one webhook a pass looks at. Name tells the hooks apart in their
// checkpoints: "" is the App's webhook (or the only one), an organization
// webhook is "org:<organization>:<hook id>".
type Hook struct {
	Name   string
	Source Source
}

// Options configure a Recovery. Redis, Keys and Source or Hooks are
// required.
type Options struct {
	Redis redis.UniversalClient
	Keys  keys.Keys
	// Source is the one webhook of the pass; Hooks lists several (a pass
	// looks at each in turn, each with its checkpoint; MaxPerPass bounds
	// their redeliveries together).
	Source Source
	Hooks  []Hook
	// MaxAge, MaxPerPass, MaxAttempts, InFlightTimeout, PerPage and
	// CallTimeout default to the Default constants.
	MaxAge          time.Duration
	MaxPerPass      int
	MaxAttempts     int
	InFlightTimeout time.Duration
	PerPage         int
	CallTimeout     time.Duration
	// Owner of the lease Run takes (unique per process, e.g. the pod name)
	// and its TTL (default 30 s). Only Run needs them.
	Owner    string
	LeaseTTL time.Duration
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Report sums up one pass.
type Report struct {
	// Pages and Deliveries listed.
	Pages      int
	Deliveries int
	// Failed is the number of workflow_job GUIDs listed that no attempt
	// delivered.
	Failed int
	// Redelivered GUIDs (a redelivery asked for in this pass).
	Redelivered []string
	// InFlight GUIDs whose redelivery was asked for by an earlier pass and
	// has not shown up yet.
	InFlight int
	// Deferred GUIDs left for the next pass by MaxPerPass.
	Deferred int
	// GivenUp GUIDs that reached MaxAttempts.
	GivenUp int
	// Errors of redelivery requests (the pass goes on after one).
	Errors int
	// Checkpoint after the pass.
	Checkpoint Checkpoint
}

// Checkpoint is where a pass stops listing: the next pass lists back to
// deliveries newer than ID.
type Checkpoint struct {
	// ID: deliveries with an ID at most this one were settled.
	ID int64
	// Newest delivery ID ever listed (deliveries are counted once).
	Newest int64
	// At is when the checkpoint was written.
	At time.Time
}

// Recovery runs passes of missed-webhook recovery.
type Recovery struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
}

// New returns a Recovery; it panics if Redis is nil or there is no webhook
// (a programming error).
func New(opts Options) *Recovery {
	if opts.Source != nil {
		opts.Hooks = append([]Hook{{Source: opts.Source}}, opts.Hooks...)
	}
	if opts.Redis == nil || len(opts.Hooks) == 0 {
		panic("recovery.New: Redis and Source (or Hooks) are required")
	}
	opts.MaxAge = cmp.Or(opts.MaxAge, DefaultMaxAge)
	opts.MaxPerPass = cmp.Or(opts.MaxPerPass, DefaultMaxPerPass)
	opts.MaxAttempts = cmp.Or(opts.MaxAttempts, DefaultMaxAttempts)
	opts.InFlightTimeout = cmp.Or(opts.InFlightTimeout, DefaultInFlightTimeout)
	opts.PerPage = cmp.Or(opts.PerPage, DefaultPerPage)
	opts.CallTimeout = cmp.Or(opts.CallTimeout, DefaultCallTimeout)
	opts.LeaseTTL = cmp.Or(opts.LeaseTTL, 30*time.Second)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Recovery{opts: opts, log: log.With("task", LeaseTask), now: now, metrics: newMetrics(opts.Registerer)}
}

// Run runs a pass at once and then every interval, under the lease
// keys.Lease(LeaseTask) so that one replica at a time does, until ctx is
// cancelled (interval <= 0: DefaultInterval). Errors of a pass are logged;
// Run returns nil when ctx is done.
func (r *Recovery) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if r.opts.Owner == "" {
		return errors.New("recovery: Run needs Options.Owner (the lease owner)")
	}
	l := lease.New(r.opts.Redis, r.opts.Keys.Lease(LeaseTask), r.opts.Owner, r.opts.LeaseTTL)
	l.Logger = r.log
	return l.Run(ctx, interval, func(ctx context.Context) error {
		rep, err := r.RunOnce(ctx)
		if err != nil {
			return err
		}
		if rep.Failed > 0 || len(rep.Redelivered) > 0 {
			r.log.Info("missed-webhook recovery pass", "deliveries", rep.Deliveries, "failed", rep.Failed,
				"redelivered", len(rep.Redelivered), "in_flight", rep.InFlight, "deferred", rep.Deferred,
				"given_up", rep.GivenUp, "errors", rep.Errors)
		}
		return nil
	})
}

// guidState is what one pass knows of a GUID.
type guidState struct {
	guid      string
	succeeded bool
	oldest    Delivery // oldest attempt listed
	newest    Delivery // newest attempt listed
	newFailed int      // failed attempts not counted by an earlier pass
}

// RunOnce runs one pass over every hook: list, group, redeliver,
// checkpoint. The report sums the hooks'; its Checkpoint is the first
// hook's. A hook that fails does not stop the others: the errors are joined.
func (r *Recovery) RunOnce(ctx context.Context) (Report, error) {
	start := time.Now()
	defer func() { r.metrics.duration.Observe(time.Since(start).Seconds()) }()
	var (
		total Report
		errs  []error
	)
	for i, h := range r.opts.Hooks {
		rep, err := r.passHook(ctx, h, r.opts.MaxPerPass-len(total.Redelivered))
		if err != nil {
			if len(r.opts.Hooks) > 1 && h.Name != "" {
				err = fmt.Errorf("%s: %w", h.Name, err)
			}
			errs = append(errs, err)
		}
		total.Pages += rep.Pages
		total.Deliveries += rep.Deliveries
		total.Failed += rep.Failed
		total.Redelivered = append(total.Redelivered, rep.Redelivered...)
		total.InFlight += rep.InFlight
		total.Deferred += rep.Deferred
		total.GivenUp += rep.GivenUp
		total.Errors += rep.Errors
		if i == 0 {
			total.Checkpoint = rep.Checkpoint
		}
		if ctx.Err() != nil {
			break
		}
	}
	return total, errors.Join(errs...)
}

// passHook runs the pass of one hook, asking for at most maxRedeliveries.
func (r *Recovery) passHook(ctx context.Context, hook Hook, maxRedeliveries int) (Report, error) {
	var rep Report
	now := r.now()
	cp, err := r.loadCheckpoint(ctx, hook.Name)
	if err != nil {
		return rep, err
	}
	byGUID, newest, err := r.listDeliveries(ctx, hook, cp, now.Add(-r.opts.MaxAge), &rep)
	if err != nil {
		return rep, err
	}
	failed := r.unsettled(byGUID)
	rep.Failed = len(failed)

	// resume is the checkpoint ID: below the oldest attempt of every GUID
	// still unsettled.
	resume := newest
	for _, g := range failed {
		if ctx.Err() != nil {
			return rep, fmt.Errorf("recovery: %w", context.Cause(ctx))
		}
		hold, err := r.settle(ctx, hook, g, now, maxRedeliveries, &rep)
		if err != nil {
			return rep, err
		}
		if hold {
			resume = min(resume, g.oldest.ID-1)
		}
	}

	rep.Checkpoint = Checkpoint{ID: max(resume, cp.ID), Newest: newest, At: now}
	if err := r.saveCheckpoint(ctx, hook.Name, rep.Checkpoint); err != nil {
		return rep, err
	}
	return rep, nil
}

// listDeliveries lists the hook's deliveries back to the checkpoint cp or the
// horizon, newest first, and gathers the workflow_job ones by GUID. It
// returns them and the newest delivery id seen (at least cp.Newest); rep
// counts the pages and deliveries.
func (r *Recovery) listDeliveries(ctx context.Context, hook Hook, cp Checkpoint, horizon time.Time, rep *Report) (map[string]*guidState, int64, error) {
	byGUID := map[string]*guidState{}
	newest := cp.Newest
	cursor := ""
	for done := false; !done; {
		cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		page, next, err := hook.Source.ListDeliveries(cctx, cursor, r.opts.PerPage)
		cancel()
		if err != nil {
			return nil, 0, fmt.Errorf("recovery: list webhook deliveries (page %d): %w", rep.Pages+1, err)
		}
		rep.Pages++
		for _, d := range page {
			if d.ID <= cp.ID || d.DeliveredAt.Before(horizon) {
				done = true // newest first: everything after is older still
				break
			}
			rep.Deliveries++
			newest = max(newest, d.ID)
			if d.Event != EventWorkflowJob || d.GUID == "" {
				continue
			}
			g := byGUID[d.GUID]
			if g == nil {
				g = &guidState{guid: d.GUID, oldest: d, newest: d}
				byGUID[d.GUID] = g
			}
			if d.ID < g.oldest.ID {
				g.oldest = d
			}
			if d.ID > g.newest.ID {
				g.newest = d
			}
			if d.Succeeded() {
				g.succeeded = true
			} else if d.ID > cp.Newest {
				g.newFailed++
			}
		}
		if next == "" || len(page) == 0 {
			break
		}
		cursor = next
	}
	return byGUID, newest, nil
}

// unsettled returns the GUIDs that no attempt delivered: "queued" first (a
// job waits for a runner), then the others; oldest first. It counts the
// failed attempts new since the last pass.
func (r *Recovery) unsettled(byGUID map[string]*guidState) []*guidState {
	var failed []*guidState
	for _, g := range byGUID {
		r.metrics.failed.Add(float64(g.newFailed))
		if !g.succeeded {
			failed = append(failed, g)
		}
	}
	slices.SortFunc(failed, func(a, b *guidState) int {
		aq, bq := a.newest.Action == "queued", b.newest.Action == "queued"
		if aq != bq {
			if aq {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.oldest.ID, b.oldest.ID)
	})
	return failed
}

// settle decides what to do with one undelivered GUID: wait for the
// redelivery in flight, give up after MaxAttempts, defer past
// maxRedeliveries in this pass, or ask for a redelivery. It returns whether
// the checkpoint must stay below the GUID (it is not settled yet); rep
// counts the outcome. A failed redelivery request is counted, logged and not
// an error (unless ctx is done).
func (r *Recovery) settle(ctx context.Context, hook Hook, g *guidState, now time.Time, maxRedeliveries int, rep *Report) (bool, error) {
	st, err := r.loadGUID(ctx, g.guid)
	if err != nil {
		return false, err
	}
	switch {
	case st.attempts > 0 && g.newest.ID <= st.lastID && now.Sub(st.requestedAt) < r.opts.InFlightTimeout:
		rep.InFlight++
		return true, nil
	case st.attempts >= r.opts.MaxAttempts:
		rep.GivenUp++
		if g.newest.ID > st.lastID {
			r.log.Warn("webhook delivery given up after its redeliveries failed", "delivery", g.guid,
				"attempts", st.attempts, "action", g.newest.Action, "status_code", g.newest.StatusCode)
			// Remember the last attempt seen, so it is logged once.
			if err := r.saveGUID(ctx, g.guid, st.attempts, g.newest.ID, st.requestedAt); err != nil {
				return false, err
			}
		}
		return false, nil
	case len(rep.Redelivered) >= maxRedeliveries:
		rep.Deferred++
		return true, nil
	}
	// Count the attempt before asking: a crash in between costs one
	// attempt, never an unbounded number.
	if err := r.saveGUID(ctx, g.guid, st.attempts+1, g.newest.ID, now); err != nil {
		return true, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	err = hook.Source.Redeliver(cctx, g.newest.ID)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return true, fmt.Errorf("recovery: redeliver %s: %w", g.guid, err)
		}
		rep.Errors++
		r.metrics.errors.Inc()
		r.log.Warn("asking for a webhook redelivery failed", "delivery", g.guid, "delivery_id", g.newest.ID, "error", err)
		return true, nil
	}
	rep.Redelivered = append(rep.Redelivered, g.guid)
	r.metrics.redeliveries.Inc()
	r.log.Info("webhook redelivery requested", "delivery", g.guid, "delivery_id", g.newest.ID,
		"action", g.newest.Action, "attempt", st.attempts+1, "status_code", g.newest.StatusCode)
	return true, nil
}

// LoadCheckpoint returns the stored checkpoint of the first hook (the zero
// Checkpoint when there is none).
func (r *Recovery) LoadCheckpoint(ctx context.Context) (Checkpoint, error) {
	return r.loadCheckpoint(ctx, r.opts.Hooks[0].Name)
}

func (r *Recovery) loadCheckpoint(ctx context.Context, hook string) (Checkpoint, error) {
	key := r.opts.Keys.RecoveryCheckpoint(hook)
	h, err := r.opts.Redis.HGetAll(ctx, key).Result()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("recovery: read checkpoint %s: %w", key, err)
	}
	var cp Checkpoint
	cp.ID, _ = strconv.ParseInt(h["id"], 10, 64)
	cp.Newest, _ = strconv.ParseInt(h["newest"], 10, 64)
	if ms, err := strconv.ParseInt(h["at"], 10, 64); err == nil {
		cp.At = time.UnixMilli(ms)
	}
	return cp, nil
}

func (r *Recovery) saveCheckpoint(ctx context.Context, hook string, cp Checkpoint) error {
	key := r.opts.Keys.RecoveryCheckpoint(hook)
	err := r.opts.Redis.HSet(ctx, key, "id", cp.ID, "newest", cp.Newest, "at", cp.At.UnixMilli()).Err()
	if err != nil {
		return fmt.Errorf("recovery: write checkpoint %s: %w", key, err)
	}
	return nil
}

// guidRecord is the stored redeliveries of one GUID.
type guidRecord struct {
	attempts    int
	lastID      int64 // newest attempt listed when the last redelivery was asked for
	requestedAt time.Time
}

func (r *Recovery) loadGUID(ctx context.Context, guid string) (guidRecord, error) {
	h, err := r.opts.Redis.HGetAll(ctx, r.opts.Keys.RecoveryGUID(guid)).Result()
	if err != nil {
		return guidRecord{}, fmt.Errorf("recovery: read redeliveries of %s: %w", guid, err)
	}
	var g guidRecord
	n, _ := strconv.Atoi(h["attempts"])
	g.attempts = n
	g.lastID, _ = strconv.ParseInt(h["last_id"], 10, 64)
	if ms, err := strconv.ParseInt(h["requested_at"], 10, 64); err == nil {
		g.requestedAt = time.UnixMilli(ms)
	}
	return g, nil
}

func (r *Recovery) saveGUID(ctx context.Context, guid string, attempts int, lastID int64, at time.Time) error {
	key := r.opts.Keys.RecoveryGUID(guid)
	pipe := r.opts.Redis.TxPipeline()
	pipe.HSet(ctx, key, "attempts", attempts, "last_id", lastID, "requested_at", at.UnixMilli())
	pipe.Expire(ctx, key, r.opts.MaxAge)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("recovery: record redelivery of %s: %w", guid, err)
	}
	return nil
}

type metrics struct {
	failed       prometheus.Counter
	redeliveries prometheus.Counter
	errors       prometheus.Counter
	duration     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runner_manager_recovery_deliveries_failed_total",
			Help: "Failed workflow_job webhook delivery attempts found by the missed-webhook recovery (each counted once).",
		}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runner_manager_recovery_redeliveries_total",
			Help: "Webhook redeliveries asked of GitHub by the missed-webhook recovery.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runner_manager_recovery_redelivery_errors_total",
			Help: "Redelivery requests GitHub refused or that failed.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runner_manager_recovery_pass_duration_seconds",
			Help:    "Duration of one missed-webhook recovery pass.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.failed, m.redeliveries, m.errors, m.duration)
	}
	return m
}
