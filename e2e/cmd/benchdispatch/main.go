// Command benchdispatch measures the scheduler's dispatch (docs/benchmarks.md,
// figures 2, 3 and 5): it starts a redis-server and the real scheduler
// binary (1, 2 or 3 replicas) on loopback, the provisioner-bench binary (the
// provisioner runtime over the in-memory backend, with the real GitHub client
// against the fake GitHub, whose runner group ids the scheduler resolves too), publishes queued workflow_job events
// straight to {P}:events, and measures
//   - burst: N events at once for groups with room; the time until the last
//     create command is acknowledged by the provisioner, and event → create
//     command delays (stream entry ids);
//   - paced: events at a fixed rate, one XADD each; the same delays without
//     a backlog;
//   - memory: N queued events with no provisioner; Redis's used_memory and
//     MEMORY USAGE by kind of key per pending job and per runner;
//   - the resident memory of every process at idle and its peak under load,
//     and the CPU time of the schedulers and Redis per job.
//
// It writes a Markdown fragment (-md) for scripts/bench.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/e2e/bench"
	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/keys"
)

type options struct {
	bin, dir, md string
	jobs, groups int
	replicas     []int
	pacedJobs    int
	pacedRate    float64
	memJobs      int
	timeout      time.Duration
}

func main() {
	var o options
	var replicas string
	flag.StringVar(&o.bin, "bin", "bin", "directory of the scheduler and fakegithub binaries (make build)")
	flag.StringVar(&o.dir, "dir", "", "directory for configurations and logs (default: a new temporary one)")
	flag.StringVar(&o.md, "md", "", "write the Markdown results to this file")
	flag.IntVar(&o.jobs, "jobs", 10000, "queued events of the burst")
	flag.IntVar(&o.groups, "groups", 4, "runner groups sharing the burst (max_runners = jobs/groups each)")
	flag.StringVar(&replicas, "replicas", "1,2,3", "scheduler replica counts of the burst, comma-separated (empty: no burst)")
	flag.IntVar(&o.pacedJobs, "paced-jobs", 2000, "events of the paced run (0: skip)")
	flag.Float64Var(&o.pacedRate, "paced-rate", 200, "events per second of the paced run")
	flag.IntVar(&o.memJobs, "memory-jobs", 10000, "queued events of the Redis memory run (0: skip)")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bound of each wait")
	flag.Parse()
	for _, f := range strings.Split(replicas, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 8 {
			fmt.Fprintf(os.Stderr, "benchdispatch: bad -replicas %q\n", replicas)
			os.Exit(2)
		}
		o.replicas = append(o.replicas, n)
	}
	if o.jobs < 1 || o.groups < 1 || o.jobs > 1_000_000 || o.memJobs > 1_000_000 || o.pacedJobs > 1_000_000 {
		fmt.Fprintln(os.Stderr, "benchdispatch: -jobs, -groups, -memory-jobs, -paced-jobs out of range")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "benchdispatch:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "benchdispatch-")
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
	o.bin = bin
	var md strings.Builder
	fmt.Fprintf(&md, "Machine: %s.\n\n", bench.Machine())

	var bursts []result
	for _, r := range o.replicas {
		res, err := dispatch(ctx, o, r, 0, o.jobs)
		if err != nil {
			return fmt.Errorf("burst with %d replicas: %w", r, err)
		}
		bursts = append(bursts, res)
	}
	writeBursts(&md, o, bursts)
	if len(bursts) > 0 {
		writeRedisCommands(&md, bursts[0])
	}

	if o.pacedJobs > 0 {
		res, err := dispatch(ctx, o, 1, o.pacedRate, o.pacedJobs)
		if err != nil {
			return fmt.Errorf("paced run: %w", err)
		}
		writePaced(&md, o, res)
	}
	if len(bursts) > 0 {
		writeRSS(&md, bursts[0])
	}
	if o.memJobs > 0 {
		mem, err := memoryRun(ctx, o)
		if err != nil {
			return fmt.Errorf("memory run: %w", err)
		}
		writeMemory(&md, o, mem, bursts)
	}
	fmt.Print(md.String())
	if o.md != "" {
		if err := os.WriteFile(o.md, []byte(md.String()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.md, err)
		}
	}
	return nil
}

// result is one dispatch run.
type result struct {
	replicas, jobs int
	rate           float64
	// publish: time to append every event; lastCommand: from the first
	// event's entry to the last create command's entry; acked: from the
	// start of publishing until the provisioner had acknowledged every
	// create command; recorded: until the schedulers had handled every
	// created result.
	publish, lastCommand, acked, recorded time.Duration
	lat                                   []time.Duration
	commands, missing, extra              int
	cpu                                   map[string]time.Duration
	idleRSS, peakRSS                      map[string]int64
	loadBefore, loadAfter                 string
	keys                                  map[string]bench.KeyUsage
	redisCmds                             map[string]bench.CommandStat
}

func groupsOf(o options, jobs int, prefix string) ([]config.RunnerGroup, [][]string) {
	n := o.groups
	var gs []config.RunnerGroup
	var labels [][]string
	for i := range n {
		l := []string{"self-hosted", "linux", fmt.Sprintf("%s-%d", prefix, i)}
		gs = append(gs, harness.DockerGroup(fmt.Sprintf("%s-%d", prefix, i), (jobs+n-1)/n, 0, l...))
		labels = append(labels, l)
	}
	return gs, labels
}

func configure(c *config.Config) {
	// Nothing but dispatch during the run: no health check or runner
	// timeout fires.
	c.HealthCheckInterval = time.Hour
	c.TimeToStart = 2 * time.Hour
	c.TimeToLive = 3 * time.Hour
}

func dispatch(ctx context.Context, o options, replicas int, rate float64, jobs int) (result, error) {
	res := result{replicas: replicas, jobs: jobs, rate: rate}
	name := fmt.Sprintf("bench%d", replicas)
	if rate > 0 {
		name = "benchpaced"
	}
	dir := filepath.Join(o.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	gs, labels := groupsOf(o, jobs, "g")
	sys, err := harness.Start(ctx, harness.Options{Name: name, Dir: dir, BinDir: o.bin, Groups: gs, Schedulers: replicas,
		NoIngress: true, ProductionDefaults: true, Configure: configure,
		Provisioner: "provisioner-bench", ProvisionerEnv: []string{"RM_BENCH_BACKEND=memory", "RM_BENCH_GITHUB=client"}})
	if err != nil {
		return res, err
	}
	defer sys.Close()
	rdb, k := sys.RedisClient(), keys.New(name)

	// Idle: every consumer group exists and the first reconcile passes ran.
	if err := waitGroups(ctx, sys, 15*time.Second); err != nil {
		return res, err
	}
	time.Sleep(2 * time.Second)
	pids := sys.Pids()
	pids["benchdispatch (publisher)"] = os.Getpid()
	res.idleRSS = map[string]int64{}
	for n, pid := range pids {
		if v, err := bench.RSS(pid); err == nil {
			res.idleRSS[n] = v
		}
	}
	cpu0 := cpuOf(pids)
	stats0, err := bench.CommandStats(ctx, rdb)
	if err != nil {
		return res, err
	}
	watch := bench.WatchRSS(pids, 100*time.Millisecond)

	js := make([]bench.Job, jobs)
	for i := range js {
		js[i] = bench.Job{ID: int64(1_000_000 + i), Repo: "bench", Labels: labels[i%len(labels)]}
	}
	res.loadBefore = bench.LoadAvg()
	fmt.Fprintf(os.Stderr, "== %s: %d jobs, %d scheduler replica(s), rate %v, load %s\n", name, jobs, replicas, rate, res.loadBefore)
	start := time.Now()
	var ids map[int64]string
	if rate > 0 {
		ids, err = bench.PublishPaced(ctx, rdb, k, js, rate)
	} else {
		ids, err = bench.PublishBurst(ctx, rdb, k, js)
	}
	if err != nil {
		return res, err
	}
	res.publish = time.Since(start)
	prvStream := k.Provision("docker")
	acked, err := bench.WaitGroup(ctx, rdb, prvStream, keys.ProvisionerGroup("docker"), int64(jobs), o.timeout)
	if err != nil {
		return res, err
	}
	res.acked = acked.Sub(start)
	recorded, err := bench.WaitGroup(ctx, rdb, k.Results(), keys.GroupScheduler, int64(jobs), o.timeout)
	if err != nil {
		return res, err
	}
	res.recorded = recorded.Sub(start)
	res.peakRSS = watch.Stop()
	cpu1 := cpuOf(pids)
	res.cpu = map[string]time.Duration{}
	for n := range cpu1 {
		res.cpu[n] = cpu1[n] - cpu0[n]
	}
	res.loadAfter = bench.LoadAvg()
	stats1, err := bench.CommandStats(ctx, rdb)
	if err != nil {
		return res, err
	}
	res.redisCmds = map[string]bench.CommandStat{}
	for c, st := range stats1 {
		if d := (bench.CommandStat{Calls: st.Calls - stats0[c].Calls, Usec: st.Usec - stats0[c].Usec}); d.Calls > 0 {
			res.redisCmds[c] = d
		}
	}

	cmds, total, err := bench.CreateCommands(ctx, rdb, prvStream)
	if err != nil {
		return res, err
	}
	res.commands = total
	res.extra = total - jobs
	res.lat, res.missing, err = bench.Latencies(ids, cmds)
	if err != nil {
		return res, err
	}
	var first, last time.Time
	for _, id := range ids {
		if t, _ := bench.IDTime(id); first.IsZero() || t.Before(first) {
			first = t
		}
	}
	for _, l := range cmds {
		for _, id := range l {
			if t, _ := bench.IDTime(id); t.After(last) {
				last = t
			}
		}
	}
	res.lastCommand = last.Sub(first)
	if res.keys, err = bench.MemoryByKind(ctx, rdb, k); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "   publish %s, last command %s, acked %s, recorded %s; p50 %s p99 %s max %s; %d commands, %d jobs without one; load %s\n",
		round(res.publish), round(res.lastCommand), round(res.acked), round(res.recorded),
		bench.Percentile(res.lat, 50), bench.Percentile(res.lat, 99), bench.Percentile(res.lat, 100),
		res.commands, res.missing, res.loadAfter)
	if res.missing > 0 || res.extra != 0 {
		return res, fmt.Errorf("%d create commands for %d jobs (%d jobs without one): the scheduler did not reserve exactly one runner per job", total, jobs, res.missing)
	}
	return res, nil
}

// waitGroups waits until the schedulers created their consumer groups.
func waitGroups(ctx context.Context, sys *harness.System, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		groups, err := sys.RedisClient().XInfoGroups(ctx, keys.New(sys.Opts.Name).Events()).Result()
		if err == nil && slices.ContainsFunc(groups, func(g redis.XInfoGroup) bool { return g.Name == keys.GroupScheduler }) {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the schedulers never created their consumer group")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cpuOf(pids map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for n, pid := range pids {
		if v, err := bench.CPU(pid); err == nil {
			out[n] = v
		}
	}
	return out
}

// memoryResult is the Redis memory run.
type memoryResult struct {
	jobs               int
	before, after      int64
	keys               map[string]bench.KeyUsage
	schedRSS, redisRSS int64
}

// memoryRun publishes N queued events for one group of max_runners N with no
// provisioner: every job stays pending with its runner reserved.
func memoryRun(ctx context.Context, o options) (memoryResult, error) {
	res := memoryResult{jobs: o.memJobs}
	dir := filepath.Join(o.dir, "benchmem")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	labels := []string{"self-hosted", "linux", "mem"}
	sys, err := harness.Start(ctx, harness.Options{Name: "benchmem", Dir: dir, BinDir: o.bin,
		Groups: []config.RunnerGroup{harness.DockerGroup("mem", o.memJobs, 0, labels...)}, Schedulers: 1,
		NoIngress: true, NoProvisioners: true, ProductionDefaults: true, Configure: configure})
	if err != nil {
		return res, err
	}
	defer sys.Close()
	rdb, k := sys.RedisClient(), keys.New("benchmem")
	if err := waitGroups(ctx, sys, 15*time.Second); err != nil {
		return res, err
	}
	time.Sleep(time.Second)
	if res.before, err = bench.UsedMemory(ctx, rdb); err != nil {
		return res, err
	}
	js := make([]bench.Job, o.memJobs)
	for i := range js {
		js[i] = bench.Job{ID: int64(2_000_000 + i), Repo: "bench", Labels: labels}
	}
	fmt.Fprintf(os.Stderr, "== memory: %d queued jobs, no provisioner, load %s\n", o.memJobs, bench.LoadAvg())
	if _, err := bench.PublishBurst(ctx, rdb, k, js); err != nil {
		return res, err
	}
	if _, err := bench.WaitGroup(ctx, rdb, k.Events(), keys.GroupScheduler, int64(o.memJobs), o.timeout); err != nil {
		return res, err
	}
	if res.after, err = bench.UsedMemory(ctx, rdb); err != nil {
		return res, err
	}
	if res.keys, err = bench.MemoryByKind(ctx, rdb, k); err != nil {
		return res, err
	}
	if n := res.keys["runner"].Keys; n != o.memJobs {
		return res, fmt.Errorf("%d runner records for %d queued jobs", n, o.memJobs)
	}
	res.schedRSS, _ = bench.RSS(sys.Schedulers[0].Pid())
	res.redisRSS, _ = bench.RSS(sys.Redis.Pid())
	return res, nil
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64) + " ms"
}

