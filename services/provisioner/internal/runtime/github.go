package runtime

import (
	"context"
	"errors"

	"github.com/runner-manager/runner-manager/libs/backend"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
)

// GitHub is the part of the GitHub API the runtime uses; *github.Client
// (libs/github) implements it, and so does runtimetest.GitHub. Errors match
// the classes of libs/github with errors.Is: the runtime branches on
// github.ErrConflict and github.ErrNotFound, and classifies the others.
type GitHub interface {
	// GenerateJITConfig registers a runner and returns its JIT configuration;
	// a name already registered is github.ErrConflict.
	GenerateJITConfig(ctx context.Context, scope github.Scope, req github.JITRequest) (*github.JITConfig, error)
	// GetRunnerByName returns the registered runner called name, or
	// github.ErrNotFound.
	GetRunnerByName(ctx context.Context, scope github.Scope, name string) (*github.Runner, error)
	// DeleteRunner removes a runner's registration; github.ErrNotFound when
	// it was gone already.
	DeleteRunner(ctx context.Context, scope github.Scope, id int64) error
	// GetRunnerGroupByName returns the organization's runner group called
	// name, or github.ErrNotFound.
	GetRunnerGroupByName(ctx context.Context, org, name string) (*github.RunnerGroup, error)
	// ListRunnerApplications returns the runner packages GitHub offers the
	// scope (the current version, per OS and architecture).
	ListRunnerApplications(ctx context.Context, scope github.Scope) ([]github.RunnerApplication, error)
}

var _ GitHub = (*github.Client)(nil)

// scopeOf returns the scope of a runner of organization org, and of
// repository repo when it is a repository-level runner.
func scopeOf(org, repo string) github.Scope {
	if repo != "" {
		return github.RepoScope(org, repo)
	}
	return github.OrgScope(org)
}

// classify maps an error of a backend or of GitHub to the failure class of
// a result. GitHub errors first: a 4xx is permanent, rate limits, 5xx and a
// busy runner are retryable; then the backend classes (unknown errors are
// retryable).
func classify(err error) rmv1.FailureClass {
	switch {
	case err == nil:
		return rmv1.FailureClass_FAILURE_CLASS_UNSPECIFIED
	case errors.Is(err, github.ErrRateLimited), errors.Is(err, github.ErrRetryable), errors.Is(err, github.ErrRunnerBusy):
		return rmv1.FailureClass_FAILURE_CLASS_RETRYABLE
	case errors.Is(err, github.ErrPermanent), errors.Is(err, github.ErrNotFound), errors.Is(err, github.ErrConflict):
		return rmv1.FailureClass_FAILURE_CLASS_PERMANENT
	}
	return backend.Classify(err)
}
