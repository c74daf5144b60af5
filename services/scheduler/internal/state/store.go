package state

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/lease"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

// Defaults of Options.
const (
	DefaultMaxLen       = 100_000
	DefaultJobRetention = 72 * time.Hour
	// DefaultActiveJobTTL bounds the life of a job record that never completed
	// (its completed event was lost): GitHub cancels a job queued for 24 h and
	// stops one that runs for 5 days on a self-hosted runner.
	DefaultActiveJobTTL = 7 * 24 * time.Hour
	// DefaultBatch is how many candidates a script gets at first; a script
	// that needs more says so and the method calls TopUp again.
	DefaultBatch = 2
	// maxTopUpRounds bounds the TopUp calls of one method (each reserves at least one runner).
	maxTopUpRounds = 64
)

// ErrNoCommands is returned by methods that must encode a command when the
// Store has no Commands.
var ErrNoCommands = errors.New("state: no Commands configured")

// Options configure a Store; zero fields take the defaults above.
type Options struct {
	// Commands encodes the commands the scripts emit. Required by every
	// method that reserves or deletes runners.
	Commands Commands
	// MaxLen trims the command streams with MAXLEN ~.
	MaxLen int64
	// JobRetention keeps a completed job's record (idempotency of late events).
	JobRetention time.Duration
	// ActiveJobTTL bounds the life of a queued or in-progress job's record.
	ActiveJobTTL time.Duration
	// Batch is the number of candidates given to a script at first.
	Batch int
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
	// Usage, when set, is given what each script added to the usage
	// aggregate (for the Prometheus metrics: only the replica that ran the
	// script sees it).
	Usage func([]usage.Observation)
}

// Store reads and changes the scheduler's state in Redis. It is safe for
// concurrent use, by any number of replicas.
type Store struct {
	rdb  redis.UniversalClient
	keys keys.Keys
	opt  Options
}

// New returns a Store of the manager whose keys are k.
func New(rdb redis.UniversalClient, k keys.Keys, opt Options) *Store {
	opt.MaxLen = cmp.Or(opt.MaxLen, DefaultMaxLen)
	opt.JobRetention = cmp.Or(opt.JobRetention, DefaultJobRetention)
	opt.ActiveJobTTL = cmp.Or(opt.ActiveJobTTL, DefaultActiveJobTTL)
	opt.Batch = cmp.Or(opt.Batch, DefaultBatch)
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Store{rdb: rdb, keys: k, opt: opt}
}

// Keys returns the key names the Store uses.
func (s *Store) Keys() keys.Keys { return s.keys }

// Lease returns the leader lease of the periodic task (libs/lease), held
// by owner for ttl at a time.
func (s *Store) Lease(task, owner string, ttl time.Duration) *lease.Lease {
	return lease.New(s.rdb, s.keys.Lease(task), owner, ttl)
}

// Usage returns the reader of the usage aggregate the scripts write
// ({P}:usage:<start>).
func (s *Store) Usage(opt usage.Options) *usage.Aggregate {
	return usage.New(s.rdb, s.keys, opt)
}

// Now returns the Store's clock.
func (s *Store) Now() time.Time { return s.opt.Now() }

