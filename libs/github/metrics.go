package github

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the client. Labels carry route templates, methods and status
// codes only: never a concrete path, a name or a token.
type metrics struct {
	remaining    prometheus.Gauge
	calls        *prometheus.CounterVec
	rateLimited  prometheus.Counter
	retries      prometheus.Counter
	reserveWaits prometheus.Counter
	refusals     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		remaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "runner_manager_github_rate_limit_remaining",
			Help: "REST calls left in the current rate-limit window of the installation (or token), as last reported by GitHub.",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_github_api_calls_total",
			Help: "HTTP requests sent to the GitHub API, by route template, method and status code (\"error\" when no response came).",
		}, []string{"route", "method", "code"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runner_manager_github_rate_limited_total",
			Help: "GitHub API responses that were a primary or secondary rate limit.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runner_manager_github_retries_total",
			Help: "GitHub API requests retried after a 5xx or a network error.",
		}),
		reserveWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runner_manager_github_reserve_waits_total",
			Help: "Low-priority GitHub API calls that waited for the rate-limit reset to keep the reserve.",
		}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runner_manager_github_rate_limit_refusals_total",
			Help: "GitHub API calls failed with ErrRateLimited without waiting: the rate limit (or the reserve) would have held them past their deadline.",
		}),
	}
	if reg == nil {
		return m
	}
	m.remaining = register(reg, m.remaining)
	m.calls = register(reg, m.calls)
	m.rateLimited = register(reg, m.rateLimited)
	m.retries = register(reg, m.retries)
	m.reserveWaits = register(reg, m.reserveWaits)
	m.refusals = register(reg, m.refusals)
	return m
}

// register registers c, or returns the collector already registered under
// its name (several clients in one process share their metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// Only a programming error (an invalid or clashing descriptor)
		// gets here.
		panic(err)
	}
	return c
}
