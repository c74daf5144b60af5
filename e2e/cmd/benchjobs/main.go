// Command benchjobs counts the GitHub API calls the system makes per job
// (docs/benchmarks.md, figure 4). It starts a redis-server, the fake GitHub,
// the real ingress and scheduler binaries on loopback, and the
// provisioner-bench binary: the provisioner runtime with the real GitHub
// client (libs/github) over a backend that runs each runner as a fake runner
// (libs/github/fakerunner) in a goroutine instead of a container. It queues N jobs at the fake GitHub, which sends
// the webhooks to the ingress, waits until every job completed and every
// runner was deleted, and reads the fake's API call counters per route.
//
// It writes a Markdown fragment (-md) for scripts/bench.sh.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/runner-manager/runner-manager/e2e/bench"
	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

type options struct {
	bin, dir, md string
	jobs, max    int
	duration     float64
	health       time.Duration
	timeout      time.Duration
	brokenMax    int
	settle       time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory of the scheduler, ingress and fakegithub binaries (make build)")
	flag.StringVar(&o.dir, "dir", "", "directory for configurations and logs (default: a new temporary one)")
	flag.StringVar(&o.md, "md", "", "write the Markdown results to this file")
	flag.IntVar(&o.jobs, "jobs", 1000, "jobs to run")
	flag.IntVar(&o.max, "max-runners", 100, "max_runners of the group")
	flag.Float64Var(&o.duration, "job-seconds", 1, "how long each job runs")
	flag.DurationVar(&o.health, "health-interval", 15*time.Second, "health_check_interval of the configuration")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound of the whole run")
	flag.IntVar(&o.brokenMax, "broken-max", 0, "add a group \"broken\" (organization "+brokenOrg+") with min_runners = max_runners = N whose creates fail for good")
	flag.DurationVar(&o.settle, "min-duration", 0, "keep the run going at least this long (the broken group keeps failing meanwhile)")
	flag.Parse()
	if o.jobs < 1 || o.jobs > 100_000 || o.max < 1 {
		fmt.Fprintln(os.Stderr, "benchjobs: -jobs or -max-runners out of range")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "benchjobs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "benchjobs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	labels := []string{"self-hosted", "linux", "jobs"}
	groups := []config.RunnerGroup{harness.DockerGroup("jobs", o.max, 0, labels...)}
	if o.brokenMax > 0 {
		g := harness.DockerGroup("broken", o.brokenMax, 0, "self-hosted", "linux", "broken")
		g.Organization, g.MinRunners = brokenOrg, o.brokenMax
		groups = append(groups, g)
	}
	sys, err := harness.Start(ctx, harness.Options{
		Name: "benchjobs", Dir: o.dir, BinDir: bin, Schedulers: 1, ProductionDefaults: true,
		Groups: groups,
		Configure: func(c *config.Config) {
			c.HealthCheckInterval = o.health
		},
		Provisioner: "provisioner-bench",
		ProvisionerEnv: []string{"RM_BENCH_BACKEND=runners", "RM_BENCH_GITHUB=client",
			"RM_BENCH_BROKEN_GROUPS=broken"},
	})
	if err != nil {
		return err
	}
	defer sys.Close()
	prov := sys.ProvisionerURLs[0]
	instances := func() (int, error) {
		n, err := harness.Metric(ctx, prov, "runner_manager_bench_instances")
		return int(n), err
	}

	before, err := stats(ctx, sys.FakeURL)
	if err != nil {
		return err
	}
	pids := sys.Pids()
	idle := map[string]int64{}
	for n, pid := range pids {
		if v, err := bench.RSS(pid); err == nil {
			idle[n] = v
		}
	}
	watch := bench.WatchRSS(pids, 100*time.Millisecond)
	load0 := bench.LoadAvg()
	fmt.Fprintf(os.Stderr, "== %d jobs of %.1f s, max_runners %d, health checks every %s, load %s\n", o.jobs, o.duration, o.max, o.health, load0)
	start := time.Now()
	for i := range o.jobs {
		if err := queue(ctx, sys.FakeURL, fakegithub.JobSpec{Owner: harness.Org, Repo: "bench", Labels: labels, DurationSeconds: o.duration}); err != nil {
			return fmt.Errorf("queue job %d: %w", i, err)
		}
	}
	deadline := start.Add(o.timeout)
	var after fakegithub.Stats
	for {
		if after, err = stats(ctx, sys.FakeURL); err != nil {
			return err
		}
		left, err := instances()
		if err != nil {
			return err
		}
		if after.Jobs["completed"] >= o.jobs && left == 0 && time.Since(start) >= o.settle {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: jobs %v, %d instances left", o.timeout, after.Jobs, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	peak := watch.Stop()
	load1 := bench.LoadAvg()
	runners := after.RunnersTotal - before.RunnersTotal
	exits, err := harness.MetricBy(ctx, prov, "runner_manager_bench_runner_exits_total", "reason")
	if err != nil {
		return err
	}
	byOrg, err := harness.MetricBy(ctx, prov, "runner_manager_bench_github_calls_total", "org")
	if err != nil {
		return err
	}

	var md strings.Builder
	fmt.Fprintf(&md, "Machine: %s.\n\n", bench.Machine())
	fmt.Fprintf(&md, "%d jobs of %.0f s each queued at once at the fake GitHub (webhooks → real ingress → real scheduler), one group of max_runners %d, `health_check_interval` %s (the default is %s); the provisioner runtime and the real GitHub client run in the `provisioner-bench` binary, each runner is a fake runner in a goroutine of that process instead of a container. All done (jobs completed, runners deleted) in %s; %d runners registered; load average %s → %s.\n\n",
		o.jobs, o.duration, o.max, o.health, config.DefaultHealthCheckInterval, elapsed.Round(100*time.Millisecond), runners, load0, load1)
	md.WriteString("| route | calls | per job | per runner |\n|---|---|---|---|\n")
	routes := make([]string, 0, len(after.APICalls))
	var total int64
	for r, n := range after.APICalls {
		if d := n - before.APICalls[r]; d > 0 {
			routes = append(routes, r)
			total += d
		}
	}
	slices.Sort(routes)
	for _, r := range routes {
		d := after.APICalls[r] - before.APICalls[r]
		fmt.Fprintf(&md, "| `%s` | %d | %.3f | %.3f |\n", r, d, float64(d)/float64(o.jobs), float64(d)/float64(max(1, runners)))
	}
	fmt.Fprintf(&md, "| **all** | %d | **%.2f** | %.2f |\n\n", total, float64(total)/float64(o.jobs), float64(total)/float64(max(1, runners)))
	fmt.Fprintf(&md, "Health-check rounds in the run: about %d (%s / %s). Runner processes ended: %v.\n\n",
		int(elapsed/o.health), elapsed.Round(time.Second), o.health, exits)
	if o.brokenMax > 0 {
		// The provisioner's calls (JIT configuration, registration deletes)
		// by organization: the healthy group's are "per job"; the broken
		// group's are what it burns over the run.
		healthy, broken := int64(byOrg[harness.Org]), int64(byOrg[brokenOrg])
		fmt.Fprintf(&md, "Provisioner GitHub calls by group over %s: healthy group `jobs` (%s) %d, **%.2f per job**; broken group `broken` (%s, min_runners = max_runners = %d, every create fails for good) %d, %.1f per minute.\n\n",
			elapsed.Round(time.Second), harness.Org, healthy, float64(healthy)/float64(o.jobs), brokenOrg, o.brokenMax, broken, float64(broken)/elapsed.Minutes())
	}
	md.WriteString("Resident memory (VmRSS, sampled every 100 ms) of the services during this run:\n\n| process | idle | peak |\n|---|---|---|\n")
	names := make([]string, 0, len(idle))
	for n := range idle {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&md, "| %s | %.1f MiB | %.1f MiB |\n", n, float64(idle[n])/(1<<20), float64(peak[n])/(1<<20))
	}
	md.WriteString("\n")
	fmt.Print(md.String())
	if o.md != "" {
		if err := os.WriteFile(o.md, []byte(md.String()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.md, err)
		}
	}
	return nil
}

// brokenOrg is the organization of the broken group, so that its calls are
// told apart from the healthy group's.
const brokenOrg = "broken-org"

func stats(ctx context.Context, base string) (fakegithub.Stats, error) {
	var s fakegithub.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_fake/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("fake GitHub stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("decode the fake GitHub stats: %w", err)
	}
	return s, nil
}

func queue(ctx context.Context, base string, spec fakegithub.JobSpec) error {
	body, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/_fake/jobs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /_fake/jobs: %s", resp.Status)
	}
	return nil
}
