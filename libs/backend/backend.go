// Package backend is the contract between the provisioner runtime and the
// places runners run on (docs/design.md §9): Docker, AWS EC2, GCP Compute Engine, and
// an in-memory backend for tests.
package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
)

// Ownership labels (or tags) every backend puts on its instances.
const (
	LabelManager = "runner-manager.io/manager" // the manager's name
	LabelGroup   = "runner-manager.io/group"   // the runner group
	LabelRunner  = "runner-manager.io/runner"  // the runner's name
)

// RunnerSpec is what a backend needs to start one runner.
type RunnerSpec struct {
	// Name of the runner, also the instance name; unique, at most 63 characters.
	Name   string
	Group  string
	Labels []string
	// JITConfig is the encoded just-in-time configuration; it reaches only the
	// instance (Docker: ACTIONS_RUNNER_INPUT_JITCONFIG; AWS: user data; GCP: metadata).
	JITConfig config.Secret
	// InstanceSpec is the JSON of the group's backend section.
	InstanceSpec []byte
	// Runner is the runner package a VM installs when its bootstrap pins no
	// runner_version: the one GitHub's runner downloads API offers for the
	// group's architecture, resolved by the provisioner runtime. Nil for
	// Docker and for a pinned version.
	Runner *RunnerPackage
}

// RunnerPackage is a runner archive and its checksum.
type RunnerPackage struct {
	Version string
	URL     string
	// SHA256 of the archive in hexadecimal; the VM refuses a mismatch.
	SHA256 string
}

// Instance is one runner's instance on a backend.
type Instance struct {
	Name      string
	ID        string
	Group     string
	State     string
	CreatedAt time.Time
}

// Backend hosts runners. Every method is idempotent.
type Backend interface {
	// Create starts the runner's instance; a second Create of the same name
	// returns the existing instance and makes no second one.
	Create(ctx context.Context, r RunnerSpec) (Instance, error)
	// Delete removes the instance of that runner name; not found is nil.
	Delete(ctx context.Context, name string) error
	// List returns the instances that carry this manager's ownership label.
	List(ctx context.Context) ([]Instance, error)
	// UpdateRunner records md on the runner's instance (EC2 tags, GCE
	// labels) when its job starts; setting the same metadata again changes
	// nothing. An instance not found is an error wrapping ErrPermanent (it is
	// gone, or never was this manager's). A backend that cannot change an
	// instance's metadata after its creation returns ErrMetadataInRecord:
	// the scheduler keeps the metadata in the runner's record instead (and
	// emits no update for that backend type, see MetadataInRecord).
	UpdateRunner(ctx context.Context, name string, md RunnerMetadata) error
}

// RunnerMetadata is what a runner's instance is told when its job starts
// (docs/cloud-backends.md, "Job metadata").
type RunnerMetadata struct {
	JobID int64
	RunID int64
	// Repository is owner/name.
	Repository string
	Workflow   string
	// State is the runner's state, StateBusy.
	State string
}

// StateBusy is the state UpdateRunner records when a job starts.
const StateBusy = "busy"

// Keys of the tags (EC2) and labels (GCE) UpdateRunner sets. One spelling
// on both clouds (GCE label keys allow no '/' or '.'), so that one cost
// allocation key, runner-manager-repository, works on both bills.
const (
	MetaJobID      = "runner-manager-job-id"
	MetaRunID      = "runner-manager-run-id"
	MetaRepository = "runner-manager-repository"
	MetaWorkflow   = "runner-manager-workflow"
	MetaState      = "runner-manager-state"
)

// Values returns md as tag or label values by key, unsanitised: each
// backend makes them valid for its cloud. Zero ids and empty strings are
// left out.
func (md RunnerMetadata) Values() map[string]string {
	out := map[string]string{}
	put := func(k, v string) {
		if v != "" && v != "0" {
			out[k] = v
		}
	}
	put(MetaJobID, fmt.Sprint(md.JobID))
	put(MetaRunID, fmt.Sprint(md.RunID))
	put(MetaRepository, md.Repository)
	put(MetaWorkflow, md.Workflow)
	put(MetaState, md.State)
	return out
}

// ErrMetadataInRecord is returned by UpdateRunner of a backend that cannot
// change an instance's metadata after its creation (Docker: a container's
// labels are fixed). It wraps ErrPermanent: retrying never helps.
var ErrMetadataInRecord = fmt.Errorf("the backend cannot change an instance's metadata after its creation; it is kept in the runner's record: %w", ErrPermanent)

// MetadataInRecord tells whether the runners of backendType keep their job
// metadata only in their record (their backend's UpdateRunner returns
// ErrMetadataInRecord): the scheduler emits no UpdateRunner command for them.
func MetadataInRecord(backendType string) bool { return backendType == config.BackendDocker }

// CheckRunnerName returns an error wrapping ErrPermanent when name is not a
// valid runner name (config.IsRunnerName: a DNS label of at most 63
// characters that starts with a letter). Every backend calls it at the top
// of Create and Delete, before the name reaches a container or instance
// name, a tag, a label or a startup script; the provisioner runtime calls it
// before anything else. The name is quoted, so that whatever it holds cannot
// forge a log line or a result.
func CheckRunnerName(name string) error {
	if !config.IsRunnerName(name) {
		return fmt.Errorf("runner name %.80q is not valid (a-z, 0-9 and '-', starting with a letter, not ending with '-', at most %d characters): %w",
			name, config.MaxRunnerNameLen, ErrPermanent)
	}
	return nil
}

// Error classes. Backends wrap their errors with one of them, so that
// Classify and errors.Is can tell what to do.
var (
	// ErrCapacity: the backend has no room now (zone exhausted, quota).
	ErrCapacity = errors.New("no capacity")
	// ErrPermanent: retrying will not help (bad image, bad parameters, denied).
	ErrPermanent = errors.New("permanent failure")
	// ErrRetryable: try again later (timeout, 5xx, throttled).
	ErrRetryable = errors.New("retryable failure")
)

// Classify maps an error to the failure class carried in results. Unknown
// errors are retryable: a bounded number of retries is cheaper than a job that
// never gets a runner.
func Classify(err error) rmv1.FailureClass {
	switch {
	case err == nil:
		return rmv1.FailureClass_FAILURE_CLASS_UNSPECIFIED
	case errors.Is(err, ErrCapacity):
		return rmv1.FailureClass_FAILURE_CLASS_CAPACITY
	case errors.Is(err, ErrPermanent):
		return rmv1.FailureClass_FAILURE_CLASS_PERMANENT
	default:
		return rmv1.FailureClass_FAILURE_CLASS_RETRYABLE
	}
}
