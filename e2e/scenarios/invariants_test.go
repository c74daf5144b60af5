package scenarios

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/keys"
)

// start runs a system for one scenario and closes it at cleanup, printing
// the logs' location when the test failed.
func start(t *testing.T, o harness.Options) *harness.System {
	t.Helper()
	if o.Name == "" {
		o.Name = "e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "_", "-"))
		if len(o.Name) > 20 {
			o.Name = o.Name[:20]
		}
		o.Name = strings.TrimRight(o.Name, "-")
	}
	o.Dir = t.TempDir()
	o.BinDir = binDir
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys, err := harness.Start(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, o.Dir)
		}
		sys.Close()
	})
	return sys
}

func dumpLogs(t *testing.T, dir string) {
	out, _ := exec.Command("bash", "-c", "tail -n 40 "+dir+"/*.log").CombinedOutput()
	t.Logf("last log lines:\n%s", out)
}

// limitWatch samples, until stopped, the number of containers and records of
// each group and fails the test when one exceeds the group's max_runners.
type limitWatch struct {
	t       *testing.T
	stop    chan struct{}
	done    sync.WaitGroup
	mu      sync.Mutex
	max     map[string]int
	samples int
	errs    []string
}

func watchLimits(t *testing.T, sys *harness.System) *limitWatch {
	w := &limitWatch{t: t, stop: make(chan struct{}), max: map[string]int{}}
	for _, g := range sys.Opts.Groups {
		w.max[g.Name] = g.MaxRunners
	}
	k := keys.New(sys.Opts.Name)
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for g, max := range w.max {
				n, err := containersOfGroup(ctx, sys.Opts.Name, g)
				if err == nil && n > max {
					w.fail("group %s: %d containers > max_runners %d", g, n, max)
				}
				r, err := sys.RedisClient().ZCard(ctx, k.GroupRunners(g)).Result()
				if err == nil && int(r) > max {
					w.fail("group %s: %d records > max_runners %d", g, r, max)
				}
			}
			cancel()
			w.mu.Lock()
			w.samples++
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *limitWatch) fail(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, fmt.Sprintf(format, args...))
}

// Stop ends the sampling and reports every violation seen.
func (w *limitWatch) Stop() {
	close(w.stop)
	w.done.Wait()
	w.t.Logf("limit watch: %d samples", w.samples)
	require.Empty(w.t, w.errs, "max_runners exceeded")
}

func containersOfGroup(ctx context.Context, manager, group string) (int, error) {
	d, err := harness.Docker()
	if err != nil {
		return 0, err
	}
	cs, err := d.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs( // running ones only
		filters.Arg("label", backend.LabelManager+"="+manager),
		filters.Arg("label", backend.LabelGroup+"="+group))})
	return len(cs), err
}

