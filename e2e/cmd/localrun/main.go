// Command localrun runs the whole system on this machine on embedded
// defaults — Redis, the fake GitHub simulating jobs, the ingress, the scheduler
// and provisioner-docker — and prints progress until it is stopped. `make run`
// calls it; it needs no credentials and no image registry.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin", "directory of the built binaries (make build)")
	dir := flag.String("dir", "", "directory for the configuration and logs (default: a new temporary one)")
	rate := flag.Float64("rate", 0.2, "jobs per second the fake GitHub queues")
	every := flag.Duration("every", 5*time.Second, "how often to print progress")
	fakePort := flag.Int("fake-port", 18080, "port of the fake GitHub")
	ingressPort := flag.Int("ingress-port", 18081, "port of the ingress")
	redisPort := flag.Int("redis-port", 16379, "port of redis-server")
	flag.Parse()

	if *dir == "" {
		d, err := os.MkdirTemp("", "runner-manager-local-")
		if err != nil {
			return err
		}
		*dir = d
	}
	absBin, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := harness.Options{
		Name:   "rm-local",
		Dir:    *dir,
		BinDir: absBin,
		Groups: []config.RunnerGroup{
			harness.DockerGroup("small", 4, 0, "self-hosted", "linux", "small"),
			harness.DockerGroup("large", 2, 1, "self-hosted", "linux", "large"),
		},
		HealthCheckInterval: time.Minute,
		TimeToStart:         2 * time.Minute,
		TimeToLive:          30 * time.Minute,
		FakeArgs: []string{
			"--simulate", fmt.Sprint(*rate),
			"--simulate-labels", "self-hosted,linux,small;self-hosted,linux,large",
			"--simulate-owner", harness.Org,
			"--simulate-repo", "demo",
		},
		FakePort: *fakePort, IngressPort: *ingressPort, RedisPort: *redisPort,
	}
	fmt.Printf("starting the local system (logs and config in %s)\n", *dir)
	sys, err := harness.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, *dir)
	}
	defer func() {
		fmt.Println("stopping: services, Redis, and the manager's containers")
		sys.Close()
	}()
	fmt.Printf("fake GitHub   %s   (control API: %s/_fake/stats)\n", sys.FakeURL, sys.FakeURL)
	fmt.Printf("ingress       %s/webhook\n", sys.IngressURL)
	fmt.Printf("admin API     %s/api/v1/groups   (Authorization: Bearer %s)\n", sys.SchedulerURLs[0], harness.DevAPIToken)
	fmt.Printf("status page   %s/   (paste the token %s into its login form)\n", sys.SchedulerURLs[0], harness.DevAPIToken)
	fmt.Printf("redis         %s\n", sys.RedisURL)
	fmt.Println("Ctrl-C stops everything.")

	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			fmt.Println(progress(ctx, sys))
		}
	}
}

// progress is one line: jobs per status at the fake GitHub, runners per state
// per group at the scheduler, and the manager's containers.
func progress(ctx context.Context, sys *harness.System) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "%s  jobs:", time.Now().Format("15:04:05"))
	if stats, err := sys.FakeStats(ctx); err == nil {
		jobs, _ := stats["jobs"].(map[string]any)
		for _, k := range []string{"queued", "in_progress", "completed"} {
			fmt.Fprintf(&b, " %s=%v", k, orZero(jobs[k]))
		}
	} else {
		fmt.Fprintf(&b, " (fake GitHub: %v)", err)
	}
	var groups struct {
		Groups []map[string]any `json:"groups"`
	}
	b.WriteString("  runners:")
	if err := sys.Admin(ctx, "GET", "/api/v1/groups", &groups); err == nil {
		for _, g := range groups.Groups {
			fmt.Fprintf(&b, " %v[%s demand=%v]", g["name"], states(g["runners"]), orZero(g["demand"]))
		}
	} else {
		fmt.Fprintf(&b, " (scheduler: %v)", err)
	}
	if ids, err := sys.Containers(ctx); err == nil {
		fmt.Fprintf(&b, "  containers=%d", len(ids))
	}
	return b.String()
}

func states(v any) string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func orZero(v any) any {
	if v == nil {
		return 0
	}
	return v
}
