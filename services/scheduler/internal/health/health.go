// Package health runs the health checks of docs/design.md §7: every
// health_check_interval, by one scheduler replica at a time (lease
// {P}:lease:health), it finds what the event-driven path missed and repairs
// it through the state package, the only writer of runner state:
//
//  1. time_to_start: a pending or started runner older than time_to_start
//     that GitHub does not show online is deleted (compare-and-set, reason
//     time_to_start). A pending or started runner GitHub shows online and
//     not busy becomes idle; an idle runner whose registration GitHub no
//     longer lists is deleted (reason registration_gone).
//  2. time_to_live: a runner older than time_to_live is deleted whatever its
//     state, busy included: the TTL is a hard bound on a machine's life (a job
//     longer than it is cut, by design). A runner deleting with no news for
//     longer than time_to_start gets its delete again (reason stuck_deleting):
//     the command or its result was lost.
//  3. backend orphans: an instance with this manager's ownership label, no
//     record, older than time_to_start, is deleted (reason orphan). Decided on
//     the inventory result (HandleInventory).
//  4. GitHub orphans: a registration whose name has this manager's prefix,
//     no record, offline and not busy, is removed from GitHub once it has been
//     seen so for time_to_start (two sightings at least: GitHub gives no
//     registration time, and another manager whose name extends ours shares
//     the prefix).
//  5. vanished instances: a started, idle or busy runner whose instance is
//     missing from an inventory taken well after the runner was known to have
//     its instance gets a delete command (reason instance_vanished): the
//     provisioner removes the registration, and the deleted result removes
//     the record and releases the capacity, in the one place that does so.
//  6. stale jobs: a job in demand longer than time_to_start is looked up at
//     GitHub (each at most every JobRecheck): completed drops its demand (the
//     job record goes completed), in_progress is applied as its lost event
//     would have been. A busy runner that GitHub shows not busy (or gone) for
//     longer than BusyGrace, whose job GitHub says is completed (or cannot
//     tell), is handled as the lost completed event would have been: the job
//     completes and the runner is deleted.
//  7. every configured group is topped up to min_runners and its demand.
//  8. the organization runner groups at GitHub are created or updated to
//     match the configuration, and their ids stored for create commands.
//
// GitHub cost per pass: one runner listing per scope (every page), one runner
// group listing per organization, a job lookup only for jobs waiting too
// long (at most MaxJobChecks) and for suspect busy runners; every call has
// the client's low priority, so the health checks never spend the reserve
// kept for the calls that start runners.
//
// Backends are never called from the scheduler: checks 3 and 5 send a list
// command (rmv1.ListInstances) on each backend's provision stream and act on
// the inventory result one provisioner replica answers on {P}:results,
// handled by whichever replica reads it (HandleInventory, from dispatch).
//
// Every step may run twice (the lease is advisory; a result may be delivered
// twice): deletes are compare-and-set, orphan deletes and list commands are
// guarded by keys with a TTL, so a pass run twice emits no command twice.
package health

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// LeaseTask names the lease of the health checks: {P}:lease:health.
const LeaseTask = "health"

// Defaults of Options.
const (
	// DefaultBusyGrace: a busy runner is suspected of a lost completed event
	// only after this long in busy (GitHub marks a runner busy before the
	// in_progress event is sent, so a fresh busy record is never suspect).
	DefaultBusyGrace = 2 * time.Minute
	// DefaultVanishGrace: a record is compared with an inventory only when it
	// has had its instance this long before the inventory was taken (clock
	// skew between processes, eventually consistent cloud listings).
	DefaultVanishGrace = 2 * time.Minute
	// DefaultMaxQueueAge: GitHub cancels a job queued for 24 hours; demand
	// older than this that cannot be looked up is dropped.
	DefaultMaxQueueAge = 25 * time.Hour
	// DefaultMaxJobChecks bounds the job lookups of one pass.
	DefaultMaxJobChecks = 50
	// DefaultJobRecheck: a job still queued at GitHub is looked up again
	// after this long at the earliest.
	DefaultJobRecheck = 30 * time.Minute
	// DefaultRepositoriesRefresh: the selected repositories of a runner group
	// are set again after this long even when the configuration did not change.
	DefaultRepositoriesRefresh = 6 * time.Hour
	// repoIDCacheTTL is how long a resolved repository id is reused.
	repoIDCacheTTL = time.Hour
)