// waitJobs waits until every job is completed at the fake GitHub.
func waitJobs(t *testing.T, sys *harness.System, ids []int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	pending := append([]int64(nil), ids...)
	for len(pending) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var left []int64
		for _, id := range pending {
			j, err := sys.Job(ctx, id)
			if err != nil || j.Status != "completed" {
				left = append(left, id)
			}
		}
		cancel()
		pending = left
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			explainJobs(t, sys, pending)
			t.Fatalf("%d of %d jobs not completed within %s (first: %d)", len(pending), len(ids), within, pending[0])
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// explainJobs logs, for the first jobs that did not complete, what the fake
// GitHub and the scheduler know of each and every log line that names it or
// its runner: the last lines of the logs, which a failed test prints, were
// written minutes after such a job went astray.
func explainJobs(t *testing.T, sys *harness.System, ids []int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k := keys.New(sys.Opts.Name)
	for _, id := range ids[:min(3, len(ids))] {
		j, err := sys.Job(ctx, id)
		rec, rerr := sys.RedisClient().HGetAll(ctx, k.Job(id)).Result()
		t.Logf("job %d at the fake GitHub: %+v (err %v); its record in Redis: %v (err %v)", id, j, err, rec, rerr)
		args := []string{"-h", "-w", "-e", strconv.FormatInt(id, 10)}
		if j.RunnerName != "" {
			args = append(args, "-e", j.RunnerName)
		}
		logs, _ := filepath.Glob(filepath.Join(sys.Opts.Dir, "*.log"))
		out, _ := exec.Command("grep", append(args, logs...)...).CombinedOutput()
		t.Logf("log lines that name job %d or its runner:\n%s", id, out)
	}
}

// settled waits until nothing of the manager is left: no container, no
// record, no runner registered at the fake GitHub, nothing pending in the
// streams, and an empty DLQ.
func settled(t *testing.T, sys *harness.System, within time.Duration) {
	t.Helper()
	k := keys.New(sys.Opts.Name)
	rdb := sys.RedisClient()
	var last string
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var problems []string
		if ids, err := sys.Containers(ctx); err != nil || len(ids) > 0 {
			problems = append(problems, fmt.Sprintf("containers=%d err=%v", len(ids), err))
		}
		if names, _ := rdb.Keys(ctx, k.Runner("*")).Result(); len(names) > 0 {
			problems = append(problems, fmt.Sprintf("records=%d", len(names)))
		}
		if stats, err := sys.FakeStats(ctx); err != nil {
			problems = append(problems, fmt.Sprintf("fake GitHub stats: %v", err))
		} else if n, ok := stats["runners_registered"].(float64); !ok || n > 0 {
			problems = append(problems, fmt.Sprintf("registered at GitHub=%v", stats["runners_registered"]))
		}
		for _, s := range []string{k.Events(), k.Provision("docker")} {
			for _, g := range groupsOf(ctx, rdb, s) {
				if g.Pending > 0 {
					problems = append(problems, fmt.Sprintf("%s/%s pending=%d", s, g.Name, g.Pending))
				}
			}
		}
		if n, _ := rdb.XLen(ctx, k.DLQ()).Result(); n > 0 {
			problems = append(problems, fmt.Sprintf("dlq=%d", n))
		}
		cancel()
		if len(problems) == 0 {
			return
		}
		last = strings.Join(problems, ", ")
		if time.Now().After(deadline) {
			t.Fatalf("not settled within %s: %s", within, last)
		}
		time.Sleep(time.Second)
	}
}

// queueJobs queues n jobs of duration d with labels at the fake GitHub.
func queueJobs(t *testing.T, sys *harness.System, n int, repo string, labels []string, d time.Duration) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		id, err := sys.QueueJob(ctx, repo, labels, d)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return ids
}

// scenarioReport measures one scenario: its duration and the GitHub API calls
// it cost per job (from the fake's /_fake/stats).
type scenarioReport struct {
	t     *testing.T
	sys   *harness.System
	begin time.Time
}

func newReport(t *testing.T, sys *harness.System) *scenarioReport {
	return &scenarioReport{t: t, sys: sys, begin: time.Now()}
}

// Done logs the summary line of the scenario for jobs jobs.
func (r *scenarioReport) Done(jobs int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := r.sys.Stats(ctx)
	require.NoError(r.t, err)
	var total int64
	routes := make([]string, 0, len(st.APICalls))
	for route, n := range st.APICalls {
		total += n
		routes = append(routes, fmt.Sprintf("%s=%d", route, n))
	}
	sort.Strings(routes)
	perJob := 0.0
	if jobs > 0 {
		perJob = float64(total) / float64(jobs)
	}
	r.t.Logf("SCENARIO %s: duration=%s jobs=%d github_api_calls=%d per_job=%.2f runners_total=%d webhooks_sent=%d dropped=%d faults=%v",
		r.t.Name(), time.Since(r.begin).Round(time.Second), jobs, total, perJob, st.RunnersTotal, st.WebhooksSent, st.WebhooksDropped, st.Faults)
	r.t.Logf("API calls by route: %s", strings.Join(routes, " "))
}