func ms(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func fromMS(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// header returns the ARGV every script starts with (lua.go).
func (s *Store) header(now time.Time) []any {
	return []any{ms(now), s.opt.MaxLen, stream.FieldType, stream.FieldData, stream.FieldTraceparent}
}

// run runs sc, rendered for the Store's keys, with args (header first).
func (s *Store) run(ctx context.Context, sc *script, args ...any) *redis.Cmd {
	return sc.on(s.keys).Run(ctx, s.rdb, nil, args...)
}

// groupBlock encodes g and its candidates as the scripts read them.
func groupBlock(g Group, cands []Candidate) []any {
	out := make([]any, 0, 5+4*len(cands))
	out = append(out, g.Name, g.Backend, g.MinRunners, g.MaxRunners, len(cands))
	for _, c := range cands {
		out = append(out, c.Name, c.ForJob, c.Create.Data, c.Create.Traceparent)
	}
	return out
}

// candidates asks Commands for n candidates, none when g cannot grow.
func (s *Store) candidates(ctx context.Context, g Group, forJob int64, n int) ([]Candidate, error) {
	n = min(n, g.MaxRunners)
	if n <= 0 || g.Name == "" {
		return nil, nil
	}
	if s.opt.Commands == nil {
		return nil, ErrNoCommands
	}
	c, err := s.opt.Commands.Creates(ctx, g, forJob, n)
	if err != nil {
		return nil, fmt.Errorf("prepare runners of group %s: %w", g.Name, err)
	}
	return c, nil
}

// Reservation is what a top-up did.
type Reservation struct {
	// Reserved are the runners reserved (pending, create command emitted).
	Reserved []string
}

// reply decodes the scripts' common {code, reserved, short, ...} replies.
func reply(v any) ([]any, []string, bool, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) < 3 {
		return nil, nil, false, fmt.Errorf("unexpected script reply %v", v)
	}
	var names []string
	if r, ok := arr[1].([]any); ok {
		for _, n := range r {
			if s, ok := n.(string); ok {
				names = append(names, s)
			}
		}
	}
	short, _ := arr[2].(int64)
	return arr, names, short == 1, nil
}

// finish tops up again while a script ran out of candidates.
func (s *Store) finish(ctx context.Context, g Group, forJob int64, reserved []string, short bool) ([]string, error) {
	n := s.opt.Batch
	for round := 0; short && round < maxTopUpRounds; round++ {
		n = min(n*2, g.MaxRunners)
		more, sh, err := s.topUp(ctx, g, forJob, n)
		reserved = append(reserved, more...)
		if err != nil {
			return reserved, err
		}
		short = sh
	}
	return reserved, nil
}

func (s *Store) topUp(ctx context.Context, g Group, forJob int64, n int) ([]string, bool, error) {
	cands, err := s.candidates(ctx, g, forJob, n)
	if err != nil {
		return nil, false, err
	}
	args := append(s.header(s.opt.Now()), groupBlock(g, cands)...)
	v, err := s.run(ctx, scriptTopUp, args...).Result()
	if err != nil {
		return nil, false, fmt.Errorf("top up group %s: %w", g.Name, err)
	}
	_, names, short, err := reply(v)
	if err != nil {
		return nil, false, fmt.Errorf("top up group %s: %w", g.Name, err)
	}
	return names, short, nil
}

// TopUp reserves runners of g (and emits their create commands) while it has
// fewer free runners than min_runners + demand and fewer runners than
// max_runners, unless the group is in backoff.
func (s *Store) TopUp(ctx context.Context, g Group) (Reservation, error) {
	names, short, err := s.topUp(ctx, g, 0, s.opt.Batch)
	if err != nil {
		return Reservation{}, err
	}
	names, err = s.finish(ctx, g, 0, names, short)
	return Reservation{Reserved: names}, err
}

// QueuedOutcome is what Queued did.
type QueuedOutcome struct {
	// Known: the job was already known (duplicate or late event); nothing changed.
	Known bool
	// Group is the group the job was counted in ("" when Known).
	Group string
	Reservation
}

// Queued records a queued job of group g: the job record, its demand, and
// the runners the group now lacks, all in one script. A job already known, in
// any status, changes nothing.
func (s *Store) Queued(ctx context.Context, g Group, jobID int64, queuedAt time.Time) (QueuedOutcome, error) {
	return s.QueuedIn(ctx, []Group{g}, QueuedJob{ID: jobID, QueuedAt: queuedAt})
}

// QueuedJob is a job of a queued event.
type QueuedJob struct {
	ID int64
	// QueuedAt is when it was queued (the event's created_at); now when zero.
	QueuedAt time.Time
	// Owner and Repo say where the job runs (the health checks look it up
	// at GitHub); written to the job's record, known or not, with the event.
	// "" when unknown.
	Owner, Repo string
}

// QueuedIn records a queued job in one of its candidate groups gs, in order
// of preference (config.JobGroups): the first that has room for it (a free
// runner not claimed by the group's demand, or fewer runners than
// max_runners out of create backoff), else the first. The choice, the job
// record, its demand and the runners the chosen group now lacks are one
// script, so the job is counted in exactly one group. A job already known, in
// any status, changes nothing.
func (s *Store) QueuedIn(ctx context.Context, gs []Group, j QueuedJob) (QueuedOutcome, error) {
	jobID, queuedAt := j.ID, j.QueuedAt
	if len(gs) == 0 {
		return QueuedOutcome{}, fmt.Errorf("record queued job %d: no group", jobID)
	}
	now := s.opt.Now()
	if queuedAt.IsZero() {
		queuedAt = now
	}
	args := append(s.header(now), jobID, ms(queuedAt), s.opt.ActiveJobTTL.Milliseconds(), j.Owner, j.Repo, len(gs))
	for _, g := range gs {
		cands, err := s.candidates(ctx, g, jobID, s.opt.Batch)
		if err != nil {
			return QueuedOutcome{}, err
		}
		args = append(args, groupBlock(g, cands)...)
	}
	v, err := s.run(ctx, scriptQueued, args...).Result()
	if err != nil {
		return QueuedOutcome{}, fmt.Errorf("record queued job %d of group %s: %w", jobID, gs[0].Name, err)
	}
	arr, names, short, err := reply(v)
	if err != nil || len(arr) < 4 {
		return QueuedOutcome{}, fmt.Errorf("record queued job %d: unexpected reply %v", jobID, v)
	}
	pick, _ := arr[3].(int64)
	if pick < 1 || int(pick) > len(gs) {
		return QueuedOutcome{}, fmt.Errorf("record queued job %d: unexpected group index %d", jobID, pick)
	}
	g := gs[pick-1]
	out := QueuedOutcome{Known: arr[0] == int64(0)}
	if !out.Known {
		out.Group = g.Name
	}
	out.Reserved, err = s.finish(ctx, g, jobID, names, short)
	return out, err
}

// JobUpdate is an in_progress or completed event.
type JobUpdate struct {
	JobID int64
	// RunnerName is the runner GitHub named, "" when none (cancelled while queued).
	RunnerName string
	// At is when it happened (started_at, completed_at), now when zero.
	At time.Time
	// RunID of the job: the runner's job metadata (InProgress only).
	RunID int64
	// Repository ("owner/name") and Workflow of the job, for the usage
	// aggregate and the runner's job metadata; "" keeps what the job's
	// record has.
	Repository string
	Workflow   string
	// QueuedAt (created_at) and StartedAt of the event, when it has them:
	// the wait of a job whose queued event was not handled, the start of
	// one whose in_progress was not (Completed).
	QueuedAt  time.Time
	StartedAt time.Time
	// Owner and Repo say where the job runs (the health checks look it up
	// at GitHub), written to the job's record with the event (InProgress
	// only); "" when unknown.
	Owner, Repo string
}

// observe hands the usage list at arr[i] of a script's reply to Options.Usage.
func (s *Store) observe(arr []any, i int) {
	if s.opt.Usage == nil || len(arr) <= i {
		return
	}
	flat, _ := arr[i].([]any)
	str := func(v any) string { x, _ := v.(string); return x }
	var out []usage.Observation
	for j := 0; j+4 < len(flat); j += 5 {
		ms, err := strconv.ParseInt(str(flat[j+4]), 10, 64)
		if err != nil {
			continue
		}
		o := usage.Observation{Kind: usage.Kind(str(flat[j])), Group: str(flat[j+1]), Repository: str(flat[j+2]),
			Workflow: str(flat[j+3]), D: time.Duration(max(ms, 0)) * time.Millisecond}
		o.WaitKnown = o.Kind == usage.KindJob && ms >= 0
		out = append(out, o)
	}
	if len(out) > 0 {
		s.opt.Usage(out)
	}
}

// JobOutcome is what InProgress or Completed did.
type JobOutcome struct {
	// Applied: the job moved forward; false for an old or repeated event.
	Applied bool
	// QueuedAt is the job's queued time when known (InProgress only).
	QueuedAt time.Time
	// Ours: the runner named is one of ours (InProgress only).
	Ours bool
	// Deleting is the runner moved to deleting, "" when none (Completed only).
	Deleting string
	// Updated: the runner's UpdateRunner command was emitted (InProgress only).
	Updated bool
	Reservation
}

// InProgress moves the job to in_progress (only forward), drops its demand,
// marks our runner that runs it busy with the job's metadata in its record,
// emits the runner's UpdateRunner command (Commands.Update; at most one per
// job: a repeated in_progress, or a runner that already has the job, emits
// none), and tops g up (a runner that took a job nobody asked for leaves the
// group short). A job never seen before is recorded as in_progress, so that
// its late queued event is ignored.
func (s *Store) InProgress(ctx context.Context, g Group, u JobUpdate) (JobOutcome, error) {
	now := s.opt.Now()
	at := cmp.Or(u.At, now)
	var upd Command
	var backend string
	if u.RunnerName != "" && s.opt.Commands != nil {
		r, ok, err := s.Runner(ctx, u.RunnerName)
		if err != nil {
			return JobOutcome{}, err
		}
		if ok && r.State != Deleting && r.JobID != u.JobID {
			if upd, err = s.opt.Commands.Update(ctx, r, u); err != nil {
				return JobOutcome{}, fmt.Errorf("prepare update of runner %s: %w", r.Name, err)
			}
			backend = r.Backend
		}
	}
	cands, err := s.candidates(ctx, g, 0, s.opt.Batch)
	if err != nil {
		return JobOutcome{}, err
	}
	args := append(s.header(now), u.JobID, ms(at), u.RunnerName, s.opt.ActiveJobTTL.Milliseconds(),
		u.RunID, u.Repository, usage.Workflow(u.Workflow), upd.Data, upd.Traceparent, backend, ms(u.QueuedAt),
		u.Owner, u.Repo)
	args = append(args, groupBlock(g, cands)...)
	v, err := s.run(ctx, scriptInProgress, args...).Result()
	if err != nil {
		return JobOutcome{}, fmt.Errorf("record job %d in progress: %w", u.JobID, err)
	}
	arr, names, short, err := reply(v)
	if err != nil || len(arr) < 7 {
		return JobOutcome{}, fmt.Errorf("record job %d in progress: unexpected reply %v", u.JobID, v)
	}
	s.observe(arr, 6)
	qa, _ := arr[3].(string)
	out := JobOutcome{Applied: arr[0] == int64(1), QueuedAt: fromMS(qa), Ours: arr[4] == int64(1), Updated: arr[5] == int64(1)}
	out.Reserved, err = s.finish(ctx, g, 0, names, short)
	return out, err
}

// Completed moves the job to completed (kept JobRetention), drops its demand,
// and when one of our runners ran it moves that runner to deleting and emits
// its delete command (reason job_completed), then tops g up. Also the way to
// drop the demand of a job found finished at GitHub (RunnerName "").
func (s *Store) Completed(ctx context.Context, g Group, u JobUpdate) (JobOutcome, error) {
	now := s.opt.Now()
	at := cmp.Or(u.At, now)
	var del Command
	var backend string
	if u.RunnerName != "" {
		r, ok, err := s.Runner(ctx, u.RunnerName)
		if err != nil {
			return JobOutcome{}, err
		}
		if ok && r.State != Deleting {
			if s.opt.Commands == nil {
				return JobOutcome{}, ErrNoCommands
			}
			if del, err = s.opt.Commands.Delete(ctx, r, ReasonJobCompleted); err != nil {
				return JobOutcome{}, fmt.Errorf("prepare delete of runner %s: %w", r.Name, err)
			}
			backend = r.Backend
		}
	}
	cands, err := s.candidates(ctx, g, 0, s.opt.Batch)
	if err != nil {
		return JobOutcome{}, err
	}
	args := append(s.header(now), u.JobID, ms(at), u.RunnerName, s.opt.JobRetention.Milliseconds(),
		del.Data, del.Traceparent, backend, u.Repository, usage.Workflow(u.Workflow), ms(u.StartedAt), ms(u.QueuedAt))
	args = append(args, groupBlock(g, cands)...)
	v, err := s.run(ctx, scriptCompleted, args...).Result()
	if err != nil {
		return JobOutcome{}, fmt.Errorf("record job %d completed: %w", u.JobID, err)
	}
	arr, names, short, err := reply(v)
	if err != nil || len(arr) < 4 {
		return JobOutcome{}, fmt.Errorf("record job %d completed: unexpected reply %v", u.JobID, v)
	}
	s.observe(arr, 4)
	deleting, _ := arr[3].(string)
	out := JobOutcome{Applied: arr[0] == int64(1), Deleting: deleting}
	out.Reserved, err = s.finish(ctx, g, 0, names, short)
	return out, err
}

// CreatedOutcome is what Created did.
type CreatedOutcome int

// Outcomes of Created.
const (
	// CreatedRecorded: the instance is recorded (pending -> started, or later state kept).
	CreatedRecorded CreatedOutcome = iota
	// CreatedOrphan: no record (deleted meanwhile): a delete was emitted.
	CreatedOrphan
	// CreatedWhileDeleting: the runner is deleting: its delete was emitted again,
	// since the first one may have raced with the create.
	CreatedWhileDeleting
)

// Created records a created result: instance id and GitHub runner id, and
// pending -> started. A runner without a record (or already deleting) gets a
// delete command, so no instance leaks. r carries what the result said:
// Name, Group, Backend, InstanceID, GitHubRunnerID, and what a delete needs
// whatever the configuration becomes: Organization, Repository, Location
// (kept when set), and the SpecHash it was created from (kept when set).
func (s *Store) Created(ctx context.Context, r Runner) (CreatedOutcome, error) {
	if s.opt.Commands == nil {
		return 0, ErrNoCommands
	}
	reason := ReasonLateCreate
	if cur, ok, err := s.Runner(ctx, r.Name); err != nil {
		return 0, err
	} else if ok {
		reason = "deleting"
		r.Group, r.Backend = cur.Group, cur.Backend
	}
	del, err := s.opt.Commands.Delete(ctx, r, reason)
	if err != nil {
		return 0, fmt.Errorf("prepare delete of runner %s: %w", r.Name, err)
	}
	loc := ""
	if len(r.Location) > 0 {
		b, err := json.Marshal(r.Location)
		if err != nil {
			return 0, fmt.Errorf("record runner %s created: location: %w", r.Name, err)
		}
		loc = string(b)
	}
	args := append(s.header(s.opt.Now()), r.Name, r.InstanceID, r.GitHubRunnerID, del.Data, del.Traceparent, r.Backend,
		r.Organization, r.Repository, loc, r.SpecHash)
	v, err := s.run(ctx, scriptCreated, args...).Result()
	if err != nil {
		return 0, fmt.Errorf("record runner %s created: %w", r.Name, err)
	}
	arr, ok := v.([]any)
	if !ok || len(arr) < 1 {
		return 0, fmt.Errorf("record runner %s created: unexpected reply %v", r.Name, v)
	}
	switch arr[0] {
	case int64(0):
		return CreatedOrphan, nil
	case int64(2):
		return CreatedWhileDeleting, nil
	}
	return CreatedRecorded, nil
}

// DeletedOutcome is what Deleted did.
type DeletedOutcome struct {
	// Removed: a record existed and was removed.
	Removed bool
	Reservation
}

// Deleted removes a runner's record and releases its capacity (a deleted
// result, or an instance found gone), then tops g up in the same script.
func (s *Store) Deleted(ctx context.Context, g Group, name string) (DeletedOutcome, error) {
	cands, err := s.candidates(ctx, g, 0, s.opt.Batch)
	if err != nil {
		return DeletedOutcome{}, err
	}
	args := append(s.header(s.opt.Now()), name)
	args = append(args, groupBlock(g, cands)...)
	v, err := s.run(ctx, scriptDeleted, args...).Result()
	if err != nil {
		return DeletedOutcome{}, fmt.Errorf("remove runner %s: %w", name, err)
	}
	arr, names, short, err := reply(v)
	if err != nil {
		return DeletedOutcome{}, fmt.Errorf("remove runner %s: %w", name, err)
	}
	s.observe(arr, 3)
	out := DeletedOutcome{Removed: arr[0] == int64(1)}
	out.Reserved, err = s.finish(ctx, g, 0, names, short)
	return out, err
}

// FailureOutcome is what CreateFailed did.
type FailureOutcome int

// Outcomes of CreateFailed.
const (
	// FailureIgnored: no pending runner at that attempt (stale or duplicate result).
	FailureIgnored FailureOutcome = iota
	// FailureRetrying: the reservation is kept and a retry is due at the given time.
	FailureRetrying
	// FailureReleased: the reservation was released: the runner is deleting
	// (its delete emitted) and the group waits out its backoff.
	FailureReleased
)

// MaxGroupBackoff bounds the backoff of a group whose creates keep failing.
const MaxGroupBackoff = 10 * time.Minute

// groupFailuresTTL: a group's count of failed rounds is forgotten after this
// long without a new failed round (the group had no demand meanwhile).
const groupFailuresTTL = 2 * MaxGroupBackoff

// CreateFailed records a failed create of attempt. When retryAt is not zero
// the reservation is kept and the create is emitted again by DueRetries /
// RetryCreate at that time; otherwise the reservation is released (the
// demand stays): the runner goes deleting and its delete command
// (ReasonCreateFailed: registration, then instance, which may exist) is
// emitted with it; it counts against max_runners until its deleted result
// (the safe side: an instance that lives on is never outside the limit).
// The group's top-ups back off: groupBackoff after its
// first failed round, doubled for every earlier consecutive failed round, at
// most MaxGroupBackoff. The count lives in Redis ({P}:group:<g>:create_failures),
// so every replica agrees, and the group's first successful create
// (Created) resets it. 0 sets no backoff.
func (s *Store) CreateFailed(ctx context.Context, name string, attempt int, retryAt time.Time, groupBackoff time.Duration) (FailureOutcome, error) {
	mode := "release"
	if !retryAt.IsZero() {
		mode = "retry"
	}
	var del Command
	var backend string
	if mode == "release" {
		if s.opt.Commands == nil {
			return 0, ErrNoCommands
		}
		r, ok, err := s.Runner(ctx, name)
		if err != nil {
			return 0, err
		}
		if !ok {
			return FailureIgnored, nil
		}
		if del, err = s.opt.Commands.Delete(ctx, r, ReasonCreateFailed); err != nil {
			return 0, fmt.Errorf("prepare delete of runner %s: %w", name, err)
		}
		backend = r.Backend
	}
	args := append(s.header(s.opt.Now()), name, attempt, mode, ms(retryAt), groupBackoff.Milliseconds(),
		MaxGroupBackoff.Milliseconds(), groupFailuresTTL.Milliseconds(), del.Data, del.Traceparent, backend)
	v, err := s.run(ctx, scriptCreateFailed, args...).Result()
	if err != nil {
		return 0, fmt.Errorf("record failed create of runner %s: %w", name, err)
	}
	arr, ok := v.([]any)
	if !ok || len(arr) < 1 {
		return 0, fmt.Errorf("record failed create of runner %s: unexpected reply %v", name, v)
	}
	s.observe(arr, 3)
	switch arr[0] {
	case int64(1):
		return FailureRetrying, nil
	case int64(2):
		return FailureReleased, nil
	}
	return FailureIgnored, nil
}

// MaxDeleteErrorLen bounds the reason kept in a record's delete_error.
const MaxDeleteErrorLen = 200

// DeleteFailed counts a failed delete of a deleting runner in its record
// (reason, secret-free, bounded) and schedules its delete again at the time
// retryAt gives for the failures so far (1 for the first). It returns those
// failures, 0 when the runner has no record or is not deleting.
func (s *Store) DeleteFailed(ctx context.Context, name, reason string, retryAt func(failures int) time.Time) (int, error) {
	r, ok, err := s.Runner(ctx, name)
	if err != nil || !ok || r.State != Deleting {
		return 0, err
	}
	if len(reason) > MaxDeleteErrorLen {
		reason = reason[:MaxDeleteErrorLen]
	}
	args := append(s.header(s.opt.Now()), name, ms(retryAt(r.DeleteFailures+1)), reason)
	n, err := s.run(ctx, scriptDeleteFailed, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("record failed delete of runner %s: %w", name, err)
	}
	return n, nil
}

// RetryKind says which command a Retry emits again.
type RetryKind string

// Retry kinds.
const (
	RetryCreateKind RetryKind = "create"
	RetryDeleteKind RetryKind = "delete"
)

// Retry is one due entry of {P}:retry.
type Retry struct {
	Kind   RetryKind
	Runner string
	Due    time.Time
}

// DueRetries returns up to limit retries due at now, oldest first.
func (s *Store) DueRetries(ctx context.Context, now time.Time, limit int64) ([]Retry, error) {
	zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: s.keys.Retry(), Start: "-inf", Stop: ms(now), ByScore: true, Count: limit,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("read due retries: %w", err)
	}
	out := make([]Retry, 0, len(zs))
	for _, z := range zs {
		m, _ := z.Member.(string)
		kind, name, ok := strings.Cut(m, ":")
		if !ok {
			continue
		}
		out = append(out, Retry{Kind: RetryKind(kind), Runner: name, Due: time.UnixMilli(int64(z.Score))})
	}
	return out, nil
}