func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

func writeBursts(md *strings.Builder, o options, rs []result) {
	fmt.Fprintf(md, "Burst: %d `queued` events appended to `{P}:events` at once (pipelines of 500 XADD), for %d groups of max_runners %d; real `scheduler` binaries; the `provisioner-bench` binary (the provisioner runtime over the in-memory backend, its GitHub client against the fake GitHub).\n\n",
		o.jobs, o.groups, (o.jobs+o.groups-1)/o.groups)
	md.WriteString("| scheduler replicas | publish all | last create command emitted | last create acknowledged | created results handled | jobs/s (acknowledged) | event → command p50 | p90 | p99 | max | scheduler CPU per 1,000 jobs | Redis CPU per 1,000 jobs | all processes: CPU / wall time | load average (before → after) |\n")
	md.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		var sched, all time.Duration
		for n, c := range r.cpu {
			if strings.HasPrefix(n, "scheduler") {
				sched += c
			}
			all += c
		}
		per := func(d time.Duration) string { return ms(d * 1000 / time.Duration(r.jobs)) }
		fmt.Fprintf(md, "| %d | %s | %s | **%s** | %s | %.0f | %s | %s | **%s** | %s | %s | %s | %.2f cores | %s → %s |\n",
			r.replicas, secs(r.publish), secs(r.lastCommand), secs(r.acked), secs(r.recorded),
			float64(r.jobs)/r.acked.Seconds(),
			ms(bench.Percentile(r.lat, 50)), ms(bench.Percentile(r.lat, 90)), ms(bench.Percentile(r.lat, 99)), ms(bench.Percentile(r.lat, 100)),
			per(sched), per(r.cpu["redis"]), all.Seconds()/r.recorded.Seconds(), r.loadBefore, r.loadAfter)
	}
	md.WriteString("\nCPU counts the schedulers, redis-server, the fake GitHub, the provisioner and this program (the publisher), from /proc/<pid>/stat.\n")
	md.WriteString("\nEvery run checks that exactly one create command was emitted per job (no job missed, none doubled). In a burst the event → command delay is mostly queueing behind the earlier events of the burst.\n\n")
}

