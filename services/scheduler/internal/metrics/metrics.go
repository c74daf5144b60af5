// Package metrics holds the scheduler's Prometheus metrics.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// Metrics of the scheduler. Labels never carry a secret: only group names,
// states, command types and outcomes.
type Metrics struct {
	// Runners per group and state, refreshed from Redis by the reconcile loop.
	Runners *prometheus.GaugeVec
	// Demand per group: queued jobs without a runner yet.
	Demand *prometheus.GaugeVec
	// MaxRunners per group, from the configuration (demand against the limit).
	MaxRunners *prometheus.GaugeVec
	// GroupMode per group and mode (active, paused, draining): 1 for the
	// group's mode, 0 for the others; refreshed by the reconcile loop and
	// set by the admin API's mode changes.
	GroupMode *prometheus.GaugeVec
	// DLQEntries: length of the dead-letter stream {P}:dlq.
	DLQEntries prometheus.Gauge
	// DLQByStream: entries of {P}:dlq by origin stream.
	DLQByStream *prometheus.GaugeVec
	// DLQAutoRetried: dead letters put back on their stream by the reconcile loop.
	DLQAutoRetried *prometheus.CounterVec
	// QueuedToCreate: from a job's queued time to the create command its event emitted.
	QueuedToCreate *prometheus.HistogramVec
	// JobWait: from a job's queued time to its in_progress event.
	JobWait *prometheus.HistogramVec
	// Commands emitted, by type (create, delete, update) and reason.
	Commands *prometheus.CounterVec
	// Results handled, by outcome (created, deleted, failed_create, failed_delete, ...).
	Results *prometheus.CounterVec
	// CreateRetries scheduled, by group.
	CreateRetries *prometheus.CounterVec
	// DeleteFailures: failed delete results, by group and failure class.
	DeleteFailures *prometheus.CounterVec
	// Events handled, by action and outcome (applied, ignored).
	Events *prometheus.CounterVec
	// UnmatchedJobs: queued jobs that match no runner group.
	UnmatchedJobs prometheus.Counter
	// ReconcilePassDuration: duration of one pass of the reconcile loop.
	ReconcilePassDuration prometheus.Histogram
	// ReconcileStepsSkipped: steps of a reconcile pass skipped because
	// GitHub rate limited them, by step.
	ReconcileStepsSkipped *prometheus.CounterVec
}

var waitBuckets = []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600}

// New creates the metrics and registers them with reg (nil: not registered).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Runners: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "runner_manager_scheduler_runners",
			Help: "Runners per group and state.",
		}, []string{"group", "state"}),
		Demand: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "runner_manager_scheduler_demand",
			Help: "Queued jobs of a group that have no runner yet.",
		}, []string{"group"}),
		MaxRunners: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "runner_manager_scheduler_max_runners",
			Help: "The group's max_runners, from the configuration.",
		}, []string{"group"}),
		GroupMode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "runner_manager_group_mode",
			Help: "1 for the group's mode (active, paused, draining), 0 for the others.",
		}, []string{"group", "mode"}),
		DLQEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "runner_manager_stream_dlq_entries",
			Help: "Entries in the dead-letter stream {P}:dlq (XLEN), refreshed by the reconcile loop.",
		}),
		DLQByStream: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "runner_manager_dlq_entries",
			Help: "Entries in the dead-letter stream {P}:dlq by origin stream, refreshed by the reconcile loop.",
		}, []string{"stream"}),
		DLQAutoRetried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_dlq_auto_retries_total",
			Help: "Dead letters put back on their origin stream automatically by the reconcile loop.",
		}, []string{"stream"}),
		QueuedToCreate: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runner_manager_scheduler_queued_to_create_seconds",
			Help:    "Time from a job's queued time to the create command its queued event emitted.",
			Buckets: waitBuckets,
		}, []string{"group"}),
		JobWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runner_manager_scheduler_job_wait_seconds",
			Help:    "Time from a job's queued time to its in_progress event.",
			Buckets: waitBuckets,
		}, []string{"group"}),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_scheduler_commands_total",
			Help: "Provision commands emitted, by type and reason.",
		}, []string{"type", "reason"}),
		Results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_scheduler_results_total",
			Help: "Provision results handled, by outcome.",
		}, []string{"outcome"}),
		CreateRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_scheduler_create_retries_total",
			Help: "Create retries scheduled after a failed create, by group.",
		}, []string{"group"}),
		DeleteFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_scheduler_delete_failures_total",
			Help: "Failed delete results, by group and failure class (retryable, permanent, capacity); each retry of the runner's delete waits longer (10 s doubling to 10 min).",
		}, []string{"group", "class"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_scheduler_events_total",
			Help: "workflow_job events handled, by action and outcome.",
		}, []string{"action", "outcome"}),
		UnmatchedJobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runner_manager_scheduler_unmatched_jobs_total",
			Help: "Queued jobs whose labels match no runner group.",
		}),
		ReconcilePassDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runner_manager_scheduler_reconcile_pass_duration_seconds",
			Help:    "Duration of one pass of the reconcile loop.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		ReconcileStepsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_scheduler_reconcile_steps_skipped_total",
			Help: "Steps of a reconcile pass skipped because GitHub rate limited them, by step.",
		}, []string{"step"}),
	}
	if reg != nil {
		reg.MustRegister(m.Runners, m.Demand, m.MaxRunners, m.GroupMode, m.DLQEntries, m.DLQByStream, m.DLQAutoRetried, m.QueuedToCreate, m.JobWait, m.Commands,
			m.Results, m.CreateRetries, m.DeleteFailures, m.Events, m.UnmatchedJobs, m.ReconcilePassDuration, m.ReconcileStepsSkipped)
	}
	return m
}

// SetGroupMode sets runner_manager_group_mode of group: 1 for mode, 0 for
// the other modes.
func (m *Metrics) SetGroupMode(group string, mode state.Mode) {
	for _, x := range state.Modes() {
		v := 0.0
		if x == mode {
			v = 1
		}
		m.GroupMode.WithLabelValues(group, string(x)).Set(v)
	}
}