// DropRetry removes r from {P}:retry (an entry of a kind no longer known).
func (s *Store) DropRetry(ctx context.Context, r Retry) error {
	if err := s.rdb.ZRem(ctx, s.keys.Retry(), string(r.Kind)+":"+r.Runner).Err(); err != nil {
		return fmt.Errorf("drop retry %s of runner %s: %w", r.Kind, r.Runner, err)
	}
	return nil
}

// RetryCreate emits the create command of a pending runner again, with the
// next attempt, and claims its retry entry. False when another replica did it,
// or the runner moved on.
func (s *Store) RetryCreate(ctx context.Context, name string) (bool, error) {
	if s.opt.Commands == nil {
		return false, ErrNoCommands
	}
	r, ok, err := s.Runner(ctx, name)
	if err != nil || !ok || r.State != Pending {
		if err == nil && !ok {
			// Nothing to retry: drop the entry.
			err = s.rdb.ZRem(ctx, s.keys.Retry(), "create:"+name).Err()
		}
		return false, err
	}
	cmd, err := s.opt.Commands.Retry(ctx, r, r.Attempt+1)
	if err != nil {
		return false, fmt.Errorf("prepare create retry of runner %s: %w", name, err)
	}
	args := append(s.header(s.opt.Now()), name, r.Attempt, cmd.Data, cmd.Traceparent, r.Backend)
	n, err := s.run(ctx, scriptRetryCreate, args...).Int()
	if err != nil {
		return false, fmt.Errorf("retry create of runner %s: %w", name, err)
	}
	return n == 1, nil
}

