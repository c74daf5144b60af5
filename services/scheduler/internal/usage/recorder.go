package usage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TopWindow is the window over which the Recorder ranks repositories.
const TopWindow = 24 * time.Hour

// RefreshInterval is how often the Recorder ranks the repositories again.
const RefreshInterval = time.Minute

// Recorder observes what the scripts of this replica added to the aggregate
// into Prometheus metrics labelled group, repository and workflow. Only the
// top repositories of the last TopWindow (as the Aggregate ranks them) keep
// their name; the others are "other", workflow "other": the series are at
// most groups x (top + 2) x workflows of a top repository. A repository that
// leaves the top has its series deleted.
type Recorder struct {
	agg *Aggregate

	Busy *prometheus.CounterVec
	Idle *prometheus.CounterVec
	Jobs *prometheus.CounterVec
	Boot *prometheus.HistogramVec
	Wait *prometheus.HistogramVec

	mu  sync.RWMutex
	top map[string]bool
}

// NewRecorder creates the metrics and registers them with reg (nil: not registered).
func NewRecorder(reg prometheus.Registerer, agg *Aggregate) *Recorder {
	labels := []string{"group", "repository", "workflow"}
	r := &Recorder{
		agg: agg,
		top: map[string]bool{},
		Busy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_usage_busy_seconds_total",
			Help: "Runner-seconds running jobs, counted when the job completes (started_at to completed_at).",
		}, labels),
		Idle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_usage_idle_seconds_total",
			Help: "Runner-seconds booting and idle, counted when the runner's free time ends; repository \"\" for runners that ran no job.",
		}, labels),
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_usage_jobs_total",
			Help: "Jobs that started (in_progress).",
		}, labels),
		Boot: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runner_manager_usage_boot_seconds",
			Help:    "Time from a runner's create command to online (idle at GitHub, or taking a job).",
			Buckets: Bounds,
		}, labels),
		Wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runner_manager_usage_job_wait_seconds",
			Help:    "Time from a job's queued time to its start (in_progress).",
			Buckets: Bounds,
		}, labels),
	}
	if reg != nil {
		reg.MustRegister(r.Busy, r.Idle, r.Jobs, r.Boot, r.Wait)
	}
	return r
}

// Observe records what one script added (state.Options.Usage).
func (r *Recorder) Observe(obs []Observation) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, o := range obs {
		repo, wf := o.Repository, o.Workflow
		if repo != "" && !r.top[repo] {
			repo, wf = Other, Other
		}
		switch o.Kind {
		case KindBusy:
			r.Busy.WithLabelValues(o.Group, repo, wf).Add(o.D.Seconds())
		case KindIdle:
			r.Idle.WithLabelValues(o.Group, repo, wf).Add(o.D.Seconds())
		case KindBoot:
			r.Boot.WithLabelValues(o.Group, repo, wf).Observe(o.D.Seconds())
		case KindJob:
			r.Jobs.WithLabelValues(o.Group, repo, wf).Inc()
			if o.WaitKnown {
				r.Wait.WithLabelValues(o.Group, repo, wf).Observe(o.D.Seconds())
			}
		}
	}
}

// Refresh ranks the repositories of the last TopWindow again, and deletes
// the series of those that left the top.
func (r *Recorder) Refresh(ctx context.Context) error {
	top, err := r.agg.TopRepositoriesOf(ctx, TopWindow)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for repo := range r.top {
		if !top[repo] {
			l := prometheus.Labels{"repository": repo}
			r.Busy.DeletePartialMatch(l)
			r.Idle.DeletePartialMatch(l)
			r.Jobs.DeletePartialMatch(l)
			r.Boot.DeletePartialMatch(l)
			r.Wait.DeletePartialMatch(l)
		}
	}
	r.top = top
	return nil
}

// Run refreshes the ranking every RefreshInterval until ctx ends; a failed
// refresh keeps the last ranking.
func (r *Recorder) Run(ctx context.Context, log *slog.Logger) error {
	t := time.NewTicker(RefreshInterval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.Refresh(rctx)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("usage: rank repositories for the metrics", "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
