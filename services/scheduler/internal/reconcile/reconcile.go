// Package reconcile is the scheduler's cheap loop, run every
// scheduler.reconcile_interval by one replica at a time (lease
// {P}:lease:reconcile): it emits due retries, tops every group up to
// min_runners and its demand (not a paused or draining one), deletes the
// runners not busy of a draining group, scales down idle runners above what
// the group wants (after GitHub confirms they are not busy), and refreshes
// the gauges.
// It reads GitHub only when a group has surplus free runners that may be
// idle (started or idle by the records): one list per scope and at most one
// per reconcile interval, never one call per runner. The expensive health checks of
// docs/design.md §7 live elsewhere, on the same state package.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"

	"github.com/runner-manager/runner-manager/libs/backoff"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/metrics"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// LeaseTask names the loop's lease: {P}:lease:reconcile.
const LeaseTask = "reconcile"

// tracerName is the instrumentation scope of the loop's spans.
const tracerName = "github.com/runner-manager/runner-manager/services/scheduler/internal/reconcile"

// maxRetriesPerPass bounds the retries emitted by one pass.
const maxRetriesPerPass = 500

// RunnerLister lists the runners registered at GitHub in a scope
// (*github.Client implements it).
type RunnerLister interface {
	ListRunners(ctx context.Context, scope github.Scope) ([]github.Runner, error)
}

// Loop is the reconcile loop.
type Loop struct {
	cfg   *config.Config
	store *state.Store
	gh    RunnerLister
	m     *metrics.Metrics
	log   *slog.Logger

	mu sync.Mutex
	// listed is when each scope was last listed at GitHub.
	listed map[github.Scope]time.Time
	// drained is when the groups no longer configured, and the runners of
	// an earlier configuration, were last drained.
	drained time.Time
}

// DrainInterval is how often a pass looks for the runners of groups no
// longer configured and for runners made from an earlier configuration of
// their group (it SCANs the group keys and reads their records): the first
// pass after a start (a configuration change restarts the scheduler) and
// then at most once per interval.
const DrainInterval = time.Minute

// New returns the loop. gh may be nil: no scale-down then (nothing is deleted
// without GitHub's word that it is not busy).
func New(cfg *config.Config, store *state.Store, gh RunnerLister, m *metrics.Metrics, log *slog.Logger) *Loop {
	if m == nil {
		m = metrics.New(nil)
	}
	return &Loop{cfg: cfg, store: store, gh: gh, m: m, log: log, listed: map[github.Scope]time.Time{}}
}

// StepScaleDown is the step of a pass that needs GitHub, as the step label of
// runner_manager_scheduler_reconcile_steps_skipped_total.
const StepScaleDown = "scale_down"

// Run runs the loop under the lease until ctx is cancelled. owner must be
// unique per replica. A pass has reconcile_interval to run, its GitHub calls
// three quarters of it: a GitHub call that would wait for the rate limit
// beyond fails at once, and the retries and top-ups never wait on GitHub.
func (l *Loop) Run(ctx context.Context, owner string) error {
	le := l.store.Lease(LeaseTask, owner, l.cfg.Scheduler.LeaseTTL)
	le.Logger = l.log
	interval := l.cfg.Scheduler.ReconcileInterval
	return le.Run(ctx, interval, func(ctx context.Context) error {
		start := time.Now()
		ctx, cancel := context.WithDeadline(ctx, start.Add(interval))
		defer cancel()
		return l.Once(github.WithCallDeadline(ctx, start.Add(interval*3/4)))
	})
}

