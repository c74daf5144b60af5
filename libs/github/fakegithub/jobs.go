package fakegithub

import (
	"cmp"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub/runnerapi"
	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// Job statuses and conclusions, as GitHub spells them.
const (
	StatusQueued     = "queued"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"

	ConclusionSuccess   = "success"
	ConclusionFailure   = "failure"
	ConclusionCancelled = "cancelled"
)

// ErrNotFound is returned for an unknown job or runner.
var ErrNotFound = errors.New("not found")

// JobSpec describes a job to queue.
type JobSpec struct {
	Owner  string   `json:"owner"`
	Repo   string   `json:"repo"`
	Labels []string `json:"labels"`
	// Duration the runner "runs" the job; DurationSeconds is its JSON form.
	Duration        time.Duration `json:"-"`
	DurationSeconds float64       `json:"duration_seconds"`
	// Name of the job and of its workflow (defaults "build", "CI").
	Name         string `json:"name,omitempty"`
	WorkflowName string `json:"workflow_name,omitempty"`
}

// Job is the state of a job as the control API shows it.
type Job struct {
	ID              int64      `json:"id"`
	RunID           int64      `json:"run_id"`
	Owner           string     `json:"owner"`
	Repo            string     `json:"repo"`
	RepositoryID    int64      `json:"repository_id"`
	Labels          []string   `json:"labels"`
	DurationSeconds float64    `json:"duration_seconds"`
	Status          string     `json:"status"`
	Conclusion      string     `json:"conclusion,omitempty"`
	RunnerID        int64      `json:"runner_id,omitempty"`
	RunnerName      string     `json:"runner_name,omitempty"`
	RunnerGroupID   int64      `json:"runner_group_id,omitempty"`
	RunnerGroupName string     `json:"runner_group_name,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	CompletedAt     *time.Time `json:"completed_at,omitempty"`
}

func (j *job) public() Job {
	p := Job{
		ID: j.id, RunID: j.runID, Owner: j.repo.owner, Repo: j.repo.name, RepositoryID: j.repo.id,
		Labels: slices.Clone(j.labels), DurationSeconds: j.duration.Seconds(), Status: j.status,
		Conclusion: j.conclusion, RunnerID: j.runnerID, RunnerName: j.runnerName,
		RunnerGroupID: j.groupID, RunnerGroupName: j.groupName, CreatedAt: j.created,
	}
	if !j.started.IsZero() {
		t := j.started
		p.StartedAt = &t
	}
	if !j.completed.IsZero() {
		t := j.completed
		p.CompletedAt = &t
	}
	return p
}

// QueueJob queues a job: it sends workflow_job "queued" and waits for a runner.
func (s *Server) QueueJob(spec JobSpec) (Job, error) {
	if spec.Owner == "" || spec.Repo == "" {
		return Job{}, errors.New("queue job: owner and repo are required")
	}
	if len(spec.Labels) == 0 {
		return Job{}, errors.New("queue job: labels are required")
	}
	if spec.Duration == 0 {
		spec.Duration = time.Duration(spec.DurationSeconds * float64(time.Second))
	}
	if spec.Duration < 0 {
		return Job{}, errors.New("queue job: negative duration")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newIDLocked()
	sum := sha1.Sum([]byte(strconv.FormatInt(id, 10)))
	j := &job{
		id:       id,
		runID:    s.newIDLocked(),
		repo:     s.repoLocked(spec.Owner, spec.Repo),
		labels:   slices.Clone(spec.Labels),
		duration: spec.Duration,
		name:     cmp.Or(spec.Name, "build"),
		workflow: cmp.Or(spec.WorkflowName, "CI"),
		branch:   "main",
		sha:      hex.EncodeToString(sum[:]),
		status:   StatusQueued,
		created:  s.opts.Now(),
	}
	s.jobs[j.id] = j
	s.queued[j.id] = j
	s.enqueueJobEventLocked(j)
	s.dispatchLocked()
	return j.public(), nil
}

// Job returns a job's state.
func (s *Server) Job(id int64) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return Job{}, false
	}
	return j.public(), true
}

// Jobs returns the jobs with that status ("" for all), oldest first.
func (s *Server) Jobs(status string) []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Job{}
	for _, j := range s.jobs {
		if status == "" || j.status == status {
			out = append(out, j.public())
		}
	}
	slices.SortFunc(out, func(a, b Job) int { return int(a.ID - b.ID) })
	return out
}

// CancelJob cancels a job. A queued job completes "cancelled" with no runner; a
// running one completes "cancelled" and its runner is told to stop. Cancelling a
// completed job changes nothing.
func (s *Server) CancelJob(id int64) (Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return Job{}, fmt.Errorf("cancel job %d: %w", id, ErrNotFound)
	}
	switch j.status {
	case StatusQueued:
		if rn := s.runners[j.assignedTo]; rn != nil && rn.jobID == j.id {
			// sent to a runner that has not acknowledged: jobAcknowledged cancels it
			j.assignedTo = -1
		}
		s.completeJobLocked(j, ConclusionCancelled)
	case StatusInProgress:
		s.completeJobLocked(j, ConclusionCancelled)
		if rn := s.runners[j.runnerID]; rn != nil {
			if rn.conn != nil {
				rn.conn.send(runnerapi.Message{Type: runnerapi.TypeCancel, Job: &runnerapi.Job{ID: j.id}})
			}
			rn.busy = false
			rn.jobID = 0
			s.removeRunnerLocked(rn, false)
		}
	}
	return j.public(), nil
}

func (s *Server) completeJobLocked(j *job, conclusion string) {
	j.status = StatusCompleted
	delete(s.queued, j.id)
	j.conclusion = conclusion
	j.completed = s.opts.Now()
	s.enqueueJobEventLocked(j)
}

// payloadJob maps a job to the descriptor webhooktest builds the workflow job
// object from, for the REST API and for workflow_job webhooks (s.mu held; the
// caller adds the installation). A job has its six steps once a runner has
// started it.
func (s *Server) payloadJob(j *job) webhooktest.Job {
	d := webhooktest.Job{
		Action:              j.status,
		ID:                  j.id,
		RunID:               j.runID,
		RunAttempt:          1,
		Labels:              slices.Clone(j.labels),
		Owner:               j.repo.owner,
		OwnerID:             s.orgLocked(j.repo.owner).id,
		Repository:          j.repo.name,
		RepositoryID:        j.repo.id,
		RepositoryPrivate:   j.repo.private,
		RepositoryCreatedAt: j.repo.created,
		RunnerID:            j.runnerID,
		RunnerName:          j.runnerName,
		RunnerGroupID:       j.groupID,
		RunnerGroupName:     j.groupName,
		Status:              j.status,
		Conclusion:          j.conclusion,
		Name:                j.name,
		WorkflowName:        j.workflow,
		HeadBranch:          j.branch,
		HeadSHA:             j.sha,
		CreatedAt:           j.created,
		StartedAt:           j.started,
		CompletedAt:         j.completed,
	}
	if !j.started.IsZero() {
		d.Steps = 6
	}
	return d
}

// getJob: GET /repos/{owner}/{repo}/actions/jobs/{job_id}.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("job_id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil || !strings.EqualFold(j.repo.owner, r.PathValue("owner")) || !strings.EqualFold(j.repo.name, r.PathValue("repo")) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, webhooktest.WorkflowJobObject(s.payloadJob(j)))
}