// GitHub is what the health checks call at GitHub (*github.Client implements it).
type GitHub interface {
	ListRunners(ctx context.Context, scope github.Scope) ([]github.Runner, error)
	DeleteRunner(ctx context.Context, scope github.Scope, id int64) error
	GetJob(ctx context.Context, owner, repo string, id int64) (*github.Job, error)
	ListRunnerGroups(ctx context.Context, org string) ([]github.RunnerGroup, error)
	CreateRunnerGroup(ctx context.Context, org string, s github.RunnerGroupSettings) (*github.RunnerGroup, error)
	UpdateRunnerGroup(ctx context.Context, org string, groupID int64, s github.RunnerGroupSettings) (*github.RunnerGroup, error)
	SetRunnerGroupRepositories(ctx context.Context, org string, groupID int64, repoIDs []int64) error
	GetRepositoryID(ctx context.Context, owner, repo string) (int64, error)
}

var _ GitHub = (*github.Client)(nil)

// Options configure a Checker. Config and Store are required.
type Options struct {
	// Config gives the groups, name, health_check_interval, time_to_start,
	// time_to_live and scheduler.lease_ttl.
	Config *config.Config
	// Store is the scheduler's state (its Commands encode the commands).
	Store *state.Store
	// GitHub; nil skips what needs GitHub (checks 1, 4, 6 and 8; 2, 3, 5 and 7 still run).
	GitHub GitHub
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Owner of the lease, unique per replica; random when empty.
	Owner string

	// Tuning; zero takes the Default above.
	BusyGrace           time.Duration
	VanishGrace         time.Duration
	MaxQueueAge         time.Duration
	MaxJobChecks        int
	JobRecheck          time.Duration
	RepositoriesRefresh time.Duration
}

// Checker runs the health checks.
type Checker struct {
	cfg   *config.Config
	store *state.Store
	gh    GitHub
	log   *slog.Logger
	m     *Metrics
	opt   Options

	mu      sync.Mutex
	repoIDs map[string]repoID // "owner/repo" -> id, cached
}

type repoID struct {
	id int64
	at time.Time
}

// New returns a Checker.
func New(opts Options) *Checker {
	opts.BusyGrace = cmp.Or(opts.BusyGrace, DefaultBusyGrace)
	opts.VanishGrace = cmp.Or(opts.VanishGrace, DefaultVanishGrace)
	opts.MaxQueueAge = cmp.Or(opts.MaxQueueAge, DefaultMaxQueueAge)
	opts.MaxJobChecks = cmp.Or(opts.MaxJobChecks, DefaultMaxJobChecks)
	opts.JobRecheck = cmp.Or(opts.JobRecheck, DefaultJobRecheck)
	opts.RepositoriesRefresh = cmp.Or(opts.RepositoriesRefresh, DefaultRepositoriesRefresh)
	if opts.Owner == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		opts.Owner = "health-" + hex.EncodeToString(b[:])
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checker{
		cfg: opts.Config, store: opts.Store, gh: opts.GitHub, opt: opts,
		log: log.With("component", "health"), m: NewMetrics(opts.Registerer),
		repoIDs: map[string]repoID{},
	}
}

// Run runs a pass at once and then every health_check_interval while this
// replica holds the lease {P}:lease:health, until ctx is cancelled. Another
// replica takes over within scheduler.lease_ttl when the holder dies. A pass
// has health_check_interval to run: its GitHub calls end by GitHubShare of
// it (a rate-limit wait beyond fails them at once), so that the steps that
// need no GitHub call (top-ups) always run.
func (c *Checker) Run(ctx context.Context) error {
	le := c.store.Lease(LeaseTask, c.opt.Owner, c.cfg.Scheduler.LeaseTTL)
	le.Logger = c.log
	interval := c.cfg.HealthCheckInterval
	return le.Run(ctx, interval, func(ctx context.Context) error {
		start := time.Now()
		ctx, cancel := context.WithDeadline(ctx, start.Add(interval))
		defer cancel()
		ctx = github.WithCallDeadline(ctx, start.Add(GitHubShare(interval)))
		_, err := c.RunOnce(ctx)
		return err
	})
}

// GitHubShare is the part of a pass's interval its GitHub calls may take
// (three quarters): the rest is kept for the steps that need no GitHub call.
func GitHubShare(interval time.Duration) time.Duration { return interval * 3 / 4 }

