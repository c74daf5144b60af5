package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Command outcomes, the "outcome" label of runner_manager_provisioner_commands_total.
const (
	outcomeCreated      = "created"
	outcomeDeleted      = "deleted"
	outcomeBusy         = "busy"    // a delete refused by GitHub: the runner runs a job
	outcomeSkipped      = "skipped" // a create of a runner deleted already
	outcomeListed       = "listed"
	outcomeUpdated      = "updated"     // the runner's job metadata set on its instance
	outcomeDropped      = "dropped_"    // an update given up (metadata only), + class
	outcomeRetry        = "retry"       // returned for another delivery
	outcomeInterrupted  = "interrupted" // shutdown: left pending
	outcomePoison       = "poison"      // undecodable: on its way to the DLQ
	outcomeDeadLettered = "dead_lettered"
	// and "failed_retryable", "failed_permanent", "failed_capacity".
)

type metrics struct {
	commands *prometheus.CounterVec
	refused  *prometheus.CounterVec
	backend  *prometheus.HistogramVec
	github   *prometheus.HistogramVec
}

func newMetrics(backendType string, reg prometheus.Registerer) (*metrics, error) {
	constLabels := prometheus.Labels{"backend": backendType}
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "runner_manager_provisioner_commands_total",
			Help:        "Commands handled, by command (create, delete, list, update) and outcome (created, deleted, busy, listed, updated, retry, failed_<class>, dropped_<class>, dead_lettered, interrupted, poison).",
			ConstLabels: constLabels,
		}, []string{"command", "outcome"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_provisioner_commands_refused_total",
			Help: "Commands refused because they disagree with the provisioner's configuration, by reason (unknown_group, backend_type, " +
				"organization, repository, labels, runner_group, instance_spec, invalid_name, spec_hash_mismatch); counted at each delivery.",
			ConstLabels: constLabels,
		}, []string{"reason"}),
		backend: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "runner_manager_provisioner_backend_call_duration_seconds",
			Help:        "Duration of backend calls, by operation (create, delete, list, update) and outcome (ok, error).",
			ConstLabels: constLabels,
			Buckets:     []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"operation", "outcome"}),
		github: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "runner_manager_provisioner_github_call_duration_seconds",
			Help:        "Duration of GitHub calls made by the provisioner, by operation and outcome (ok, error).",
			ConstLabels: constLabels,
			Buckets:     prometheus.DefBuckets,
		}, []string{"operation", "outcome"}),
	}
	// Zero series of the common outcomes, so that rates and alerts see them
	// before the first command.
	for cmd, outcomes := range map[string][]string{
		"create": {outcomeCreated, outcomeSkipped, outcomeRetry, "failed_retryable", "failed_permanent", "failed_capacity", outcomeDeadLettered},
		"delete": {outcomeDeleted, outcomeBusy, outcomeRetry, "failed_retryable", "failed_permanent", outcomeDeadLettered},
		"list":   {outcomeListed, outcomeRetry, "failed_retryable", "failed_permanent"},
		"update": {outcomeUpdated, outcomeRetry, outcomeDropped + "retryable", outcomeDropped + "permanent", outcomeDeadLettered},
	} {
		for _, o := range outcomes {
			m.commands.WithLabelValues(cmd, o)
		}
	}
	for _, reason := range refusalReasons {
		m.refused.WithLabelValues(reason)
	}
	if reg == nil {
		return m, nil
	}
	// A second Runtime on the same registry (tests, two runtimes in one
	// process) shares the collectors of the first.
	var err error
	if m.commands, err = register(reg, m.commands); err != nil {
		return nil, err
	}
	if m.refused, err = register(reg, m.refused); err != nil {
		return nil, err
	}
	if m.backend, err = register(reg, m.backend); err != nil {
		return nil, err
	}
	if m.github, err = register(reg, m.github); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register provisioner metrics: %w", err)
}

func (m *metrics) command(command, outcome string) {
	m.commands.WithLabelValues(command, outcome).Inc()
}

func (m *metrics) backendCall(op string, d time.Duration, err error) {
	m.backend.WithLabelValues(op, okOrError(err)).Observe(d.Seconds())
}

func (m *metrics) githubCall(op string, d time.Duration, err error) {
	m.github.WithLabelValues(op, okOrError(err)).Observe(d.Seconds())
}

func okOrError(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
