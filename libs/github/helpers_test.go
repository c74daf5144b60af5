package github

import (
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
)

const testToken = "ghp_TESTTOKEN0123456789"

// bundle is what a test gets from setup.
type bundle struct {
	client *Client
	server *httptest.Server
	reg    *prometheus.Registry
	clock  *fakeClock
	logs   *logbuf.Buffer
}

// setup starts h behind an httptest server and returns a token-authenticated
// client of it, with a fake clock, debug logs captured and tiny backoffs.
func setup(t *testing.T, h http.Handler, mods ...func(*Options)) *bundle {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := &bundle{server: srv, reg: prometheus.NewRegistry(), clock: newFakeClock(), logs: &logbuf.Buffer{}}
	opts := Options{
		BaseURL:        srv.URL,
		Token:          testToken,
		Registerer:     b.reg,
		Logger:         slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  4 * time.Millisecond,
		Timeout:        10 * time.Second,
		clock:          b.clock,
	}
	for _, m := range mods {
		m(&opts)
	}
	c, err := New(opts)
	require.NoError(t, err)
	b.client = c
	return b
}

// fakeClock is a manual clock. Waits shorter than a second (backoffs) fire
// at once; longer ones (rate limits, always at least a second) fire when the
// test advances the clock past them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	waits  []time.Duration
}

type fakeTimer struct {
	at      time.Time
	ch      chan time.Time
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d < time.Second {
		ch <- c.now
		return ch, func() {}
	}
	c.waits = append(c.waits, d)
	t := &fakeTimer{at: c.now.Add(d), ch: ch}
	c.timers = append(c.timers, t)
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.stopped = true
	}
}

// Advance moves the clock and fires the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.ch <- c.now
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// Pending is the number of waits (of a second or more) in progress.
func (c *fakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// Waits are the durations of every wait of a second or more requested.
func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// waitPending polls until n waits are in progress.
func waitPending(t *testing.T, c *fakeClock, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return c.Pending() == n }, 5*time.Second, time.Millisecond,
		"want %d pending waits", n)
}

// metric returns the value of a counter or gauge with exactly these labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, want) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

// metricsText is every metric of reg, names, labels and values.
func metricsText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	var lines []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			lines = append(lines, f.GetName()+" "+m.String())
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func runnerJSON(id int64, name, status string, busy bool) map[string]any {
	return map[string]any{
		"id": id, "name": name, "os": "linux", "status": status, "busy": busy,
		"runner_group_id": 3, "ephemeral": true,
		"labels": []map[string]any{{"id": 1, "name": "self-hosted", "type": "read-only"}, {"id": 2, "name": "linux", "type": "custom"}},
	}
}
