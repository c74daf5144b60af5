// Package dispatch turns the scheduler's input streams into state changes:
// workflow_job events ({P}:events) and provision results ({P}:results). Each
// handler is idempotent (every entry may be delivered twice) and makes each
// decision in one script of the state package.
package dispatch

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runner-manager/runner-manager/libs/backoff"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/recent"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/metrics"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

// MaxRetryBackoff caps the backoff between create or delete retries.
const MaxRetryBackoff = 10 * time.Minute

// maxUnmatchedSets bounds the label sets remembered for the unmatched log.
const maxUnmatchedSets = 1024

// RetryBackoff is base doubled for every attempt after the first, capped at
// MaxRetryBackoff.
func RetryBackoff(base time.Duration, attempt int) time.Duration {
	return backoff.Exponential{Base: base, Max: MaxRetryBackoff}.Delay(attempt)
}

// Bounds of DeleteBackoff.
const (
	DeleteRetryBase  = 10 * time.Second
	MaxDeleteBackoff = 10 * time.Minute
)

// DeleteBackoff is the wait before the retry of a runner's delete after its
// failures-th failure: 10 s, doubling, at most 10 min. A delete that keeps
// failing (a permanent failure: refused, denied) costs a command every 10
// minutes, not every 10 seconds, and stays visible (rmctl runners, the
// delete failures metric and the deleting gauge).
func DeleteBackoff(failures int) time.Duration {
	return backoff.Exponential{Base: DeleteRetryBase, Max: MaxDeleteBackoff}.Delay(failures)
}

// className is the "class" label of a failure class.
func className(c rmv1.FailureClass) string {
	switch c {
	case rmv1.FailureClass_FAILURE_CLASS_PERMANENT:
		return "permanent"
	case rmv1.FailureClass_FAILURE_CLASS_CAPACITY:
		return "capacity"
	default:
		return "retryable"
	}
}

// Handlers handle the entries of {P}:events and {P}:results.
type Handlers struct {
	cfg   *config.Config
	store *state.Store
	log   *slog.Logger
	m     *metrics.Metrics
	now   func() time.Time

	mu        sync.Mutex
	unmatched map[string]struct{}

	// inventory acts on an inventory result (OnInventory); nil: counted only.
	inventory func(context.Context, *rmv1.ProvisionResult) error
}

// OnInventory makes Result hand every inventory result to f (the health
// checks) before counting it; an error of f is the entry's error, so that it
// is delivered again (handling an inventory twice emits nothing twice). Call
// it before the consumers start.
func (h *Handlers) OnInventory(f func(context.Context, *rmv1.ProvisionResult) error) { h.inventory = f }

// New returns the handlers; m may be nil (metrics not recorded elsewhere).
func New(cfg *config.Config, store *state.Store, log *slog.Logger, m *metrics.Metrics) *Handlers {
	if m == nil {
		m = metrics.New(nil)
	}
	return &Handlers{cfg: cfg, store: store, log: log, m: m, now: store.Now, unmatched: map[string]struct{}{}}
}

// group resolves the runner group of an event: by its labels, else (for
// in_progress and completed of a job that no longer matches, after a
// configuration change) by the runner it names.
func (h *Handlers) group(ctx context.Context, ev *rmv1.WorkflowJobEvent) (state.Group, bool, error) {
	if g := h.cfg.MatchGroup(ev.GetOwner(), ev.GetRepository(), ev.GetWorkflowName(), ev.GetLabels()); g != nil {
		sg, _ := command.Group(h.cfg, g.Name)
		return sg, true, nil
	}
	if ev.GetAction() == "queued" || ev.GetRunnerName() == "" {
		return state.Group{}, false, nil
	}
	r, ok, err := h.store.Runner(ctx, ev.GetRunnerName())
	if err != nil || !ok {
		return state.Group{}, false, err
	}
	sg, _ := command.Group(h.cfg, r.Group)
	return sg, true, nil
}