func writeRedisCommands(md *strings.Builder, r result) {
	fmt.Fprintf(md, "Redis commands during the burst with %d replica(s) (INFO commandstats; scheduler, provisioner and publisher together), per job:\n\n", r.replicas)
	md.WriteString("| command | calls per job | µs in Redis per job | µs per call |\n|---|---|---|---|\n")
	names := make([]string, 0, len(r.redisCmds))
	for c := range r.redisCmds {
		names = append(names, c)
	}
	slices.SortFunc(names, func(a, b string) int { return int(r.redisCmds[b].Usec - r.redisCmds[a].Usec) })
	var calls, usec int64
	for _, c := range names {
		st := r.redisCmds[c]
		calls += st.Calls
		usec += st.Usec
		fmt.Fprintf(md, "| %s | %.2f | %.1f | %.1f |\n", c, float64(st.Calls)/float64(r.jobs), float64(st.Usec)/float64(r.jobs), float64(st.Usec)/float64(st.Calls))
	}
	fmt.Fprintf(md, "| **all** | %.2f | %.1f | |\n\n", float64(calls)/float64(r.jobs), float64(usec)/float64(r.jobs))
}

func writePaced(md *strings.Builder, o options, r result) {
	fmt.Fprintf(md, "Paced: %d events at %.0f/s (one XADD each), one scheduler replica, same setup:\n\n", r.jobs, r.rate)
	md.WriteString("| events | rate | event → command p50 | p90 | p99 | max | scheduler CPU per 1,000 jobs | load average (before → after) |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(md, "| %d | %.0f/s | %s | %s | **%s** | %s | %s | %s → %s |\n\n", r.jobs, r.rate,
		ms(bench.Percentile(r.lat, 50)), ms(bench.Percentile(r.lat, 90)), ms(bench.Percentile(r.lat, 99)), ms(bench.Percentile(r.lat, 100)),
		ms(r.cpu["scheduler-0"]*1000/time.Duration(r.jobs)), r.loadBefore, r.loadAfter)
	md.WriteString("Delays are differences of stream entry ids (Redis's clock, millisecond resolution).\n\n")
}

