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
}

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
