package statuspage

import (
	"context"
	"time"

	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/usage"
)

// WaitSource says how long jobs waited for a runner: per group, the jobs
// that started within since, their rate and the p50/p95 of their wait
// (queued → in_progress). usage.Aggregate has this method.
type WaitSource interface {
	Waits(ctx context.Context, since time.Duration) ([]GroupWaits, error)
}

// GroupWaits is one group's waits over a window (the usage aggregate's).
type GroupWaits = usage.GroupWaits

// BudgetSource says what is left of the GitHub API budget, per installation.
type BudgetSource interface {
	Budgets() []Budget
}

// Budget is one installation's (or token's) rate-limit window
// (github.Client.Budgets).
type Budget = github.Budget