// Event handles one entry of {P}:events.
func (h *Handlers) Event(ctx context.Context, msg stream.Message) error {
	if msg.Type != stream.TypeWorkflowJob {
		h.log.Warn("ignoring entry of unknown type", "stream", msg.Stream, "id", msg.ID, "type", msg.Type)
		return nil
	}
	var ev rmv1.WorkflowJobEvent
	if err := msg.Unmarshal(&ev); err != nil {
		return err
	}
	action := ev.GetAction()
	if ev.GetJobId() == 0 {
		h.log.Warn("ignoring workflow_job event without job id", "stream", msg.Stream, "id", msg.ID, "action", action)
		h.m.Events.WithLabelValues(action, "invalid").Inc()
		return nil
	}
	switch action {
	case "queued", "in_progress", "completed":
	default: // waiting, or anything newer: nothing to do
		h.m.Events.WithLabelValues(action, "ignored").Inc()
		return nil
	}
	g, ok, err := h.group(ctx, &ev)
	if err != nil {
		return err
	}
	if !ok {
		if action == "queued" {
			h.noteUnmatched(&ev)
		}
		h.m.Events.WithLabelValues(action, "unmatched").Inc()
		return nil
	}
	log := h.log.With("job_id", ev.GetJobId(), "action", action, "group", g.Name, "delivery", ev.GetDeliveryId())
	switch action {
	case "queued":
		return h.queued(ctx, log, g, &ev)
	case "in_progress":
		return h.inProgress(ctx, log, g, &ev)
	default:
		return h.completed(ctx, log, g, &ev)
	}
}

func outcome(applied bool) string {
	if applied {
		return "applied"
	}
	return "ignored"
}

func (h *Handlers) queued(ctx context.Context, log *slog.Logger, g state.Group, ev *rmv1.WorkflowJobEvent) error {
	queuedAt := h.now()
	if ts := ev.GetCreatedAt(); ts != nil && ts.IsValid() && !ts.AsTime().IsZero() {
		queuedAt = ts.AsTime()
	}
	// g is the best group; the job may spill over to the next matching
	// groups with spill_over (docs/configuration.md): the script counts it
	// in the first that has room.
	gs := []state.Group{g}
	for _, c := range h.cfg.JobGroups(ev.GetOwner(), ev.GetRepository(), ev.GetWorkflowName(), ev.GetLabels()) {
		if sg, _ := command.Group(h.cfg, c.Name); sg.Name != g.Name {
			gs = append(gs, sg)
		}
	}
	out, err := h.store.QueuedIn(ctx, gs, state.QueuedJob{ID: ev.GetJobId(), QueuedAt: queuedAt,
		Owner: ev.GetOwner(), Repo: ev.GetRepository()})
	if out.Group != "" && out.Group != g.Name {
		for _, c := range gs {
			if c.Name == out.Group {
				g = c
			}
		}
		log = log.With("spilled_to", g.Name)
	}
	h.created(g, out.Reserved, "queued")
	if err != nil {
		return err
	}
	h.m.Events.WithLabelValues("queued", outcome(!out.Known)).Inc()
	if len(out.Reserved) > 0 {
		h.m.QueuedToCreate.WithLabelValues(g.Name).Observe(max(0, h.now().Sub(queuedAt).Seconds()))
		log.Info("job queued: runners reserved", "runners", out.Reserved)
	} else if out.Known {
		log.Debug("job already known: queued event ignored")
	} else {
		log.Info("job queued: waiting for capacity")
	}
	return nil
}

