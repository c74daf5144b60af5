package stream

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a delivery, the "outcome" label of
// runner_manager_stream_handled_total.
const (
	OutcomeOK         = "ok"          // handler returned nil; acknowledged
	OutcomeError      = "error"       // handler failed; left pending for a retry
	OutcomePanic      = "panic"       // handler panicked; left pending for a retry
	OutcomeAbandoned  = "abandoned"   // handler cancelled (shutdown deadline, claim lost); left pending
	OutcomeDeadLetter = "dead_letter" // moved to the DLQ and acknowledged
	OutcomeTrimmed    = "trimmed"     // trimmed away while pending; acknowledged and skipped
)

// Metrics are the Prometheus metrics of the consumers of one process. One
// Metrics may be shared by several consumers: every series carries the stream
// and group.
type Metrics struct {
	handled      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	deadLettered *prometheus.CounterVec
	claimed      *prometheus.CounterVec
	pending      *prometheus.GaugeVec
	lag          *prometheus.GaugeVec
}

// NewMetrics returns the consumer metrics, registered with reg when it is not
// nil. Registering twice with the same registry reuses the first collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"stream", "group"}
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_stream_handled_total",
			Help: "Deliveries of stream entries to this process, by outcome (ok, error, panic, abandoned, dead_letter, trimmed).",
		}, append(labels, "outcome")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runner_manager_stream_handler_duration_seconds",
			Help:    "Time a handler took for one entry.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, labels),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_stream_dead_lettered_total",
			Help: "Entries moved to the dead-letter stream after too many deliveries.",
		}, labels),
		claimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_stream_claimed_total",
			Help: "Entries taken over from another consumer that held them longer than the min idle time.",
		}, labels),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "runner_manager_stream_pending_entries",
			Help: "Entries delivered to the consumer group and not acknowledged yet (XINFO GROUPS pending).",
		}, labels),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "runner_manager_stream_lag_entries",
			Help: "Entries of the stream not delivered to the consumer group yet (XINFO GROUPS lag).",
		}, labels),
	}
	if reg != nil {
		m.handled = register(reg, m.handled)
		m.duration = register(reg, m.duration)
		m.deadLettered = register(reg, m.deadLettered)
		m.claimed = register(reg, m.claimed)
		m.pending = register(reg, m.pending)
		m.lag = register(reg, m.lag)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// The methods below accept a nil *Metrics (no metrics).

func (m *Metrics) observeHandled(stream, group, outcome string, seconds float64) {
	if m == nil {
		return
	}
	m.handled.WithLabelValues(stream, group, outcome).Inc()
	if seconds >= 0 {
		m.duration.WithLabelValues(stream, group).Observe(seconds)
	}
}

func (m *Metrics) observeDeadLetter(stream, group string) {
	if m == nil {
		return
	}
	m.handled.WithLabelValues(stream, group, OutcomeDeadLetter).Inc()
	m.deadLettered.WithLabelValues(stream, group).Inc()
}

func (m *Metrics) observeClaimed(stream, group string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.claimed.WithLabelValues(stream, group).Add(float64(n))
}

func (m *Metrics) setGroupInfo(stream, group string, pending, lag int64) {
	if m == nil {
		return
	}
	m.pending.WithLabelValues(stream, group).Set(float64(pending))
	if lag >= 0 {
		m.lag.WithLabelValues(stream, group).Set(float64(lag))
	}
}
