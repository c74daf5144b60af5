// Package state is the scheduler's truth about every runner and job, kept in
// Redis (docs/design.md §3, §4, §6). It is the one place that knows the keys, the Lua
// scripts and the runner state machine: every change of a runner's state, of a
// group's capacity or of a job's status goes through a method of Store, and
// each method is one Lua script, so that several scheduler replicas never act
// on a stale count and a crash can never separate a reservation from the
// command it emits.
//
// # Keys (P is the manager's name; see libs/keys)
//
//	{P}:runner:<name>          hash: group, backend, state, job_id, for_job,
//	                           instance_id, github_runner_id, attempt,
//	                           created_at, updated_at, state_since (ms since epoch),
//	                           organization, repository, location (JSON object),
//	                           written from the created result: what a delete
//	                           needs whatever the configuration becomes;
//	                           delete_failures, delete_error: the failed
//	                           deletes since the runner went deleting;
//	                           job_run_id, job_repository, job_workflow: the
//	                           job it runs (with job_id), from in_progress
//	{P}:group:<g>:runners      zset: every runner counted against max_runners (score created_at)
//	{P}:group:<g>:free         zset: runners that can still take a job (pending, started, idle)
//	{P}:group:<g>:demand       zset: job id -> queued time (ms); demand is a set, never a counter
//	{P}:group:<g>:backoff      string with TTL: top-ups of g wait while it exists
//	{P}:group:<g>:create_failures  counter with TTL: consecutive failed rounds of creates of g (sets the next backoff)
//	{P}:job:<id>               hash: status, group, runner_name, queued_at,
//	                           in_progress_at, completed_at; TTL JobRetention once
//	                           completed, ActiveJobTTL before
//	{P}:retry                  zset: "create:<runner>" / "delete:<runner>" -> due time (ms)
//	{P}:ghgroup:<g>            string: the GitHub runner group id of g
//	{P}:usage:<start>          hash: a 5-minute bucket of the usage aggregate
//	                           (package usage), added to by the scripts of
//	                           the transitions; runners keep online_at (first
//	                           seen idle), jobs usage_repository, workflow,
//	                           ours and runner_group for it
//
// # Capacity
//
// wanted_free = min_runners + |demand|, free = |free|, total = |runners|.
// A top-up reserves runners while free < wanted_free and total < max_runners,
// writing the runner record (pending) and XADDing its create command in the same
// script. Busy and deleting runners count against max_runners until their
// deleted result. Every script that can lower free or raise demand ends with a
// top-up, so capacity follows demand without waiting for the reconcile loop.
//
// # Commands
//
// Scripts do not encode protobuf: the caller's Commands implementation encodes
// create and delete commands in Go and the scripts XADD them as they are
// (stream fields type/data/traceparent, MAXLEN ~ Options.MaxLen). Before any
// write a script checks that every stream it may append to is a stream, so a
// script that cannot emit writes nothing (Redis does not roll back a script
// that fails half-way).
package state

import (
	"context"
	"time"
)

// State is the lifecycle state of a runner (docs/design.md §4).
//
// docs/design.md §4 also names a "creating" state (a provisioner took the command).
// Provisioners never write state, so the scheduler cannot know it: a runner
// stays pending until the created result.
type State string

// The states of a runner. "Gone" is not a state: the record is removed.
const (
	// Pending: capacity reserved and the create command emitted.
	Pending State = "pending"
	// Started: the instance exists (created result).
	Started State = "started"
	// Idle: registered and online at GitHub, not running a job (learned from GitHub).
	Idle State = "idle"
	// Busy: runs a job (an in_progress event named it).
	Busy State = "busy"
	// Deleting: the delete command was emitted; the record goes on the deleted result.
	Deleting State = "deleting"
)