// Report is what one pass did: the runners, jobs and groups acted on, by check.
type Report struct {
	// TimeToStart: runners deleted for not coming online in time (check 1).
	TimeToStart []string
	// MarkedIdle: runners GitHub shows online and not busy, moved to idle.
	MarkedIdle []string
	// RegistrationGone: idle runners GitHub no longer lists, deleted.
	RegistrationGone []string
	// StuckDeleting: runners deleting for long whose delete was emitted again.
	StuckDeleting []string
	// TimeToLive: runners deleted for their age (check 2).
	TimeToLive []string
	// GitHubOrphans: registrations removed from GitHub (check 4).
	GitHubOrphans []string
	// StaleJobs: jobs in demand whose status was taken from GitHub (check 6).
	StaleJobs []int64
	// BusyCompleted: busy runners whose job was over (lost completed, check 6).
	BusyCompleted []string
	// Reserved: runners reserved by the top-ups (check 7).
	Reserved []string
	// GroupsCreated and GroupsUpdated at GitHub (check 8).
	GroupsCreated []string
	GroupsUpdated []string
	// ListsSent: backends asked for their inventory (checks 3 and 5).
	ListsSent []string
	// Skipped: steps skipped, in part or whole, because GitHub rate limited
	// them (Step* names); the steps that need no GitHub call still ran.
	Skipped []string
}

// tracerName is the instrumentation scope of the health checks' spans.
const tracerName = "github.com/runner-manager/runner-manager/services/scheduler/internal/health"

// RunOnce runs one pass of every check, in a "health pass" span: the
// commands it emits carry that trace. A failing check, group or runner does
// not stop the others; the errors are returned joined.
func (c *Checker) RunOnce(ctx context.Context) (rep Report, err error) {
	start := time.Now()
	ctx, span := otel.Tracer(tracerName).Start(ctx, "health pass")
	defer func() {
		c.m.PassDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	ctx = github.WithPriority(ctx, github.PriorityLow)
	var (
		errs    []error
		limited []error
	)
	// A step that GitHub rate limited is skipped (in part or whole) and
	// said once for the pass, not one line per call; the others go on.
	add := func(step string, err error) {
		l, rest := github.SplitRateLimited(err)
		if step == "" { // a step that calls no GitHub: nothing to skip
			l, rest = nil, err
		}
		if len(l) > 0 {
			limited = append(limited, l...)
			rep.Skipped = append(rep.Skipped, step)
			c.m.StepsSkipped.WithLabelValues(step).Inc()
		}
		if rest != nil {
			errs = append(errs, rest)
		}
	}

	// 8 first: a group created now has its id in the next create command.
	add(StepRunnerGroups, c.syncGroups(ctx, &rep))

	records, err := c.records(ctx)
	add("", err)
	add("", c.timeToLive(ctx, records, &rep))
	add("", c.stuckDeleting(ctx, records, &rep))
	lists := c.listRunners(ctx)
	var listErrs []error
	for _, l := range lists {
		if l.err != nil && errors.Is(l.err, github.ErrRateLimited) {
			listErrs = append(listErrs, l.err)
		}
	}
	add(StepListRunners, errors.Join(listErrs...)) // the scopes not listed are skipped by the next checks
	add("", c.confirmAbsence(ctx, records, lists))
	add("", c.timeToStart(ctx, records, lists, &rep))
	add("", c.busyCompleted(ctx, records, lists, &rep))
	add(StepStaleJobs, c.staleJobs(ctx, &rep))
	add(StepGitHubOrphan, c.gitHubOrphans(ctx, records, lists, &rep))
	add("", c.requestInventories(ctx, records, &rep))
	add("", c.topUp(ctx, &rep))

	if len(limited) > 0 {
		attrs := []any{"steps", rep.Skipped, "error", limited[0].Error()}
		if reset, ok := github.RateLimitReset(limited[0]); ok {
			attrs = append(attrs, "reset", reset)
		}
		c.log.Warn("GitHub rate limited: steps skipped", attrs...)
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	err = errors.Join(errs...)
	c.log.Info("health pass done", "duration", time.Since(start),
		"time_to_start", len(rep.TimeToStart), "time_to_live", len(rep.TimeToLive),
		"marked_idle", len(rep.MarkedIdle), "registration_gone", len(rep.RegistrationGone),
		"stuck_deleting", len(rep.StuckDeleting), "github_orphans", len(rep.GitHubOrphans),
		"stale_jobs", len(rep.StaleJobs), "busy_completed", len(rep.BusyCompleted),
		"reserved", len(rep.Reserved), "groups_created", len(rep.GroupsCreated),
		"groups_updated", len(rep.GroupsUpdated), "lists_sent", rep.ListsSent, "skipped", rep.Skipped, "error", err)
	return rep, err
}