// RetryDelete emits the delete command of a deleting runner again and claims
// its retry entry.
func (s *Store) RetryDelete(ctx context.Context, name string) (bool, error) {
	if s.opt.Commands == nil {
		return false, ErrNoCommands
	}
	r, ok, err := s.Runner(ctx, name)
	if err != nil || !ok || r.State != Deleting {
		if err == nil {
			err = s.rdb.ZRem(ctx, s.keys.Retry(), "delete:"+name).Err()
		}
		return false, err
	}
	cmd, err := s.opt.Commands.Delete(ctx, r, "retry")
	if err != nil {
		return false, fmt.Errorf("prepare delete retry of runner %s: %w", name, err)
	}
	args := append(s.header(s.opt.Now()), name, cmd.Data, cmd.Traceparent, r.Backend)
	n, err := s.run(ctx, scriptRetryDelete, args...).Int()
	if err != nil {
		return false, fmt.Errorf("retry delete of runner %s: %w", name, err)
	}
	return n == 1, nil
}

// Errors of RequestDelete.
var (
	ErrNotFound = errors.New("runner not found")
	// ErrState: the runner is not in one of the accepted states (see the error for which).
	ErrState = errors.New("runner state does not allow it")
)

// RequestDelete moves a runner from one of the states in from to deleting
// and emits its delete command for reason, in one script (compare-and-set: a
// runner that became busy meanwhile is left alone). It returns the state the
// runner was in. ErrNotFound, or ErrState when its state is not in from or
// cannot move to deleting (already deleting).
func (s *Store) RequestDelete(ctx context.Context, name string, from []State, reason string) (State, error) {
	if s.opt.Commands == nil {
		return "", ErrNoCommands
	}
	r, ok, err := s.Runner(ctx, name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("delete runner %s: %w", name, ErrNotFound)
	}
	cmd, err := s.opt.Commands.Delete(ctx, r, reason)
	if err != nil {
		return "", fmt.Errorf("prepare delete of runner %s: %w", name, err)
	}
	accepted := ","
	for _, st := range from {
		accepted += string(st) + ","
	}
	args := append(s.header(s.opt.Now()), name, accepted, cmd.Data, cmd.Traceparent, r.Backend)
	v, err := s.run(ctx, scriptRequestDelete, args...).Result()
	if err != nil {
		return "", fmt.Errorf("delete runner %s: %w", name, err)
	}
	arr, ok := v.([]any)
	if !ok || len(arr) < 2 {
		return "", fmt.Errorf("delete runner %s: unexpected reply %v", name, v)
	}
	s.observe(arr, 2)
	prev, _ := arr[1].(string)
	switch {
	case arr[0] == int64(1):
		return State(prev), nil
	case prev == "":
		return "", fmt.Errorf("delete runner %s: %w", name, ErrNotFound)
	default:
		return State(prev), fmt.Errorf("delete runner %s in state %s: %w", name, prev, ErrState)
	}
}