// Once runs one pass, in a "reconcile pass" span: the commands it emits
// carry that trace. Every step goes on after an error in another group or
// runner; the errors are returned joined.
func (l *Loop) Once(ctx context.Context) (err error) {
	start := time.Now()
	ctx, span := otel.Tracer(tracerName).Start(ctx, "reconcile pass")
	defer func() {
		l.m.ReconcilePassDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	var errs, limited []error
	if err := l.retries(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := l.retire(ctx); err != nil {
		errs = append(errs, err)
	}
	lists := map[github.Scope][]github.Runner{}
	for i := range l.cfg.RunnerGroups {
		cg := &l.cfg.RunnerGroups[i]
		g, _ := command.Group(l.cfg, cg.Name)
		res, err := l.store.TopUp(ctx, g)
		if n := len(res.Reserved); n > 0 {
			l.m.Commands.WithLabelValues("create", "top_up").Add(float64(n))
			l.log.Info("group topped up", "group", g.Name, "runners", res.Reserved)
		}
		if err != nil {
			errs = append(errs, err)
		}
		mode, err := l.store.GroupMode(ctx, g.Name)
		if err != nil {
			errs = append(errs, err)
		}
		if mode == state.ModeDraining {
			if err := l.drain(ctx, g.Name); err != nil {
				errs = append(errs, err)
			}
		}
		if err := l.scaleDown(ctx, cg, g, lists); err != nil {
			rl, rest := github.SplitRateLimited(err)
			if len(rl) > 0 {
				limited = append(limited, rl...)
				l.m.ReconcileStepsSkipped.WithLabelValues(StepScaleDown).Inc()
			}
			if rest != nil {
				errs = append(errs, rest)
			}
		}
		if err := l.gauges(ctx, g); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.dlqGauge(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(limited) > 0 {
		// One line for the pass, not one per group or call.
		attrs := []any{"steps", []string{StepScaleDown}, "groups", len(limited), "error", limited[0].Error()}
		if reset, ok := github.RateLimitReset(limited[0]); ok {
			attrs = append(attrs, "reset", reset)
		}
		l.log.Warn("GitHub rate limited: steps skipped", attrs...)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// retire deletes, at most once per DrainInterval, the pending, started
// and idle runners of the groups that have records but are no longer
// configured (group_removed), and the started and idle runners of configured
// groups that were created from a configuration of the group that changed
// since (spec_changed: their record's spec hash is not the group's). The
// delete commands carry where each runner was made (its record), and the
// provisioner removes the registration first: a runner that took a job
// meanwhile answers busy and stays until its job completes (then
// job_completed deletes it) or time_to_live. Nothing is created for a group
// no longer configured, nor from an older configuration, so what this finds
// only shrinks; the deleted result of a retired runner tops its group up
// with runners of the current configuration. The modes of groups no longer
// configured are forgotten in the same pass.
func (l *Loop) retire(ctx context.Context) error {
	now := l.store.Now()
	l.mu.Lock()
	due := l.drained.IsZero() || now.Sub(l.drained) >= DrainInterval
	if due {
		l.drained = now
	}
	l.mu.Unlock()
	if !due {
		return nil
	}
	groups, err := l.store.RecordedGroups(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range groups {
		cg := l.cfg.Group(g)
		if cg == nil {
			// A removed group: every runner not busy.
			moved, err := l.store.DeleteFree(ctx, g, state.ReasonGroupRemoved)
			if err != nil {
				errs = append(errs, err)
			}
			for _, r := range moved {
				l.m.Commands.WithLabelValues("delete", state.ReasonGroupRemoved).Inc()
				l.log.Info("runner of a group no longer configured: deleting it", "runner", r.Name, "group", g, "state", r.State)
			}
			continue
		}
		// A configured group: the runners not busy made from another
		// configuration of it.
		hash, err := config.SpecHash(cg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		runners, err := l.store.Runners(ctx, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		from := []state.State{state.Started, state.Idle}
		for _, r := range runners {
			if !slices.Contains(from, r.State) || r.SpecHash == "" || r.SpecHash == hash {
				continue
			}
			_, err := l.store.RequestDelete(ctx, r.Name, from, state.ReasonSpecChanged)
			switch {
			case errors.Is(err, state.ErrState) || errors.Is(err, state.ErrNotFound):
			case err != nil:
				errs = append(errs, err)
			default:
				l.m.Commands.WithLabelValues("delete", state.ReasonSpecChanged).Inc()
				l.log.Info("runner made from an earlier configuration of its group: replacing it", "runner", r.Name, "group", g, "state", r.State)
			}
		}
	}
	// The mode of a group no longer configured blocks nothing (nothing is
	// created for it); forgotten, so that a group of that name added later
	// starts active.
	forgotten, err := l.store.ForgetModes(ctx, func(g string) bool { return l.cfg.Group(g) != nil })
	if err != nil {
		errs = append(errs, err)
	}
	for _, g := range forgotten {
		l.log.Info("mode of a group no longer configured forgotten", "group", g)
	}
	return errors.Join(errs...)
}

// drain deletes the pending, started and idle runners of a draining group
// (reason drained; the provisioner removes the registration first, so one
// that took a job meanwhile answers busy and stays until its job completes).
// The admin API's drain does the same at once; the loop finishes a drain
// that a crash interrupted and catches a runner reserved just before it.
func (l *Loop) drain(ctx context.Context, group string) error {
	moved, err := l.store.DeleteFree(ctx, group, state.ReasonDrained)
	for _, r := range moved {
		l.m.Commands.WithLabelValues("delete", state.ReasonDrained).Inc()
		l.log.Info("runner of a draining group: deleting it", "runner", r.Name, "group", group, "state", r.State)
	}
	return err
}

// retries emits the due create and delete retries.
func (l *Loop) retries(ctx context.Context) error {
	due, err := l.store.DueRetries(ctx, l.store.Now(), maxRetriesPerPass)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range due {
		var ok bool
		var err error
		switch r.Kind {
		case state.RetryCreateKind:
			ok, err = l.store.RetryCreate(ctx, r.Runner)
		case state.RetryDeleteKind:
			ok, err = l.store.RetryDelete(ctx, r.Runner)
		default:
			err = l.store.DropRetry(ctx, r)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			l.m.Commands.WithLabelValues(string(r.Kind), "retry").Inc()
			l.log.Info("command emitted again", "kind", r.Kind, "runner", r.Runner)
		}
	}
	return errors.Join(errs...)
}

// Scope returns the GitHub scope of a group's runners.
func Scope(g *config.RunnerGroup) github.Scope {
	if g.Repository != "" {
		return github.RepoScope(g.Organization, g.Repository)
	}
	return github.OrgScope(g.Organization)
}

// scaleDown marks started runners idle when GitHub shows them online and not
// busy, then deletes idle runners above min_runners + demand that GitHub
// confirms are not busy (compare-and-set idle -> deleting: a runner that took
// a job meanwhile is left alone).
func (l *Loop) scaleDown(ctx context.Context, cg *config.RunnerGroup, g state.Group, lists map[github.Scope][]github.Runner) error {
	if l.gh == nil {
		return nil
	}
	st, err := l.store.GroupStatus(ctx, g.Name)
	if err != nil {
		return err
	}
	// The surplus counts only the runners that may be idle (started or
	// idle): pending runners are not deleted, and a surplus made of pending
	// runners needs no list; once they start, it shows here. The group keeps
	// its warm runners over those still starting.
	surplus := st.ByState[state.Started] + st.ByState[state.Idle] - (int64(g.MinRunners) + st.Demand)
	if surplus <= 0 {
		return nil
	}
	scope := Scope(cg)
	list, ok := lists[scope]
	if !ok {
		if !l.mayList(scope) {
			return nil // listed less than an interval ago: the next pass acts
		}
		if list, err = l.gh.ListRunners(ctx, scope); err != nil {
			return fmt.Errorf("scale down group %s: %w", g.Name, err)
		}
		lists[scope] = list
	}
	byName := make(map[string]github.Runner, len(list))
	for _, r := range list {
		byName[r.Name] = r
	}
	runners, err := l.store.Runners(ctx, g.Name)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range runners {
		gr, known := byName[r.Name]
		online := known && gr.Status == github.RunnerOnline && !gr.Busy
		if r.State == state.Started && online {
			moved, err := l.store.MarkIdle(ctx, r.Name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if moved {
				r.State = state.Idle
			}
		}
		if surplus <= 0 || r.State != state.Idle || !known || gr.Busy {
			continue
		}
		if _, err := l.store.RequestDelete(ctx, r.Name, []state.State{state.Idle}, state.ReasonScaleDown); err != nil {
			if !errors.Is(err, state.ErrState) && !errors.Is(err, state.ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		surplus--
		l.m.Commands.WithLabelValues("delete", state.ReasonScaleDown).Inc()
		l.log.Info("idle runner above the group's need: deleting", "group", g.Name, "runner", r.Name)
	}
	return errors.Join(errs...)
}

// mayList tells whether scope may be listed now, at most once per reconcile
// interval (less a tenth, for the ticker's jitter: a pass on time is never
// refused), and if so notes the list. Passes run more often than the interval
// when Once is called by hand (tests) or two replicas hand the lease over;
// the spacing holds per replica.
func (l *Loop) mayList(scope github.Scope) bool {
	now := l.store.Now()
	spacing := l.cfg.Scheduler.ReconcileInterval - l.cfg.Scheduler.ReconcileInterval/10
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.listed[scope]; ok && now.Sub(last) < spacing {
		return false
	}
	l.listed[scope] = now
	return true
}

// gauges refreshes the runner, demand, max_runners and mode gauges of a group.
func (l *Loop) gauges(ctx context.Context, g state.Group) error {
	l.m.MaxRunners.WithLabelValues(g.Name).Set(float64(g.MaxRunners))
	st, err := l.store.GroupStatus(ctx, g.Name)
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for s, n := range st.ByState {
		l.m.Runners.WithLabelValues(g.Name, string(s)).Set(float64(n))
	}
	l.m.Demand.WithLabelValues(g.Name).Set(float64(st.Demand))
	l.m.SetGroupMode(g.Name, st.Mode)
	return nil
}

// Automatic retries of dead letters: a queued event the scheduler gave up
// leaves its job without a runner, so the loop puts the dead letters of
// {P}:events back on their stream DLQRetryFirst after they were
// dead-lettered, doubling (DLQRetryMax at most) with each automatic retry
// of the same message, DLQAutoRetries times at most; then the entry stays
// for an operator (rmctl dlq retry). Only {P}:events: the scheduler's
// handlers of events are idempotent and a retried event creates nothing a
// record does not allow. A result ({P}:results) it gave up cannot be
// applied any better later, and a command a provisioner dead-lettered was
// already answered with a failed result (the scheduler released or deleted
// its runner): re-running it could create a runner with no reservation.
const (
	DLQRetryFirst  = time.Minute
	DLQRetryMax    = time.Hour
	DLQAutoRetries = 5
	// dlqScan bounds the DLQ entries a pass reads (oldest first).
	dlqScan = 10_000
	// dlqRetriesTTL: a message's count of automatic retries is forgotten
	// this long after its last retry (longer than all the backoffs).
	dlqRetriesTTL = 7 * 24 * time.Hour
)

// DLQRetryBackoff is how long after its dead-lettering a message already
// retried automatically retries times is retried again.
func DLQRetryBackoff(retries int) time.Duration {
	return backoff.Exponential{Base: DLQRetryFirst, Max: DLQRetryMax}.Delay(retries + 1)
}

// dlqGauge refreshes the length of the dead-letter stream, its entries by
// origin stream (over the oldest dlqScan), and retries the due dead letters
// of {P}:events.
func (l *Loop) dlqGauge(ctx context.Context) error {
	k := l.store.Keys()
	n, err := l.store.DeadLetterCount(ctx)
	if err != nil {
		return err
	}
	l.m.DLQEntries.Set(float64(n))
	dls, err := l.store.OldestDeadLetters(ctx, dlqScan)
	if err != nil {
		return err
	}
	by := map[string]int{}
	var errs []error
	now := l.store.Now()
	for _, d := range dls {
		if d.OriginStream == k.Events() && l.cfg != nil {
			retried, err := l.retryDeadLetter(ctx, d, now)
			if err != nil {
				errs = append(errs, err)
			}
			if retried {
				continue
			}
		}
		by[d.OriginStream]++
	}
	l.m.DLQByStream.Reset()
	for s, c := range by {
		l.m.DLQByStream.WithLabelValues(s).Set(float64(c))
	}
	return errors.Join(errs...)
}

// retryDeadLetter puts d back on its stream when it is due and not retried
// DLQAutoRetries times yet; the count is taken first (a failed retry costs
// one, never adds one).
func (l *Loop) retryDeadLetter(ctx context.Context, d stream.DeadLetter, now time.Time) (bool, error) {
	retries, err := l.store.DeadLetterRetries(ctx, d)
	if err != nil {
		return false, err
	}
	if retries >= DLQAutoRetries || now.Before(d.Time.Add(DLQRetryBackoff(retries))) {
		return false, nil
	}
	if err := l.store.CountDeadLetterRetry(ctx, d, dlqRetriesTTL); err != nil {
		return false, err
	}
	err = l.store.RetryDeadLetter(ctx, d.ID, l.cfg.Streams.MaxLen)
	if errors.Is(err, stream.ErrNotFound) {
		return true, nil // retried or trimmed meanwhile
	}
	if err != nil {
		return false, err
	}
	l.m.DLQAutoRetried.WithLabelValues(d.OriginStream).Inc()
	l.log.Warn("dead letter retried automatically", "id", d.ID, "stream", d.OriginStream, "type", d.Type,
		"retry", retries+1, "of", DLQAutoRetries, "reason", d.Reason)
	return true, nil
}