func (h *Handlers) inProgress(ctx context.Context, log *slog.Logger, g state.Group, ev *rmv1.WorkflowJobEvent) error {
	at := h.now()
	if ts := ev.GetStartedAt(); ts != nil && ts.IsValid() && !ts.AsTime().IsZero() {
		at = ts.AsTime()
	}
	out, err := h.store.InProgress(ctx, g, jobUpdate(ev, at))
	h.created(g, out.Reserved, "top_up")
	if err != nil {
		return err
	}
	h.m.Events.WithLabelValues("in_progress", outcome(out.Applied)).Inc()
	if out.Updated {
		h.m.Commands.WithLabelValues("update", "job_started").Inc()
	}
	if !out.Applied {
		log.Debug("job already further: in_progress ignored")
		return nil
	}
	queuedAt := out.QueuedAt
	if queuedAt.IsZero() {
		if ts := ev.GetCreatedAt(); ts != nil && ts.IsValid() {
			queuedAt = ts.AsTime()
		}
	}
	if !queuedAt.IsZero() && !queuedAt.Before(time.Unix(1, 0)) {
		h.m.JobWait.WithLabelValues(g.Name).Observe(max(0, at.Sub(queuedAt).Seconds()))
	}
	log.Info("job in progress", "runner", ev.GetRunnerName(), "ours", out.Ours)
	if out.Ours {
		// GitHub may give a job to a runner of another group whose labels
		// are a superset: that group lost a free runner, top it up too.
		if r, ok, err := h.store.Runner(ctx, ev.GetRunnerName()); err == nil && ok && r.Group != g.Name {
			if rg, configured := command.Group(h.cfg, r.Group); configured {
				res, err := h.store.TopUp(ctx, rg)
				h.created(rg, res.Reserved, "top_up")
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (h *Handlers) completed(ctx context.Context, log *slog.Logger, g state.Group, ev *rmv1.WorkflowJobEvent) error {
	at := h.now()
	if ts := ev.GetCompletedAt(); ts != nil && ts.IsValid() && !ts.AsTime().IsZero() {
		at = ts.AsTime()
	}
	out, err := h.store.Completed(ctx, g, jobUpdate(ev, at))
	h.created(g, out.Reserved, "top_up")
	if err != nil {
		return err
	}
	h.m.Events.WithLabelValues("completed", outcome(out.Applied)).Inc()
	if out.Deleting != "" {
		h.m.Commands.WithLabelValues("delete", state.ReasonJobCompleted).Inc()
		log.Info("job completed: runner deleting", "runner", out.Deleting, "conclusion", ev.GetConclusion())
	} else if out.Applied {
		log.Info("job completed", "runner", ev.GetRunnerName(), "conclusion", ev.GetConclusion())
	}
	return nil
}

// jobUpdate is the JobUpdate of an in_progress or completed event at at.
func jobUpdate(ev *rmv1.WorkflowJobEvent, at time.Time) state.JobUpdate {
	u := state.JobUpdate{
		JobID: ev.GetJobId(), RunnerName: ev.GetRunnerName(), At: at,
		RunID:      ev.GetRunId(),
		Repository: usage.Repository(ev.GetOwner(), ev.GetRepository()), Workflow: ev.GetWorkflowName(),
		Owner: ev.GetOwner(), Repo: ev.GetRepository(),
	}
	if ts := ev.GetCreatedAt(); ts != nil && ts.IsValid() && !ts.AsTime().IsZero() {
		u.QueuedAt = ts.AsTime()
	}
	if ts := ev.GetStartedAt(); ts != nil && ts.IsValid() && !ts.AsTime().IsZero() {
		u.StartedAt = ts.AsTime()
	}
	return u
}

// created counts the create commands emitted by a top-up.
func (h *Handlers) created(g state.Group, names []string, reason string) {
	if len(names) > 0 {
		h.m.Commands.WithLabelValues("create", reason).Add(float64(len(names)))
	}
}

// noteUnmatched counts a queued job no group serves, and logs each distinct
// label set once (per process, up to maxUnmatchedSets sets, then again).
func (h *Handlers) noteUnmatched(ev *rmv1.WorkflowJobEvent) {
	h.m.UnmatchedJobs.Inc()
	labels := make([]string, len(ev.GetLabels()))
	for i, l := range ev.GetLabels() {
		labels[i] = strings.ToLower(l)
	}
	slices.Sort(labels)
	key := strings.ToLower(ev.GetOwner()) + "/" + strings.ToLower(ev.GetRepository()) + ":" + strings.Join(labels, ",")
	h.mu.Lock()
	_, seen := h.unmatched[key]
	if !seen {
		if len(h.unmatched) >= maxUnmatchedSets {
			clear(h.unmatched)
		}
		h.unmatched[key] = struct{}{}
	}
	h.mu.Unlock()
	if !seen {
		h.log.Warn("no runner group matches the job's labels; jobs with these labels are ignored",
			"owner", ev.GetOwner(), "repository", ev.GetRepository(), "labels", labels, "job_id", ev.GetJobId())
	}
}

// Result handles one entry of {P}:results.
func (h *Handlers) Result(ctx context.Context, msg stream.Message) error {
	if msg.Type != stream.TypeResult {
		h.log.Warn("ignoring entry of unknown type", "stream", msg.Stream, "id", msg.ID, "type", msg.Type)
		return nil
	}
	var res rmv1.ProvisionResult
	if err := msg.Unmarshal(&res); err != nil {
		return err
	}
	name := res.GetRunnerName()
	log := h.log.With("runner", name, "group", res.GetGroup(), "command_id", res.GetCommandId())
	g, _ := command.Group(h.cfg, res.GetGroup())
	switch o := res.GetOutcome().(type) {
	case *rmv1.ProvisionResult_Created:
		created := state.Runner{
			Name: name, Group: res.GetGroup(), Backend: res.GetBackendType(),
			InstanceID: o.Created.GetInstanceId(), GitHubRunnerID: o.Created.GetGithubRunnerId(),
			Location: o.Created.GetLocation(), SpecHash: o.Created.GetSpecHash(),
		}
		// Where it is registered: the group's configuration, which the
		// provisioner checked the create against (spec hash).
		if cg := h.cfg.Group(res.GetGroup()); cg != nil {
			created.Organization, created.Repository = cg.Organization, cg.Repository
		}
		out, err := h.store.Created(ctx, created)
		if err != nil {
			return err
		}
		switch out {
		case state.CreatedOrphan:
			h.m.Commands.WithLabelValues("delete", state.ReasonLateCreate).Inc()
			log.Warn("created a runner that has no record: deleting it", "instance_id", o.Created.GetInstanceId())
		case state.CreatedWhileDeleting:
			h.m.Commands.WithLabelValues("delete", "deleting").Inc()
			log.Info("created a runner being deleted: delete emitted again")
		default:
			log.Info("runner started", "instance_id", o.Created.GetInstanceId())
		}
		h.m.Results.WithLabelValues("created").Inc()
	case *rmv1.ProvisionResult_Deleted:
		out, err := h.store.Deleted(ctx, g, name)
		h.created(g, out.Reserved, "replace")
		if err != nil {
			return err
		}
		h.m.Results.WithLabelValues("deleted").Inc()
		log.Info("runner deleted", "had_record", out.Removed, "reserved", out.Reserved)
	case *rmv1.ProvisionResult_Busy:
		// GitHub refused to remove the registration: the runner took a job
		// since it was chosen, and its instance was kept.
		out, err := h.store.Busy(ctx, name)
		if err != nil {
			return err
		}
		h.m.Results.WithLabelValues("busy").Inc()
		switch out {
		case state.BusyRestored:
			log.Info("runner runs a job: delete refused by GitHub, runner busy again")
		case state.BusyJobDone:
			h.m.Commands.WithLabelValues("delete", state.ReasonJobCompleted).Inc()
			log.Info("runner ran a job that completed meanwhile: delete emitted again")
		default:
			log.Info("busy result for a runner not deleting: ignored")
		}
	case *rmv1.ProvisionResult_Failed:
		return h.failed(ctx, log, g, &res, o.Failed)
	case *rmv1.ProvisionResult_Inventory:
		// Inventories are for the health checks, which list on their own.
		if h.inventory != nil {
			if err := h.inventory(ctx, &res); err != nil {
				return err
			}
		}
		h.m.Results.WithLabelValues("inventory").Inc()
	default:
		log.Warn("result without outcome ignored")
	}
	return nil
}

func (h *Handlers) failed(ctx context.Context, log *slog.Logger, g state.Group, res *rmv1.ProvisionResult, f *rmv1.Failed) error {
	name := res.GetRunnerName()
	r, ok, err := h.store.Runner(ctx, name)
	if err != nil {
		return err
	}
	op := f.GetOperation()
	if op == "" && ok { // older provisioners: infer from the state
		op = "create"
		if r.State == state.Deleting {
			op = "delete"
		}
	}
	log = log.With("operation", op, "class", f.GetClass().String(), "reason", f.GetReason(), "dead_lettered", f.GetDeadLettered())
	base := h.cfg.Scheduler.CreateRetryBackoff
	switch op {
	case "create":
		h.m.Results.WithLabelValues("failed_create").Inc()
		if !ok {
			log.Info("create failed for a runner without record: nothing to release")
			return nil
		}
		attempt := int(res.GetAttempt())
		if attempt == 0 {
			attempt = r.Attempt
		}
		retryable := f.GetClass() == rmv1.FailureClass_FAILURE_CLASS_RETRYABLE || f.GetClass() == rmv1.FailureClass_FAILURE_CLASS_CAPACITY
		var retryAt time.Time
		if retryable && !f.GetDeadLettered() && attempt < h.cfg.Scheduler.CreateRetries {
			retryAt = h.now().Add(RetryBackoff(base, attempt))
		}
		// A release backs the group off: the runner's backoff after the
		// group's first failed round, doubled with each consecutive one
		// (state.MaxGroupBackoff at most), so that a broken group does not
		// re-reserve max_runners (a JIT call and a registration delete
		// each) every create_retry_backoff.
		out, err := h.store.CreateFailed(ctx, name, attempt, retryAt, RetryBackoff(base, attempt))
		if err != nil {
			return err
		}
		if out != state.FailureIgnored {
			e := recent.Entry{Group: g.Name, Reason: className(f.GetClass()), Time: h.now()}
			if err := h.store.PushCreateFailure(ctx, e); err != nil {
				log.Warn("create failure not recorded for the status page", "error", err)
			}
		}
		switch out {
		case state.FailureRetrying:
			h.m.CreateRetries.WithLabelValues(g.Name).Inc()
			log.Warn("create failed: retrying", "attempt", attempt, "retry_at", retryAt)
		case state.FailureReleased:
			h.m.Commands.WithLabelValues("delete", state.ReasonCreateFailed).Inc()
			log.Error("create failed for good: runner deleting (its instance may exist), the group backs off, the demand waits", "attempt", attempt)
		default:
			log.Debug("stale create failure ignored", "attempt", attempt, "state", r.State)
		}
	case "delete":
		h.m.Results.WithLabelValues("failed_delete").Inc()
		class := className(f.GetClass())
		h.m.DeleteFailures.WithLabelValues(res.GetGroup(), class).Inc()
		var at time.Time
		failures, err := h.store.DeleteFailed(ctx, name, f.GetReason(), func(n int) time.Time {
			at = h.now().Add(DeleteBackoff(n))
			return at
		})
		if err != nil {
			return err
		}
		if failures > 0 {
			log.Warn("delete failed: retrying", "retry_at", at, "failures", failures)
		} else {
			// No record (a late create's delete): the orphan check of the
			// health checks deletes the instance by its ownership label.
			log.Warn("delete failed for a runner without record: left to the orphan check")
		}
	default:
		h.m.Results.WithLabelValues("failed_unknown").Inc()
		log.Warn("failure of an unknown operation ignored")
	}
	return nil
}