// BusyOutcome is what Busy did.
type BusyOutcome int

// Outcomes of Busy.
const (
	// BusyIgnored: the runner has no record or is not deleting (a repeated result).
	BusyIgnored BusyOutcome = iota
	// BusyRestored: the runner moved deleting -> busy; its job's completed
	// event deletes it.
	BusyRestored
	// BusyJobDone: the runner's job completed meanwhile: it stays deleting
	// and its delete (job_completed) was emitted again.
	BusyJobDone
)

// Busy records a busy result: the provisioner did not delete a deleting
// runner because GitHub refused to remove its registration (it runs a job).
// The runner moves back to busy, compare-and-set, in one script.
func (s *Store) Busy(ctx context.Context, name string) (BusyOutcome, error) {
	if s.opt.Commands == nil {
		return BusyIgnored, ErrNoCommands
	}
	r, ok, err := s.Runner(ctx, name)
	if err != nil || !ok || r.State != Deleting {
		return BusyIgnored, err
	}
	done := r
	done.State = Busy // the registration of a runner whose job completed is gone
	cmd, err := s.opt.Commands.Delete(ctx, done, ReasonJobCompleted)
	if err != nil {
		return BusyIgnored, fmt.Errorf("prepare delete of runner %s: %w", name, err)
	}
	args := append(s.header(s.opt.Now()), name, cmd.Data, cmd.Traceparent, r.Backend)
	v, err := s.run(ctx, scriptBusy, args...).Result()
	if err != nil {
		return BusyIgnored, fmt.Errorf("record runner %s busy: %w", name, err)
	}
	arr, ok := v.([]any)
	if !ok || len(arr) < 1 {
		return BusyIgnored, fmt.Errorf("record runner %s busy: unexpected reply %v", name, v)
	}
	switch arr[0] {
	case int64(1):
		return BusyRestored, nil
	case int64(2):
		return BusyJobDone, nil
	}
	return BusyIgnored, nil
}

