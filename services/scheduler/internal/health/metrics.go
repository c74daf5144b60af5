package health

import "github.com/prometheus/client_golang/prometheus"

// Checks, as the check label of runner_manager_health_actions_total.
const (
	CheckTimeToStart      = "time_to_start"
	CheckMarkIdle         = "mark_idle"
	CheckTimeToLive       = "time_to_live"
	CheckBackendOrphan    = "backend_orphan"
	CheckGitHubOrphan     = "github_orphan"
	CheckInstanceVanished = "instance_vanished"
	CheckStaleJob         = "stale_job"
	CheckBusyCompleted    = "busy_completed"
	CheckTopUp            = "top_up"
	CheckRunnerGroup      = "runner_group"
	CheckInventory        = "inventory_request"
	CheckRegistrationGone = "registration_gone"
	CheckStuckDeleting    = "stuck_deleting"
)

// Metrics of the health checks. Labels carry only check names.
type Metrics struct {
	// Actions taken, by check: runners deleted or marked idle, registrations
	// removed, jobs healed, runners reserved, groups changed, lists sent.
	Actions *prometheus.CounterVec
	// PassDuration of a whole pass.
	PassDuration prometheus.Histogram
	// StepsSkipped counts the steps of a pass skipped because GitHub rate
	// limited them, by step.
	StepsSkipped *prometheus.CounterVec
}

// Steps that need GitHub, as the step label of
// runner_manager_health_steps_skipped_total.
const (
	StepRunnerGroups = "runner_groups"
	StepListRunners  = "list_runners"
	StepStaleJobs    = "stale_jobs"
	StepGitHubOrphan = "github_orphans"
)

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_health_actions_total",
			Help: "Actions taken by the health checks, by check.",
		}, []string{"check"}),
		PassDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runner_manager_health_pass_duration_seconds",
			Help:    "Duration of one pass of the health checks.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		StepsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_health_steps_skipped_total",
			Help: "Steps of the health checks skipped (in part or whole) because GitHub rate limited them, by step.",
		}, []string{"step"}),
	}
	for _, s := range []string{StepRunnerGroups, StepListRunners, StepStaleJobs, StepGitHubOrphan} {
		m.StepsSkipped.WithLabelValues(s)
	}
	for _, c := range []string{CheckTimeToStart, CheckMarkIdle, CheckTimeToLive, CheckBackendOrphan,
		CheckGitHubOrphan, CheckInstanceVanished, CheckStaleJob, CheckBusyCompleted, CheckTopUp,
		CheckRunnerGroup, CheckInventory, CheckRegistrationGone, CheckStuckDeleting} {
		m.Actions.WithLabelValues(c)
	}
	if reg != nil {
		reg.MustRegister(m.Actions, m.PassDuration, m.StepsSkipped)
	}
	return m
}