func writeRSS(md *strings.Builder, r result) {
	fmt.Fprintf(md, "Resident memory (VmRSS) during the burst with %d replica(s), sampled every 100 ms:\n\n", r.replicas)
	md.WriteString("| process | idle | peak under the burst |\n|---|---|---|\n")
	names := make([]string, 0, len(r.idleRSS))
	for n := range r.idleRSS {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(md, "| %s | %s | %s |\n", n, mib(r.idleRSS[n]), mib(r.peakRSS[n]))
	}
	md.WriteString("\n")
}

func writeMemory(md *strings.Builder, o options, m memoryResult, bursts []result) {
	n := int64(m.jobs)
	fmt.Fprintf(md, "Redis memory: %d `queued` events for one group of max_runners %d, no provisioner: each job ends up with a job record, a demand entry, and a reserved (`pending`) runner with its create command. `used_memory` %s → %s: **%d bytes per job** all included (the streams too).\n\n",
		m.jobs, m.jobs, mib(m.before), mib(m.after), (m.after-m.before)/n)
	md.WriteString("| keys (MEMORY USAGE, SAMPLES 0) | keys | bytes | bytes per job |\n|---|---|---|---|\n")
	kinds := make([]string, 0, len(m.keys))
	for kd := range m.keys {
		kinds = append(kinds, kd)
	}
	slices.Sort(kinds)
	for _, kd := range kinds {
		u := m.keys[kd]
		fmt.Fprintf(md, "| %s | %d | %d | %.0f |\n", kd, u.Keys, u.Bytes, float64(u.Bytes)/float64(n))
	}
	runner := float64(m.keys["runner"].Bytes+m.keys["group:runners"].Bytes+m.keys["group:free"].Bytes) / float64(n)
	pending := float64(m.keys["job"].Bytes+m.keys["group:demand"].Bytes) / float64(n)
	fmt.Fprintf(md, "\nPer **pending runner** (its record + its entries in the group's runner and free sets): **%.0f bytes**. Per **pending job** (its record + its demand entry): **%.0f bytes**. The streams are trimmed (MAXLEN ~ %d), so they are a bounded cost, not a per-runner one.\n\n",
		runner, pending, config.DefaultStreamMaxLen)
	if len(bursts) > 0 && bursts[0].keys != nil {
		b := bursts[0]
		rn := b.keys["runner"]
		if rn.Keys > 0 {
			fmt.Fprintf(md, "After the burst with %d replica(s) (runners created, with instance and GitHub ids): %d runner records, %.0f bytes each; group runner sets %.0f bytes per runner; job records %.0f bytes each.\n\n",
				b.replicas, rn.Keys, float64(rn.Bytes)/float64(rn.Keys), float64(b.keys["group:runners"].Bytes)/float64(rn.Keys),
				float64(b.keys["job"].Bytes)/float64(max(1, b.keys["job"].Keys)))
		}
	}
	fmt.Fprintf(md, "Resident memory with %d pending runners: scheduler %s, redis-server %s.\n\n", m.jobs, mib(m.schedRSS), mib(m.redisRSS))
}
