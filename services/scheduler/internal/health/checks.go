package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// records are the runner records of one pass, by group (configured groups
// and groups that still have runners).
type records struct {
	groups []string
	byName map[string]state.Runner
	byGrp  map[string][]state.Runner
}

func (c *Checker) records(ctx context.Context) (records, error) {
	recs := records{byName: map[string]state.Runner{}, byGrp: map[string][]state.Runner{}}
	seen := map[string]bool{}
	for _, g := range c.cfg.RunnerGroups {
		if !seen[g.Name] {
			seen[g.Name] = true
			recs.groups = append(recs.groups, g.Name)
		}
	}
	var errs []error
	recorded, err := c.store.RecordedGroups(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	sort.Strings(recorded)
	for _, g := range recorded {
		if !seen[g] {
			seen[g] = true
			recs.groups = append(recs.groups, g)
		}
	}
	for _, g := range recs.groups {
		rs, err := c.store.Runners(ctx, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs.byGrp[g] = rs
		for _, r := range rs {
			recs.byName[r.Name] = r
		}
	}
	return recs, errors.Join(errs...)
}

// scope is where the runners of a configured group register.
func scope(g *config.RunnerGroup) github.Scope {
	if g.Repository != "" {
		return github.RepoScope(g.Organization, g.Repository)
	}
	return github.OrgScope(g.Organization)
}

// runnerList is one scope's runners at GitHub, listed once per pass.
type runnerList struct {
	byName map[string]github.Runner
	all    []github.Runner
	err    error
	// absent counts, for each recorded runner of the scope that this
	// listing lacks, the consecutive listings it was absent from.
	absent map[string]int
}

// confirmedAbsent tells whether the runner called name is absent from this
// listing and was from the one before: GitHub pages runner lists by offset,
// and with churn an entry can shift between two pages and be missed once.
// Nothing is deleted on one listing's word that a runner is gone.
func (l *runnerList) confirmedAbsent(name string) bool {
	_, listed := l.byName[name]
	return !listed && l.absent[name] >= 2
}

// confirmAbsence records, for every listed scope, the runners with a record
// that its listing lacks (SeenAbsent), so that checks act on absence only
// once a second listing confirms it.
func (c *Checker) confirmAbsence(ctx context.Context, recs records, lists map[github.Scope]*runnerList) error {
	var errs []error
	done := map[github.Scope]bool{}
	for i := range c.cfg.RunnerGroups {
		sc := scope(&c.cfg.RunnerGroups[i])
		l := lists[sc]
		if l == nil || l.err != nil || done[sc] {
			continue
		}
		done[sc] = true
		var absent []string
		for j := range c.cfg.RunnerGroups {
			if scope(&c.cfg.RunnerGroups[j]) != sc {
				continue
			}
			for _, r := range recs.byGrp[c.cfg.RunnerGroups[j].Name] {
				if _, ok := l.byName[r.Name]; !ok && r.State != state.Deleting {
					absent = append(absent, r.Name)
				}
			}
		}
		n, err := c.store.SeenAbsent(ctx, sc.String(), absent)
		if err != nil {
			// Without the count, no absence is confirmed this pass.
			errs = append(errs, err)
			n = map[string]int{}
		}
		l.absent = n
	}
	return errors.Join(errs...)
}

// listRunners lists the runners of every scope of a configured group, once
// per scope. Nothing when there is no GitHub client.
func (c *Checker) listRunners(ctx context.Context) map[github.Scope]*runnerList {
	out := map[github.Scope]*runnerList{}
	if c.gh == nil {
		return out
	}
	for i := range c.cfg.RunnerGroups {
		sc := scope(&c.cfg.RunnerGroups[i])
		if _, ok := out[sc]; ok {
			continue
		}
		l := &runnerList{byName: map[string]github.Runner{}}
		l.all, l.err = c.gh.ListRunners(ctx, sc)
		if l.err != nil && !errors.Is(l.err, github.ErrRateLimited) { // rate limits: one line for the pass
			c.log.Warn("listing runners at GitHub failed: checks that need it skip this scope", "scope", sc.String(), "error", l.err)
		}
		for _, r := range l.all {
			l.byName[r.Name] = r
		}
		out[sc] = l
	}
	return out
}

func (c *Checker) count(check string, n int) {
	if n > 0 {
		c.m.Actions.WithLabelValues(check).Add(float64(n))
	}
}

// requestDelete is RequestDelete where a runner that moved on meanwhile is no error.
func (c *Checker) requestDelete(ctx context.Context, r state.Runner, from []state.State, reason string) (bool, error) {
	if _, err := c.store.RequestDelete(ctx, r.Name, from, reason); err != nil {
		if errors.Is(err, state.ErrState) || errors.Is(err, state.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	c.log.Info("runner deleting", "runner", r.Name, "group", r.Group, "state", r.State, "reason", reason,
		"age", c.store.Now().Sub(r.CreatedAt))
	return true, nil
}

// timeToLive deletes every runner older than time_to_live, busy ones included
// (check 2).
func (c *Checker) timeToLive(ctx context.Context, recs records, rep *Report) error {
	now := c.store.Now()
	var errs []error
	for _, g := range recs.groups {
		for _, r := range recs.byGrp[g] {
			if r.State == state.Deleting || r.CreatedAt.IsZero() || now.Sub(r.CreatedAt) < c.cfg.TimeToLive {
				continue
			}
			ok, err := c.requestDelete(ctx, r, []state.State{state.Pending, state.Started, state.Idle, state.Busy}, state.ReasonTimeToLive)
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				rep.TimeToLive = append(rep.TimeToLive, r.Name)
			}
		}
	}
	c.count(CheckTimeToLive, len(rep.TimeToLive))
	return errors.Join(errs...)
}

// timeToStart deletes pending and started runners older than time_to_start
// that GitHub does not show online, and marks idle those it shows online and
// not busy (check 1). A runner GitHub shows busy is never deleted here,
// online or not. Idle runners whose registration GitHub no longer lists are
// deleted too (reason registration_gone). Absence counts only once a second
// listing confirms it, and a scope that could not be listed is skipped:
// nothing is deleted without GitHub's word.
func (c *Checker) timeToStart(ctx context.Context, recs records, lists map[github.Scope]*runnerList, rep *Report) error {
	now := c.store.Now()
	var errs []error
	for i := range c.cfg.RunnerGroups {
		cg := &c.cfg.RunnerGroups[i]
		l := lists[scope(cg)]
		if l == nil || l.err != nil {
			continue
		}
		for _, r := range recs.byGrp[cg.Name] {
			if slices.Contains(rep.TimeToLive, r.Name) {
				continue
			}
			gr, registered := l.byName[r.Name]
			if r.State == state.Idle && l.confirmedAbsent(r.Name) && now.Sub(r.StateSince) >= c.opt.BusyGrace {
				// Idle means GitHub showed it online; a registration gone
				// since was used up (its in_progress and completed events
				// lost) or removed: it can take no job any more.
				ok, err := c.requestDelete(ctx, r, []state.State{state.Idle}, state.ReasonRegistrationGone)
				if err != nil {
					errs = append(errs, err)
				} else if ok {
					rep.RegistrationGone = append(rep.RegistrationGone, r.Name)
				}
				continue
			}
			if r.State != state.Pending && r.State != state.Started {
				continue
			}
			if registered && gr.Busy {
				// Runs a job, whatever its online status (GitHub reports a
				// busy runner offline for a while when it loses its
				// connection): its in_progress event is on its way, and
				// deleting it would kill the job.
				continue
			}
			if registered && gr.Online() {
				moved, err := c.store.MarkIdle(ctx, r.Name)
				if err != nil {
					errs = append(errs, err)
				} else if moved {
					rep.MarkedIdle = append(rep.MarkedIdle, r.Name)
				}
				continue
			}
			if r.CreatedAt.IsZero() || now.Sub(r.CreatedAt) < c.cfg.TimeToStart {
				continue
			}
			if !registered && !l.confirmedAbsent(r.Name) {
				continue // absent from one listing only: the next pass confirms
			}
			ok, err := c.requestDelete(ctx, r, []state.State{state.Pending, state.Started}, state.ReasonTimeToStart)
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				rep.TimeToStart = append(rep.TimeToStart, r.Name)
			}
		}
	}
	c.count(CheckTimeToStart, len(rep.TimeToStart))
	c.count(CheckMarkIdle, len(rep.MarkedIdle))
	c.count(CheckRegistrationGone, len(rep.RegistrationGone))
	return errors.Join(errs...)
}

// busyCompleted heals a lost completed event (check 6): a runner busy for
// longer than BusyGrace that GitHub shows not busy, or no longer lists (an
// ephemeral runner is deregistered after its job), has finished its job
// unless GitHub says the job still runs. Its job completes and the runner is
// deleted, as the completed event would have done.
func (c *Checker) busyCompleted(ctx context.Context, recs records, lists map[github.Scope]*runnerList, rep *Report) error {
	now := c.store.Now()
	var errs []error
	for i := range c.cfg.RunnerGroups {
		cg := &c.cfg.RunnerGroups[i]
		l := lists[scope(cg)]
		if l == nil || l.err != nil {
			continue
		}
		g, _ := command.Group(c.cfg, cg.Name)
		for _, r := range recs.byGrp[cg.Name] {
			if r.State != state.Busy || now.Sub(r.StateSince) < c.opt.BusyGrace || slices.Contains(rep.TimeToLive, r.Name) {
				continue
			}
			gr, listed := l.byName[r.Name]
			if listed && gr.Busy {
				continue
			}
			if !listed && !l.confirmedAbsent(r.Name) {
				continue // absent from one listing only: the next pass confirms
			}
			done, at, err := c.jobDone(ctx, r.JobID)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !done {
				continue
			}
			out, err := c.store.Completed(ctx, g, state.JobUpdate{JobID: r.JobID, RunnerName: r.Name, At: at})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c.counted(CheckTopUp, out.Reserved, rep)
			if out.Deleting == "" {
				// The job was completed already (its event named no runner,
				// or another one): delete the runner all the same.
				if _, err := c.requestDelete(ctx, r, []state.State{state.Busy}, state.ReasonJobCompleted); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			c.log.Warn("busy runner whose job is over: completed event lost, runner deleting",
				"runner", r.Name, "group", r.Group, "job_id", r.JobID)
			rep.BusyCompleted = append(rep.BusyCompleted, r.Name)
		}
	}
	c.count(CheckBusyCompleted, len(rep.BusyCompleted))
	return errors.Join(errs...)
}

// jobDone tells whether a busy runner's job is over: GitHub says completed,
// or the job cannot be looked up (repository unknown, or not found) while
// GitHub no longer shows its runner busy. A job GitHub says is still
// running is not done.
func (c *Checker) jobDone(ctx context.Context, jobID int64) (bool, time.Time, error) {
	if jobID == 0 {
		return true, time.Time{}, nil
	}
	owner, repo, err := c.store.JobRepository(ctx, jobID)
	if err != nil {
		return false, time.Time{}, err
	}
	if owner == "" || repo == "" || c.gh == nil {
		return true, time.Time{}, nil
	}
	j, err := c.gh.GetJob(ctx, owner, repo, jobID)
	switch {
	case errors.Is(err, github.ErrNotFound):
		return true, time.Time{}, nil
	case err != nil:
		return false, time.Time{}, fmt.Errorf("look up job %d: %w", jobID, err)
	case j.Done():
		return true, j.CompletedAt, nil
	}
	return false, time.Time{}, nil
}

// counted adds the runners a top-up reserved to the report and the metric.
func (c *Checker) counted(check string, reserved []string, rep *Report) {
	if len(reserved) == 0 {
		return
	}
	rep.Reserved = append(rep.Reserved, reserved...)
	c.count(check, len(reserved))
}

// staleJobs looks up at GitHub the jobs in demand for longer than
// time_to_start (check 6): completed ones drop their demand and complete,
// in_progress ones are applied as their lost event would have been, queued
// ones stay. Demand older than MaxQueueAge that cannot be looked up is
// dropped (GitHub cancels a job queued that long).
func (c *Checker) staleJobs(ctx context.Context, rep *Report) error {
	now := c.store.Now()
	cands, errs := c.staleCandidates(ctx, now)
	if len(cands) == 0 {
		return errors.Join(errs...)
	}
	checked, err := c.orderByCheck(ctx, cands, now)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	lookups := 0
	for _, cd := range cands {
		old := now.Sub(cd.d.QueuedAt) >= c.opt.MaxQueueAge
		j, next, lerrs := c.lookUpJob(ctx, cd, checked[cd.d.JobID], old, now, &lookups)
		errs = append(errs, lerrs...)
		if next == lookupStop {
			break
		}
		if next == lookupSkip {
			continue
		}
		applied, err := c.applyJobStatus(ctx, cd, j, old, rep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if applied {
			rep.StaleJobs = append(rep.StaleJobs, cd.d.JobID)
		}
	}
	c.count(CheckStaleJob, len(rep.StaleJobs))
	return errors.Join(errs...)
}

// staleJob is a job in a configured group's demand for time_to_start or more.
type staleJob struct {
	g  state.Group
	cg *config.RunnerGroup
	d  state.Demand
}

// staleCandidates returns the jobs in demand for time_to_start or more.
func (c *Checker) staleCandidates(ctx context.Context, now time.Time) ([]staleJob, []error) {
	var cands []staleJob
	var errs []error
	for i := range c.cfg.RunnerGroups {
		cg := &c.cfg.RunnerGroups[i]
		g, _ := command.Group(c.cfg, cg.Name)
		demand, err := c.store.Demand(ctx, cg.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range demand {
			if now.Sub(d.QueuedAt) >= c.cfg.TimeToStart {
				cands = append(cands, staleJob{g: g, cg: cg, d: d})
			}
		}
	}
	return cands, errs
}

// orderByCheck sorts cands in the order they are looked up at GitHub: never
// looked up first, then the least recently, then the oldest. It returns when
// each was last looked up (forgetting the checks older than twice
// MaxQueueAge).
func (c *Checker) orderByCheck(ctx context.Context, cands []staleJob, now time.Time) (map[int64]time.Time, error) {
	ids := make([]int64, len(cands))
	for i, cd := range cands {
		ids[i] = cd.d.JobID
	}
	checked, err := c.store.JobChecks(ctx, ids, now.Add(-2*c.opt.MaxQueueAge))
	if err != nil {
		return nil, err
	}
	sort.SliceStable(cands, func(i, j int) bool {
		ci, cj := checked[cands[i].d.JobID], checked[cands[j].d.JobID]
		if !ci.Equal(cj) {
			return ci.Before(cj)
		}
		return cands[i].d.QueuedAt.Before(cands[j].d.QueuedAt)
	})
	return checked, nil
}

// lookup says what staleJobs does with a job after lookUpJob.
type lookup int

const (
	lookupApply lookup = iota // act on what is known (the job may be nil: not looked up, or not found)
	lookupSkip                // leave the job to a later pass
	lookupStop                // stop this pass's lookups (rate limited)
)

// lookUpJob asks GitHub for the status of the stale job cd, unless it was
// looked up less than JobRecheck ago (and is not old) or this pass made
// MaxJobChecks lookups already; a job whose repository is unknown is not
// looked up. The lookup is recorded (JobChecked) whatever its answer.
func (c *Checker) lookUpJob(ctx context.Context, cd staleJob, last time.Time, old bool, now time.Time, lookups *int) (*github.Job, lookup, []error) {
	id := cd.d.JobID
	owner, repo, err := c.store.JobRepository(ctx, id)
	if err != nil {
		return nil, lookupSkip, []error{err}
	}
	if owner == "" && cd.cg.Repository != "" {
		owner, repo = cd.cg.Organization, cd.cg.Repository
	}
	if owner == "" || repo == "" || c.gh == nil {
		return nil, lookupApply, nil
	}
	if !last.IsZero() && now.Sub(last) < c.opt.JobRecheck && !old {
		return nil, lookupSkip, nil
	}
	if *lookups >= c.opt.MaxJobChecks {
		return nil, lookupSkip, nil
	}
	*lookups++
	j, err := c.gh.GetJob(ctx, owner, repo, id)
	if errors.Is(err, github.ErrRateLimited) {
		// Not looked up: the next pass tries again; the rest of this
		// pass's lookups would be refused too.
		return nil, lookupStop, []error{fmt.Errorf("look up job %d: %w", id, err)}
	}
	var errs []error
	if cerr := c.store.JobChecked(ctx, id, now); cerr != nil {
		errs = append(errs, cerr)
	}
	if err != nil && !errors.Is(err, github.ErrNotFound) {
		return nil, lookupSkip, append(errs, fmt.Errorf("look up job %d: %w", id, err))
	}
	return j, lookupApply, errs
}

// applyJobStatus applies what GitHub says of the stale job cd (j, nil when
// not looked up or not found): its lost completed or in_progress event, or,
// for an old job GitHub does not know, its end. It returns whether the job
// was acted on.
func (c *Checker) applyJobStatus(ctx context.Context, cd staleJob, j *github.Job, old bool, rep *Report) (bool, error) {
	id := cd.d.JobID
	switch {
	case j != nil && j.Status == github.JobCompleted:
		out, err := c.store.Completed(ctx, cd.g, state.JobUpdate{JobID: id, RunnerName: j.RunnerName, At: j.CompletedAt})
		if err != nil {
			return false, err
		}
		c.counted(CheckTopUp, out.Reserved, rep)
		c.log.Warn("job in demand is completed at GitHub: demand dropped (completed event lost)",
			"job_id", id, "group", cd.g.Name, "conclusion", j.Conclusion)
	case j != nil && j.Status == github.JobInProgress:
		out, err := c.store.InProgress(ctx, cd.g, state.JobUpdate{JobID: id, RunnerName: j.RunnerName, At: j.StartedAt})
		if err != nil {
			return false, err
		}
		c.counted(CheckTopUp, out.Reserved, rep)
		c.log.Warn("job in demand is in progress at GitHub: applied (in_progress event lost)",
			"job_id", id, "group", cd.g.Name, "runner", j.RunnerName)
	case j == nil && old:
		out, err := c.store.Completed(ctx, cd.g, state.JobUpdate{JobID: id})
		if err != nil {
			return false, err
		}
		c.counted(CheckTopUp, out.Reserved, rep)
		c.log.Warn("job queued longer than GitHub keeps a job queued, and not found at GitHub: demand dropped",
			"job_id", id, "group", cd.g.Name, "queued_at", cd.d.QueuedAt)
	default:
		return false, nil // still queued, or cannot tell yet
	}
	return true, nil
}

// gitHubOrphans removes from GitHub the registrations whose name has this
// manager's prefix, that have no record, are offline and not busy, and have
// been seen so for time_to_start (check 4).
func (c *Checker) gitHubOrphans(ctx context.Context, recs records, lists map[github.Scope]*runnerList, rep *Report) error {
	now := c.store.Now()
	prefix := c.cfg.Name + "-"
	scopes := make([]github.Scope, 0, len(lists))
	for sc := range lists {
		scopes = append(scopes, sc)
	}
	sort.Slice(scopes, func(i, j int) bool { return scopes[i].String() < scopes[j].String() })
	var errs []error
	for _, sc := range scopes {
		l := lists[sc]
		if l.err != nil {
			continue
		}
		var names []string
		candidate := map[string]bool{}
		for _, r := range l.all {
			if strings.HasPrefix(r.Name, prefix) && !r.Online() && !r.Busy {
				if _, ok := recs.byName[r.Name]; !ok {
					names = append(names, r.Name)
					candidate[r.Name] = true
				}
			}
		}
		// Records of runners created since the pass read them.
		have, err := c.store.Existing(ctx, names)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var seen []state.GitHubOrphan
		for _, r := range l.all {
			if candidate[r.Name] && !have[r.Name] {
				seen = append(seen, state.GitHubOrphan{ID: r.ID, Name: r.Name})
			}
		}
		first, err := c.store.SeenGitHubOrphans(ctx, sc.String(), seen)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range seen {
			since, ok := first[o]
			if !ok || now.Sub(since) < c.cfg.TimeToStart {
				continue
			}
			err := c.gh.DeleteRunner(ctx, sc, o.ID)
			switch {
			case errors.Is(err, github.ErrRunnerBusy):
				continue // took a job meanwhile: never removed while busy
			case err != nil && !errors.Is(err, github.ErrNotFound):
				errs = append(errs, fmt.Errorf("remove orphan registration %s: %w", o.Name, err))
				continue
			}
			if err := c.store.ForgetGitHubOrphan(ctx, sc.String(), o); err != nil {
				errs = append(errs, err)
			}
			c.log.Warn("registration without record, offline: removed from GitHub", "runner", o.Name, "id", o.ID,
				"scope", sc.String(), "orphan_since", since)
			rep.GitHubOrphans = append(rep.GitHubOrphans, o.Name)
		}
	}
	c.count(CheckGitHubOrphan, len(rep.GitHubOrphans))
	return errors.Join(errs...)
}

// topUp tops every configured group up to min_runners and its demand (check 7).
func (c *Checker) topUp(ctx context.Context, rep *Report) error {
	var errs []error
	for i := range c.cfg.RunnerGroups {
		g, _ := command.Group(c.cfg, c.cfg.RunnerGroups[i].Name)
		res, err := c.store.TopUp(ctx, g)
		if err != nil {
			errs = append(errs, err)
		}
		if len(res.Reserved) > 0 {
			c.log.Info("group topped up", "group", g.Name, "runners", res.Reserved)
		}
		c.counted(CheckTopUp, res.Reserved, rep)
	}
	return errors.Join(errs...)
}

// stuckDeleting emits again the delete of runners deleting with no news for
// longer than time_to_start (and twice the stream's reclaim time, so that a
// command still pending with a slow provisioner is not doubled): the command
// or its result was lost. The provisioner's delete is idempotent.
func (c *Checker) stuckDeleting(ctx context.Context, recs records, rep *Report) error {
	cutoff := c.store.Now().Add(-max(c.cfg.TimeToStart, 2*c.cfg.Streams.ReclaimMinIdle))
	var errs []error
	for _, g := range recs.groups {
		for _, r := range recs.byGrp[g] {
			if r.State != state.Deleting || !r.UpdatedAt.Before(cutoff) {
				continue
			}
			ok, err := c.store.RedeleteStale(ctx, r, cutoff)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				c.log.Warn("runner deleting for long without a result: delete emitted again", "runner", r.Name,
					"group", r.Group, "since", r.StateSince)
				rep.StuckDeleting = append(rep.StuckDeleting, r.Name)
			}
		}
	}
	c.count(CheckStuckDeleting, len(rep.StuckDeleting))
	return errors.Join(errs...)
}
