package scenarios

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

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
	out, err := exec.CommandContext(ctx, "docker", "ps", "-q",
		"--filter", "label="+backend.LabelManager+"="+manager,
		"--filter", "label="+backend.LabelGroup+"="+group).Output()
	if err != nil {
		return 0, err
	}
	return len(strings.Fields(string(out))), nil
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
			t.Fatalf("%d of %d jobs not completed within %s (first: %d)", len(pending), len(ids), within, pending[0])
		}
		time.Sleep(500 * time.Millisecond)
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
		if stats, err := sys.FakeStats(ctx); err == nil {
			if r, _ := stats["runners"].(map[string]any); r != nil {
				if n, _ := r["registered"].(float64); n > 0 {
					problems = append(problems, fmt.Sprintf("registered at GitHub=%v", n))
				}
			}
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
