package statuspage

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/runner-manager/runner-manager/libs/recent"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/api"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// Window is the time the page's rates, waits and failures cover.
const Window = time.Hour

// Bounds of what one page shows.
const (
	maxQueuedShown      = 20
	maxDeadLettersShown = 10
)

// barOrder is the order of the states in a group's bar: the runners doing
// work first, the ones on their way out last.
var barOrder = []state.State{state.Busy, state.Idle, state.Started, state.Pending, state.Deleting}

// data is what the page shows.
type data struct {
	Now         time.Time
	Refresh     int // seconds between refreshes
	Groups      []groupData
	Budgets     []Budget
	DeadLetters []api.DeadLetterView
	// DeadLetterTotal is the length of the DLQ.
	DeadLetterTotal int64
	// OtherRefusals are the refusals of no configured group (a forged or
	// stale group name, a listed location), by reason.
	OtherRefusals []count
}

type groupData struct {
	api.GroupView
	// Scale is the width of the bar in runners: max_runners, or more while
	// the group holds more (a lowered limit).
	Scale      int64
	Segments   []segment
	Queued     []queuedJob
	MoreQueued int
	// Waits is nil when no source knows this group's waits.
	Waits          *GroupWaits
	CreateFailures []count
	Refusals       []count
}

type segment struct {
	State state.State
	X, N  int64
}

type queuedJob struct {
	JobID    int64
	QueuedAt time.Time
	Wait     time.Duration
}

type count struct {
	What string
	N    int
}

// collect builds the page's data from the reads of the admin API, the
// scheduler's state store and the sources.
func (p *Page) collect(ctx context.Context) (*data, error) {
	now := p.opts.Now()
	d := &data{Now: now, Refresh: int(p.opts.Refresh / time.Second)}
	groups, err := p.opts.Admin.Groups(ctx)
	if err != nil {
		return nil, err
	}
	waits := p.waits(ctx)
	since := now.Add(-Window)
	failures, err := p.opts.Store.RecentCreateFailures(ctx)
	if err != nil {
		return nil, err
	}
	refusals, err := p.opts.Store.RecentRefusals(ctx)
	if err != nil {
		return nil, err
	}
	failedBy, refusedBy := recent.CountSince(failures, since), recent.CountSince(refusals, since)
	for _, g := range groups {
		gd, err := p.group(ctx, g, now)
		if err != nil {
			return nil, err
		}
		if w, ok := waits[g.Name]; ok {
			gd.Waits = &w
		}
		gd.CreateFailures, gd.Refusals = counts(failedBy[g.Name]), counts(refusedBy[g.Name])
		delete(refusedBy, g.Name)
		d.Groups = append(d.Groups, gd)
	}
	other := map[string]int{}
	for _, byReason := range refusedBy {
		for r, n := range byReason {
			other[r] += n
		}
	}
	d.OtherRefusals = counts(other)
	if d.DeadLetters, err = p.opts.Admin.DeadLetters(ctx, maxDeadLettersShown); err != nil {
		return nil, err
	}
	if d.DeadLetterTotal, err = p.opts.Store.DeadLetterCount(ctx); err != nil {
		return nil, err
	}
	if p.opts.Budgets != nil {
		d.Budgets = p.opts.Budgets.Budgets()
	}
	return d, nil
}

func (p *Page) group(ctx context.Context, g api.GroupView, now time.Time) (groupData, error) {
	gd := groupData{GroupView: g, Scale: max(int64(g.MaxRunners), g.Total, 1)}
	var x int64
	for _, s := range barOrder {
		n := g.Runners[s]
		gd.Segments = append(gd.Segments, segment{State: s, X: x, N: n})
		x += n
	}
	gd.Scale = max(gd.Scale, x)
	demand, err := p.opts.Store.Demand(ctx, g.Name)
	if err != nil {
		return gd, err
	}
	for i, q := range demand {
		if i == maxQueuedShown {
			gd.MoreQueued = len(demand) - i
			break
		}
		gd.Queued = append(gd.Queued, queuedJob{JobID: q.JobID, QueuedAt: q.QueuedAt, Wait: max(now.Sub(q.QueuedAt), 0)})
	}
	return gd, nil
}

// waits asks the wait source; none, or a failing one, is "no data".
func (p *Page) waits(ctx context.Context) map[string]GroupWaits {
	if p.opts.Waits == nil {
		return nil
	}
	ws, err := p.opts.Waits.Waits(ctx, Window)
	if err != nil {
		p.opts.Logger.Warn("status page: waits unavailable", "error", err)
		return nil
	}
	out := make(map[string]GroupWaits, len(ws))
	for _, w := range ws {
		out[w.Group] = w
	}
	return out
}

// counts sorts a count by reason into the most frequent first.
func counts(m map[string]int) []count {
	out := make([]count, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, count{What: k, N: m[k]})
	}
	slices.SortStableFunc(out, func(a, b count) int { return cmp.Compare(b.N, a.N) })
	return out
}