// MarkIdle moves a pending or started runner to idle (GitHub shows it
// online and not busy). It returns whether it moved.
func (s *Store) MarkIdle(ctx context.Context, name string) (bool, error) {
	args := append(s.header(s.opt.Now()), name)
	v, err := s.run(ctx, scriptMarkIdle, args...).Result()
	if err != nil {
		return false, fmt.Errorf("mark runner %s idle: %w", name, err)
	}
	arr, ok := v.([]any)
	return ok && len(arr) > 0 && arr[0] == int64(1), nil
}

// SetGitHubGroupID remembers the GitHub runner group id of group (written by
// the runner-group sync of the health checks; read into create commands).
func (s *Store) SetGitHubGroupID(ctx context.Context, group string, id int64) error {
	if err := s.rdb.Set(ctx, s.keys.GitHubGroup(group), id, 0).Err(); err != nil {
		return fmt.Errorf("store GitHub runner group id of %s: %w", group, err)
	}
	return nil
}

// GitHubGroupID returns the GitHub runner group id of group, 0 when unknown.
func (s *Store) GitHubGroupID(ctx context.Context, group string) (int64, error) {
	id, err := s.rdb.Get(ctx, s.keys.GitHubGroup(group)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read GitHub runner group id of %s: %w", group, err)
	}
	return id, nil
}