// transitions is the state machine, the only one: the Lua scripts get it as a
// generated table (see lua.go). A runner may skip forward (pending -> busy when
// the job starts before the created result arrives), and goes back once:
// deleting -> busy, when GitHub refused to remove its registration because
// it took a job since it was chosen (a busy result, docs/design.md §6 "Deleting
// safely"): its instance was left alone, and it is deleted when that job
// completes.
var transitions = map[State][]State{
	Pending:  {Started, Idle, Busy, Deleting},
	Started:  {Idle, Busy, Deleting},
	Idle:     {Busy, Deleting},
	Busy:     {Deleting},
	Deleting: {Busy},
}

// States lists every state in lifecycle order.
func States() []State { return []State{Pending, Started, Idle, Busy, Deleting} }

// CanMove tells whether a runner in state s may move to state to.
func (s State) CanMove(to State) bool {
	for _, t := range transitions[s] {
		if t == to {
			return true
		}
	}
	return false
}

// Free tells whether a runner in state s can still take a job (and so counts
// in the group's free set).
func (s State) Free() bool { return s == Pending || s == Started || s == Idle }

// Valid tells whether s is a known state.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// JobStatus is a job's status; it only moves forward (docs/design.md §4).
type JobStatus string

// Job statuses, in order.
const (
	JobQueued     JobStatus = "queued"
	JobInProgress JobStatus = "in_progress"
	JobCompleted  JobStatus = "completed"
)

// Before tells whether status s comes before t (queued < in_progress < completed).
func (s JobStatus) Before(t JobStatus) bool { return jobRank[s] < jobRank[t] }

var jobRank = map[JobStatus]int{JobQueued: 1, JobInProgress: 2, JobCompleted: 3}

