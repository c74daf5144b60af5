package scenarios

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// TestLowGitHubBudget (scenario 12, issue 16 item 1): GitHub's budget is
// near zero for a window of many pass intervals (90 s here, 18 health passes
// of 5 s and 90 reconcile passes of 1 s; the 10 minutes scaled down):
// the low-priority calls of the health checks stop at the reserve, the calls
// that start runners spend it. Queued jobs and the warm pool are still served
// as far as the budget allows, no pass takes longer than its interval, and
// the gauge, the counters and one log line per pass say why steps were
// skipped. Every job completes once the window ends.
func TestLowGitHubBudget(t *testing.T) {
	const (
		healthInterval = 5 * time.Second
		window         = 90 * time.Second
		reserve        = 30
	)
	sys := start(t, harness.Options{
		GitHubApp:           true,
		Groups:              []config.RunnerGroup{harness.DockerGroup("small", 6, 2, smallLabels...)},
		HealthCheckInterval: healthInterval,
		TimeToStart:         time.Minute,
		FakeArgs:            []string{"--seed", "12"},
		Configure:           func(c *config.Config) { c.GitHub.APIReserve = reserve },
	})
	rep := newReport(t, sys)
	watch := watchLimits(t, sys)
	ctx := context.Background()

	// The warm pool is up before the window.
	eventually(t, 2*time.Minute, 500*time.Millisecond, func() bool {
		rs, err := sys.Runners(ctx)
		return err == nil && len(rs) >= 2
	}, "the warm pool (min_runners 2) registered")

	// 40 calls left for 90 s: the reserve (30) is for the calls that start
	// runners; the health checks' calls stop at it after a few passes.
	require.NoError(t, sys.SetFaults(ctx, map[string]any{"api_budget_seconds": int(window / time.Second), "api_budget_remaining": 40}))
	windowStart := time.Now()
	ids := queueJobs(t, sys, 8, "app", smallLabels, 2*time.Second)

	eventually(t, window, 500*time.Millisecond, func() bool {
		return metricSum(t, sys, "runner_manager_health_steps_skipped_total") > 0
	}, "the health checks skip their GitHub steps at the reserve")
	low, _, ok := metricRange(t, sys, "runner_manager_github_rate_limit_remaining")
	require.True(t, ok, "a process exposes the rate-limit gauge")
	require.LessOrEqual(t, low, float64(2*reserve), "the gauge shows the low budget")
	require.Positive(t, metricSum(t, sys, "runner_manager_github_rate_limit_refusals_total"), "calls refused, not waited for")
	servedInWindow := completedJobs(sys)
	t.Logf("in the low-budget window: %d of %d jobs completed after %s", servedInWindow, len(ids), time.Since(windowStart).Round(time.Second))
	require.Positive(t, servedInWindow, "jobs are served within the budget left")

	waitJobs(t, sys, ids, window+3*time.Minute)
	allJobsOnce(t, sys, ids)
	// The window runs to its end (every pass meanwhile faces it): the
	// scheduler's gauge shows the full budget again.
	eventually(t, window+time.Minute, 500*time.Millisecond, func() bool {
		_, high, ok := metricRange(t, sys, "runner_manager_github_rate_limit_remaining")
		return ok && high > 1000
	}, "the window ends and the budget is back")
	require.GreaterOrEqual(t, time.Since(windowStart), window-time.Second)
	// The warm pool is topped up again after the jobs.
	eventually(t, 2*time.Minute, 500*time.Millisecond, func() bool {
		rs, err := sys.Runners(ctx)
		idle := 0
		for _, r := range rs {
			if r.Status == "online" && !r.Busy {
				idle++
			}
		}
		return err == nil && idle >= 2
	}, "the warm pool is back")
	watch.Stop()

	// No pass took longer than its interval: every health pass logged its
	// duration, none ended on its deadline, and every reconcile pass fits
	// the 1 s bucket of its histogram.
	log := filepath.Join(sys.Opts.Dir, "scheduler-0.log")
	passes, longest, skippedLines, overran := healthPasses(t, log)
	t.Logf("health passes: %d, longest %s, %d 'steps skipped' lines", passes, longest, skippedLines)
	require.Greater(t, passes, int(window/healthInterval)/2)
	require.Less(t, longest, healthInterval, "no health pass longer than its interval")
	require.Zero(t, overran, "no pass ended on its deadline")
	require.GreaterOrEqual(t, skippedLines, 5, "a log line per pass says why steps were skipped")
	fits, count := reconcileBucket(t, sys, "1")
	require.Positive(t, count)
	require.Equal(t, count, fits, "every reconcile pass within its 1 s interval")
	rep.Done(len(ids))
}

// healthPasses reads the scheduler's log: the number of health passes done,
// the longest, the lines saying GitHub steps were skipped, and the passes
// that ran into their deadline.
func healthPasses(t *testing.T, path string) (passes int, longest time.Duration, skipped, overran int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var line struct {
			Msg       string          `json:"msg"`
			Component string          `json:"component"`
			Duration  json.RawMessage `json:"duration"`
			Error     string          `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case line.Msg == "health pass done":
			passes++
			d := parseDuration(t, line.Duration)
			longest = max(longest, d)
		case line.Msg == "GitHub rate limited: steps skipped":
			skipped++
		case line.Msg == "work under lease failed" && strings.Contains(line.Error, "deadline exceeded"):
			overran++
		}
	}
	require.NoError(t, sc.Err())
	return passes, longest, skipped, overran
}

// parseDuration reads a slog duration: nanoseconds, or a Go duration string.
func parseDuration(t *testing.T, raw json.RawMessage) time.Duration {
	t.Helper()
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return time.Duration(n)
	}
	var s string
	require.NoError(t, json.Unmarshal(raw, &s))
	d, err := time.ParseDuration(s)
	require.NoError(t, err)
	return d
}

// metricRange is the smallest and the largest value of a gauge (any labels
// but the App's own budget) among the service processes that expose it.
func metricRange(t *testing.T, sys *harness.System, name string) (low, high float64, found bool) {
	t.Helper()
	for _, line := range scrapeAll(t, sys) {
		// A series with labels (the budget gauge carries the installation)
		// counts under its name. The App's own calls (installation="app",
		// JWT-authenticated) have a budget of their own that the fault
		// does not lower: it would show a full budget all along.
		f := strings.Fields(line)
		if len(f) != 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"{")) ||
			strings.Contains(f[0], `installation="app"`) {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		if !found {
			low, high, found = v, v, true
		}
		low, high = min(low, v), max(high, v)
	}
	return low, high, found
}

// scrapeAll returns the metric lines of every service process.
func scrapeAll(t *testing.T, sys *harness.System) []string {
	t.Helper()
	var lines []string
	for _, u := range sys.ServiceURLs() {
		resp, err := http.Get(strings.TrimRight(u, "/") + "/metrics")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		lines = append(lines, strings.Split(string(body), "\n")...)
	}
	return lines
}

// reconcileBucket returns, summed over the schedulers, the reconcile passes
// in the histogram bucket le and all of them.
func reconcileBucket(t *testing.T, sys *harness.System, le string) (in, all float64) {
	t.Helper()
	const name = "runner_manager_scheduler_reconcile_pass_duration_seconds"
	for _, line := range scrapeAll(t, sys) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case name + `_bucket{le="` + le + `"}`:
			in += v
		case name + "_count":
			all += v
		}
	}
	return in, all
}
