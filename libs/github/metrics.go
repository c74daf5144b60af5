package github

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the client. Labels carry the budget (an installation id,
// "token" or "app": bounded by the organizations of the configuration),
// route templates, methods and status codes only: never a concrete path, a
// name or a token.
type metrics struct {
	remaining    *prometheus.GaugeVec
	calls        *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	retries      *prometheus.CounterVec
	reserveWaits *prometheus.CounterVec
	refusals     *prometheus.CounterVec
}

// labelInstallation is the budget label of every metric of the client.
const labelInstallation = "installation"

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "runner_manager_github_rate_limit_remaining",
			Help: "REST calls left in the current rate-limit window of the installation (its id; \"token\" for a token, \"app\" for the App's own calls), as last reported by GitHub.",
		}, []string{labelInstallation}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_github_api_calls_total",
			Help: "HTTP requests sent to the GitHub API, by installation, route template, method and status code (\"error\" when no response came).",
		}, []string{labelInstallation, "route", "method", "code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_github_rate_limited_total",
			Help: "GitHub API responses that were a primary or secondary rate limit.",
		}, []string{labelInstallation}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_github_retries_total",
			Help: "GitHub API requests retried after a 5xx or a network error.",
		}, []string{labelInstallation}),
		reserveWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_github_reserve_waits_total",
			Help: "Low-priority GitHub API calls that waited for the rate-limit reset to keep the reserve.",
		}, []string{labelInstallation}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runner_manager_github_rate_limit_refusals_total",
			Help: "GitHub API calls failed with ErrRateLimited without waiting: the rate limit (or the reserve) would have held them past their deadline.",
		}, []string{labelInstallation}),
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