// Runner is a runner's record.
type Runner struct {
	Name    string `json:"name"`
	Group   string `json:"group"`
	Backend string `json:"backend"`
	State   State  `json:"state"`
	// JobID is the job the runner runs (busy), 0 otherwise.
	JobID int64 `json:"job_id"`
	// ForJob is the job whose event reserved the runner, 0 for a top-up
	// (min_runners, or demand met later).
	ForJob         int64  `json:"for_job"`
	InstanceID     string `json:"instance_id,omitempty"`
	GitHubRunnerID int64  `json:"github_runner_id,omitempty"`
	Attempt        int    `json:"attempt"`
	// Organization, Repository and Location (the provisioner's Created
	// location: Docker host, AWS region, GCP project and zone) are where
	// the runner is registered and runs, kept from its creation so that it
	// is deleted there whatever the configuration becomes. Empty for a
	// record older than the fields.
	Organization string            `json:"organization,omitempty"`
	Repository   string            `json:"repository,omitempty"`
	Location     map[string]string `json:"location,omitempty"`
	// SpecHash is the config.SpecHash of the group configuration the
	// runner was created from (the provisioner's Created result): a started
	// or idle runner whose group's hash differs since is retired
	// (ReasonSpecChanged). Empty before the created result, and for a
	// record or a provisioner older than the field (never retired then).
	SpecHash string `json:"spec_hash,omitempty"`
	// JobRunID, JobRepository (owner/name) and JobWorkflow describe the
	// job the runner runs, written with JobID by its in_progress event: the
	// job metadata of the runner, shown by rmctl runners for every backend
	// (the only place it is kept for Docker, whose containers cannot be
	// relabelled). Empty before a job starts.
	JobRunID      int64  `json:"job_run_id,omitempty"`
	JobRepository string `json:"job_repository,omitempty"`
	JobWorkflow   string `json:"job_workflow,omitempty"`
	// DeleteFailures counts the failed deletes of the runner (its deletes
	// back off on it); DeleteError is the last one's secret-free reason.
	DeleteFailures int       `json:"delete_failures,omitempty"`
	DeleteError    string    `json:"delete_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	StateSince     time.Time `json:"state_since"`
}

// Job is a job's last known status.
type Job struct {
	ID           int64     `json:"id"`
	Status       JobStatus `json:"status"`
	Group        string    `json:"group"`
	RunnerName   string    `json:"runner_name,omitempty"`
	QueuedAt     time.Time `json:"queued_at,omitzero"`
	InProgressAt time.Time `json:"in_progress_at,omitzero"`
	CompletedAt  time.Time `json:"completed_at,omitzero"`
}

// Group is what the scripts need to know of a configured runner group. A zero
// MaxRunners (a group no longer configured) never reserves anything.
type Group struct {
	Name       string
	Backend    string
	MinRunners int
	MaxRunners int
}

// Command is an encoded provision command, XADDed by a script as it is.
type Command struct {
	// ID is the command_id inside Data, for logs.
	ID string
	// Data is the protobuf rmv1.ProvisionCommand.
	Data []byte
	// Traceparent is the W3C trace context of the decision.
	Traceparent string
}

// Candidate is a runner a script may reserve: a fresh name and its create
// command (attempt 1). Unused candidates are simply dropped.
type Candidate struct {
	Name   string
	ForJob int64
	Create Command
}

// Commands encodes the commands the scripts emit. The scheduler implements it
// from the configuration (internal/command); tests may fake it.
type Commands interface {
	// Creates returns n candidates for group g, reserved on behalf of forJob
	// (0 for a top-up).
	Creates(ctx context.Context, g Group, forJob int64, n int) ([]Candidate, error)
	// Retry returns the create command of an existing runner for attempt.
	Retry(ctx context.Context, r Runner, attempt int) (Command, error)
	// Delete returns the delete command of r, for reason (job_completed,
	// time_to_start, time_to_live, orphan, admin, scale_down, ...).
	Delete(ctx context.Context, r Runner, reason string) (Command, error)
	// Update returns the UpdateRunner command that tells r's instance the
	// job u started; a zero Command (no Data) when r's backend keeps the
	// metadata in the record (backend.MetadataInRecord): nothing is emitted.
	Update(ctx context.Context, r Runner, u JobUpdate) (Command, error)
}

// Reasons of delete commands emitted by this package's callers.
const (
	ReasonJobCompleted = "job_completed"
	ReasonScaleDown    = "scale_down"
	ReasonAdmin        = "admin"
	// ReasonAdminForce: an operator's delete of a runner that may run a job,
	// with ?force=true: the instance goes even when the job runs.
	ReasonAdminForce  = "admin_force"
	ReasonLateCreate  = "created_without_record"
	ReasonTimeToStart = "time_to_start"
	ReasonTimeToLive  = "time_to_live"
	// ReasonRegistrationGone: an idle runner whose registration GitHub no
	// longer lists.
	ReasonRegistrationGone = "registration_gone"
	// ReasonGroupRemoved: a runner not busy of a group no longer in the
	// configuration (its busy runners go when their job completes).
	ReasonGroupRemoved = "group_removed"
	// ReasonSpecChanged: a started or idle runner created from a
	// configuration of its group that changed since (image, network, zones,
	// labels...): it is replaced by one of the current configuration.
	ReasonSpecChanged = "spec_changed"
	// ReasonDrained: a runner not busy of a draining group (its busy ones
	// go with job_completed).
	ReasonDrained = "drained"
	// ReasonCreateFailed: a create failed for good (or its command was
	// dead-lettered): its instance may exist, so the runner is deleted
	// (registration, then instance) rather than forgotten.
	ReasonCreateFailed = "create_failed"
)

// RegistrationGone tells whether the delete of r for reason finds no
// registration at GitHub to remove: GitHub unregisters an ephemeral runner
// once the job it started is done, and registration_gone says GitHub no
// longer lists it. A runner not busy when its job completed may never have
// received the job (cancelled first) and still be registered. A registration
// that lingers anyway, offline and without a record, is removed by the health
// checks' GitHub-orphan pass.
func RegistrationGone(r Runner, reason string) bool {
	return reason == ReasonRegistrationGone || reason == ReasonJobCompleted && r.State == Busy
}