// consistent waits until the manager's containers, its records and the
// runners registered at the fake GitHub name the same runners, want of them
// per group (nil: none at all), with nothing pending in the streams and an
// empty DLQ; it returns the runners' names.
func consistent(t *testing.T, sys *harness.System, want map[string]int, within time.Duration) []string {
	t.Helper()
	k := keys.New(sys.Opts.Name)
	rdb := sys.RedisClient()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var problems []string
		containers, err := sys.ContainerRunners(ctx)
		if err != nil {
			problems = append(problems, err.Error())
		}
		recordKeys, err := rdb.Keys(ctx, k.Runner("*")).Result()
		if err != nil {
			problems = append(problems, err.Error())
		}
		records := map[string]bool{}
		for _, key := range recordKeys {
			records[strings.TrimPrefix(key, k.Runner(""))] = true
		}
		registered := map[string]bool{}
		if rs, err := sys.Runners(ctx); err != nil {
			problems = append(problems, err.Error())
		} else {
			for _, r := range rs {
				registered[r.Name] = true
			}
		}
		for name, st := range containers {
			if !records[name] {
				problems = append(problems, fmt.Sprintf("container %s (%s) without a record", name, st))
			}
			if st != "running" {
				problems = append(problems, fmt.Sprintf("container %s is %s", name, st))
			}
		}
		for name := range records {
			if _, ok := containers[name]; !ok {
				problems = append(problems, fmt.Sprintf("record %s without a container", name))
			}
			if !registered[name] {
				problems = append(problems, fmt.Sprintf("record %s not registered at GitHub", name))
			}
		}
		for name := range registered {
			if !records[name] {
				problems = append(problems, fmt.Sprintf("runner %s registered at GitHub without a record", name))
			}
		}
		total := 0
		for g, n := range want {
			total += n
			if c, err := rdb.ZCard(ctx, k.GroupRunners(g)).Result(); err != nil || int(c) != n {
				problems = append(problems, fmt.Sprintf("group %s counts %d runners, want %d (err %v)", g, c, n, err))
			}
		}
		if len(records) != total {
			problems = append(problems, fmt.Sprintf("%d records, want %d", len(records), total))
		}
		for _, s := range []string{k.Events(), k.Provision("docker")} {
			for _, g := range groupsOf(ctx, rdb, s) {
				if g.Pending > 0 {
					problems = append(problems, fmt.Sprintf("%s/%s pending=%d", s, g.Name, g.Pending))
				}
			}
		}
		if n, _ := rdb.XLen(ctx, k.DLQ()).Result(); n > 0 {
			problems = append(problems, fmt.Sprintf("dlq=%d", n))
		}
		cancel()
		if len(problems) == 0 {
			names := make([]string, 0, len(records))
			for n := range records {
				names = append(names, n)
			}
			sort.Strings(names)
			return names
		}
		if time.Now().After(deadline) {
			sort.Strings(problems)
			t.Fatalf("not consistent within %s: %s", within, strings.Join(problems, "; "))
		}
		time.Sleep(time.Second)
	}
}

// allJobsOnce checks that every job completed successfully, each on its own
// runner (an ephemeral runner runs one job).
func allJobsOnce(t *testing.T, sys *harness.System, ids []int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	byRunner := map[string]int64{}
	for _, id := range ids {
		j, err := sys.Job(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "completed", j.Status, "job %d", id)
		require.Equal(t, "success", j.Conclusion, "job %d ran on %s", id, j.RunnerName)
		if other, dup := byRunner[j.RunnerName]; dup {
			t.Fatalf("runner %s ran jobs %d and %d", j.RunnerName, other, id)
		}
		byRunner[j.RunnerName] = id
	}
}

// metricSum sums a metric over every service process.
func metricSum(t *testing.T, sys *harness.System, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sum float64
	for _, u := range sys.ServiceURLs() {
		v, err := harness.Metric(ctx, u, name)
		if err == nil {
			sum += v
		}
	}
	return sum
}
