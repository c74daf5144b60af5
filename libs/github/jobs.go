package github

import (
	"context"
	"fmt"
	"net/url"
	"time"

	gh "github.com/google/go-github/v62/github"
)

// Workflow job statuses and conclusions reported by GitHub.
const (
	JobQueued     = "queued"
	JobInProgress = "in_progress"
	JobCompleted  = "completed"
	JobWaiting    = "waiting"
)

// Job is a workflow job.
type Job struct {
	ID    int64
	RunID int64
	Name  string
	// Status: queued, in_progress, completed, waiting...
	Status string
	// Conclusion once completed: success, failure, cancelled, skipped...
	Conclusion string
	Labels     []string
	// Runner fields are set once a runner took the job.
	RunnerID        int64
	RunnerName      string
	RunnerGroupID   int64
	RunnerGroupName string
	RunAttempt      int64
	WorkflowName    string
	HeadBranch      string
	CreatedAt       time.Time
	StartedAt       time.Time
	CompletedAt     time.Time
}

// Done tells whether the job has completed.
func (j Job) Done() bool { return j.Status == JobCompleted }

// GetJob returns a workflow job of a repository, or ErrNotFound.
func (c *Client) GetJob(ctx context.Context, owner, repo string, id int64) (*Job, error) {
	op := fmt.Sprintf("get job %d of %s/%s", id, owner, repo)
	if owner == "" || repo == "" {
		return nil, invalid(op, "empty owner or repository")
	}
	var j *Job
	err := c.callAs(ctx, op, false, repoAccount(owner, repo), func(ctx context.Context, g *gh.Client) error {
		wj, _, err := g.Actions.GetWorkflowJobByID(ctx, url.PathEscape(owner), url.PathEscape(repo), id)
		if err != nil {
			return err
		}
		j = &Job{
			ID: wj.GetID(), RunID: wj.GetRunID(), Name: wj.GetName(),
			Status: wj.GetStatus(), Conclusion: wj.GetConclusion(), Labels: wj.Labels,
			RunnerID: wj.GetRunnerID(), RunnerName: wj.GetRunnerName(),
			RunnerGroupID: wj.GetRunnerGroupID(), RunnerGroupName: wj.GetRunnerGroupName(),
			RunAttempt: wj.GetRunAttempt(), WorkflowName: wj.GetWorkflowName(), HeadBranch: wj.GetHeadBranch(),
			CreatedAt: wj.GetCreatedAt().Time, StartedAt: wj.GetStartedAt().Time, CompletedAt: wj.GetCompletedAt().Time,
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}
