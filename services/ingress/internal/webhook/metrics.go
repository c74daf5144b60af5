package webhook

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a request: the outcome label of
// runner_manager_ingress_webhooks_total and the outcome field of its log line.
const (
	OutcomePublished     = "published"      // 202: appended to {P}:events
	OutcomeDuplicate     = "duplicate"      // 200: delivery already accepted, not published again
	OutcomeDuplicateBody = "duplicate_body" // 200: same signed body already accepted under another delivery id
	OutcomePing          = "ping"           // 200
	OutcomeIgnoredEvent  = "ignored_event"  // 202: an event other than workflow_job
	OutcomeIgnoredAction = "ignored_action" // 202: waiting, or an action the scheduler does not use
	OutcomeTooLarge      = "too_large"      // 413
	OutcomeUnauthorized  = "unauthorized"   // 401: signature missing, malformed or wrong
	OutcomeBadRequest    = "bad_request"    // 400: unreadable body, invalid payload or delivery id
	OutcomeUnavailable   = "unavailable"    // 503: Redis did not answer; GitHub may redeliver
	OutcomeBusy          = "busy"           // 503: no read slot free within the queue wait
)

var outcomes = [...]string{
	OutcomePublished, OutcomeDuplicate, OutcomeDuplicateBody, OutcomePing, OutcomeIgnoredEvent,
	OutcomeIgnoredAction, OutcomeTooLarge, OutcomeUnauthorized, OutcomeBadRequest, OutcomeUnavailable,
	OutcomeBusy,
}

// Event label values. The X-GitHub-Event header is chosen by the caller (and
// unverified on a 401), so any other value is counted as "other": the label
// set stays bounded.
const (
	eventWorkflowJob = "workflow_job"
	eventPing        = "ping"
	eventOther       = "other"
)

var eventLabels = [...]string{eventWorkflowJob, eventPing, eventOther}

func eventIndex(event string) int {
	switch event {
	case eventWorkflowJob:
		return 0
	case eventPing:
		return 1
	default:
		return 2
	}
}

type metrics struct {
	webhooks *prometheus.CounterVec
	publish  prometheus.Histogram
	body     prometheus.Histogram
	reading  prometheus.Gauge
	// counters is webhooks resolved once per label pair: no label hashing per request.
	counters [len(eventLabels)]map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_ingress_webhooks_total",
			Help: "Webhook requests by event (workflow_job, ping, other) and outcome.",
		}, []string{"event", "outcome"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runner_manager_ingress_publish_duration_seconds",
			Help:    "Duration of the Redis script that records a delivery and appends its event.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2},
		}),
		body: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runner_manager_ingress_body_bytes",
			Help:    "Size of the webhook bodies read (refused oversized bodies are not read).",
			Buckets: prometheus.ExponentialBuckets(1024, 2, 11), // 1 KiB .. 1 MiB
		}),
		reading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "runner_manager_ingress_body_reads_in_flight",
			Help: "Requests holding one of the read slots (reading, verifying or publishing a body).",
		}),
	}
	for i, ev := range eventLabels {
		m.counters[i] = make(map[string]prometheus.Counter, len(outcomes))
		for _, o := range outcomes {
			m.counters[i][o] = m.webhooks.WithLabelValues(ev, o)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.webhooks, m.publish, m.body, m.reading} {
			if err := reg.Register(c); err != nil {
				var already prometheus.AlreadyRegisteredError
				if errors.As(err, &already) {
					return nil, fmt.Errorf("register ingress metrics: already registered (one webhook handler per registry): %w", err)
				}
				return nil, fmt.Errorf("register ingress metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) count(event, outcome string) {
	m.counters[eventIndex(event)][outcome].Inc()
}
