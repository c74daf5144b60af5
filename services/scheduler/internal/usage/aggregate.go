package usage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/keys"
)

// ErrWindow: a window that is not positive or longer than Retention.
var ErrWindow = errors.New("the window must be positive and at most " + Retention.String())

// Options configure an Aggregate; zero fields take the defaults.
type Options struct {
	// TopRepositories: repositories beyond this many (ranked by busy plus
	// idle seconds over the window) are folded into "other".
	TopRepositories int
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// Aggregate reads the usage buckets back.
type Aggregate struct {
	rdb  redis.UniversalClient
	keys keys.Keys
	opt  Options
}

// New returns the Aggregate of the manager whose keys are k.
func New(rdb redis.UniversalClient, k keys.Keys, opt Options) *Aggregate {
	opt.TopRepositories = cmp.Or(opt.TopRepositories, DefaultTopRepositories)
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Aggregate{rdb: rdb, keys: k, opt: opt}
}

// TopRepositories is how many repositories a report keeps apart.
func (a *Aggregate) TopRepositories() int { return a.opt.TopRepositories }

// hist is a histogram of the Bounds.
type hist struct {
	sumMS float64
	b     []int64
}

func (h *hist) add(o *hist) {
	h.sumMS += o.sumMS
	if h.b == nil {
		h.b = make([]int64, len(Bounds)+1)
	}
	for i, c := range o.b {
		h.b[i] += c
	}
}

func (h *hist) count() int64 {
	var n int64
	for _, c := range h.b {
		n += c
	}
	return n
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does:
// linear inside the bucket that holds it; the last bound for the open bucket.
func (h *hist) quantile(q float64) time.Duration {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var cum int64
	for i, c := range h.b {
		if c == 0 || float64(cum+c) < rank {
			cum += c
			continue
		}
		if i == len(Bounds) {
			return seconds(Bounds[len(Bounds)-1])
		}
		lo := 0.0
		if i > 0 {
			lo = Bounds[i-1]
		}
		return seconds(lo + (Bounds[i]-lo)*(rank-float64(cum))/float64(c))
	}
	return seconds(Bounds[len(Bounds)-1])
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

type stats struct {
	busyMS, idleMS float64
	runners, jobs  int64
	wait, boot     hist
}

func (s *stats) add(o *stats) {
	s.busyMS += o.busyMS
	s.idleMS += o.idleMS
	s.runners += o.runners
	s.jobs += o.jobs
	s.wait.add(&o.wait)
	s.boot.add(&o.boot)
}

// set records one field's value.
func (s *stats) set(kind string, v float64) {
	switch kind {
	case "busy":
		s.busyMS += v
	case "idle":
		s.idleMS += v
	case "runners":
		s.runners += int64(v)
	case "jobs":
		s.jobs += int64(v)
	case "wait":
		s.wait.sumMS += v
	case "boot":
		s.boot.sumMS += v
	default:
		name, idx, ok := strings.Cut(kind, ".")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || i < 0 || i > len(Bounds) {
			return
		}
		h := &s.wait
		if name == "boot" {
			h = &s.boot
		} else if name != "wait" {
			return
		}
		if h.b == nil {
			h.b = make([]int64, len(Bounds)+1)
		}
		h.b[i] += int64(v)
	}
}

// window is what read found.
type window struct {
	from, to time.Time
	series   map[Series]*stats
}

// read sums the buckets that hold the last since.
func (a *Aggregate) read(ctx context.Context, since time.Duration) (window, error) {
	if since <= 0 || since > Retention {
		return window{}, ErrWindow
	}
	now := a.opt.Now()
	first := BucketStart(now.Add(-since))
	last := BucketStart(now)
	step := int64(Bucket / time.Second)
	pipe := a.rdb.Pipeline()
	var cmds []*redis.MapStringStringCmd
	for t := first; t <= last; t += step {
		cmds = append(cmds, pipe.HGetAll(ctx, a.keys.Usage(t)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return window{}, fmt.Errorf("read usage buckets: %w", err)
	}
	w := window{from: time.Unix(first, 0), to: now, series: map[Series]*stats{}}
	for _, c := range cmds {
		for f, v := range c.Val() {
			kind, s, ok := parseField(f)
			if !ok || kind == "s" {
				continue
			}
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			st := w.series[s]
			if st == nil {
				st = &stats{}
				w.series[s] = st
			}
			st.set(kind, n)
		}
	}
	return w, nil
}

// Row is one series of a Report.
type Row struct {
	Series
	// Jobs that started in the window.
	Jobs int64 `json:"jobs"`
	// BusySeconds: runner-seconds running the series' jobs (completed in the window).
	BusySeconds float64 `json:"busy_seconds"`
	// IdleSeconds: runner-seconds booting and idle, of Runners runners
	// whose free time ended in the window.
	IdleSeconds float64 `json:"idle_seconds"`
	Runners     int64   `json:"runners"`
	// Boots: runners whose boot time (create command -> online) is known.
	Boots          int64   `json:"boots"`
	BootP50Seconds float64 `json:"boot_p50_seconds"`
	BootP95Seconds float64 `json:"boot_p95_seconds"`
	// Waits: jobs whose wait (queued -> in_progress) is known.
	Waits          int64   `json:"waits"`
	WaitP50Seconds float64 `json:"wait_p50_seconds"`
	WaitP95Seconds float64 `json:"wait_p95_seconds"`
}

// Report is GET /api/v1/usage.
type Report struct {
	// From is the start of the first bucket read (up to one bucket before
	// the window asked for), To the time of the report.
	From            time.Time `json:"from"`
	To              time.Time `json:"to"`
	BucketSeconds   int       `json:"bucket_seconds"`
	TopRepositories int       `json:"top_repositories"`
	Rows            []Row     `json:"rows"`
}

// Report returns the window's rows: repositories beyond the top
// TopRepositories (by busy plus idle seconds) folded into "other" per group,
// sorted by group, then runner-seconds (busy plus idle), most first.
func (a *Aggregate) Report(ctx context.Context, since time.Duration) (Report, error) {
	w, err := a.read(ctx, since)
	if err != nil {
		return Report{}, err
	}
	top := topRepositories(w.series, a.opt.TopRepositories)
	folded := map[Series]*stats{}
	for s, st := range w.series {
		if s.Repository != "" && !top[s.Repository] {
			s.Repository, s.Workflow = Other, Other
		}
		f := folded[s]
		if f == nil {
			f = &stats{}
			folded[s] = f
		}
		f.add(st)
	}
	rows := make([]Row, 0, len(folded))
	for s, st := range folded {
		rows = append(rows, Row{
			Series: s, Jobs: st.jobs, BusySeconds: st.busyMS / 1000, IdleSeconds: st.idleMS / 1000, Runners: st.runners,
			Boots: st.boot.count(), BootP50Seconds: st.boot.quantile(0.5).Seconds(), BootP95Seconds: st.boot.quantile(0.95).Seconds(),
			Waits: st.wait.count(), WaitP50Seconds: st.wait.quantile(0.5).Seconds(), WaitP95Seconds: st.wait.quantile(0.95).Seconds(),
		})
	}
	slices.SortFunc(rows, func(x, y Row) int {
		return cmp.Or(
			strings.Compare(x.Group, y.Group),
			cmp.Compare(y.BusySeconds+y.IdleSeconds, x.BusySeconds+x.IdleSeconds),
			strings.Compare(x.Repository, y.Repository),
			strings.Compare(x.Workflow, y.Workflow),
		)
	})
	return Report{From: w.from, To: w.to, BucketSeconds: int(Bucket / time.Second), TopRepositories: a.opt.TopRepositories, Rows: rows}, nil
}

// TopRepositoriesOf returns the top TopRepositories repositories of the last since.
func (a *Aggregate) TopRepositoriesOf(ctx context.Context, since time.Duration) (map[string]bool, error) {
	w, err := a.read(ctx, since)
	if err != nil {
		return nil, err
	}
	return topRepositories(w.series, a.opt.TopRepositories), nil
}

// topRepositories ranks the repositories by busy plus idle milliseconds
// (then name) and returns the first n; "" and Other are never ranked.
func topRepositories(series map[Series]*stats, n int) map[string]bool {
	ms := map[string]float64{}
	for s, st := range series {
		if s.Repository != "" && s.Repository != Other {
			ms[s.Repository] += st.busyMS + st.idleMS
		}
	}
	repos := make([]string, 0, len(ms))
	for r := range ms {
		repos = append(repos, r)
	}
	slices.SortFunc(repos, func(x, y string) int { return cmp.Or(cmp.Compare(ms[y], ms[x]), strings.Compare(x, y)) })
	out := map[string]bool{}
	for _, r := range repos[:min(n, len(repos))] {
		out[r] = true
	}
	return out
}

// GroupWaits is one group's jobs and waits over a window.
type GroupWaits struct {
	Group         string
	Jobs          int
	JobsPerMinute float64
	// WaitP50 and WaitP95 are estimated from the histogram of Bounds
	// (linear inside a bucket), over the jobs whose wait is known.
	WaitP50, WaitP95 time.Duration
}

// Waits returns, per group that started a job in the window, the jobs that
// started, their rate per minute (over the buckets read, which begin up
// to one Bucket before the window) and the p50 and p95 of their wait
// (queued -> in_progress). Groups are sorted by name; a group without a job
// in the window is absent.
func (a *Aggregate) Waits(ctx context.Context, since time.Duration) ([]GroupWaits, error) {
	w, err := a.read(ctx, since)
	if err != nil {
		return nil, err
	}
	byGroup := map[string]*stats{}
	for s, st := range w.series {
		g := byGroup[s.Group]
		if g == nil {
			g = &stats{}
			byGroup[s.Group] = g
		}
		g.add(st)
	}
	minutes := w.to.Sub(w.from).Minutes()
	out := []GroupWaits{}
	for g, st := range byGroup {
		if st.jobs == 0 {
			continue
		}
		gw := GroupWaits{Group: g, Jobs: int(st.jobs), WaitP50: st.wait.quantile(0.5), WaitP95: st.wait.quantile(0.95)}
		if minutes > 0 {
			gw.JobsPerMinute = float64(st.jobs) / minutes
		}
		out = append(out, gw)
	}
	slices.SortFunc(out, func(x, y GroupWaits) int { return strings.Compare(x.Group, y.Group) })
	return out, nil
}
