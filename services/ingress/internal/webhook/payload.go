package webhook

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
)

// payload holds the only fields of a workflow_job delivery the scheduler
// needs; the rest (most of the 7-12 KB of a delivery is the repository
// object's URLs) is validated and skipped. decodeFast fills it in one pass;
// the json tags say what it must do, and encoding/json is its reference in
// the tests.
type payload struct {
	Action      string       `json:"action"`
	WorkflowJob *workflowJob `json:"workflow_job"`
	Repository  struct {
		ID    int64  `json:"id"`
		Name  string `json:"name"`
		Owner struct {
			Login string `json:"login"`
		} `json:"owner"`
	} `json:"repository"`
	Installation struct {
		ID int64 `json:"id"`
	} `json:"installation"`
}

type workflowJob struct {
	ID              int64    `json:"id"`
	RunID           number   `json:"run_id"`
	RunAttempt      int64    `json:"run_attempt"`
	Labels          []string `json:"labels"`
	RunnerID        number   `json:"runner_id"`
	RunnerName      string   `json:"runner_name"`
	RunnerGroupID   number   `json:"runner_group_id"`
	RunnerGroupName string   `json:"runner_group_name"`
	Status          string   `json:"status"`
	Conclusion      string   `json:"conclusion"`
	Name            string   `json:"name"`
	WorkflowName    string   `json:"workflow_name"`
	CreatedAt       string   `json:"created_at"`
	StartedAt       string   `json:"started_at"`
	CompletedAt     string   `json:"completed_at"`
}

// number is an id that GitHub's schemas type as "number" in some variants
// (run_id, runner_id, runner_group_id): an integer, an integral float, or null.
type number int64

func (n *number) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*n = number(v)
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return errors.New("not an integer")
	}
	*n = number(f)
	return nil
}

// errInvalidPayload is what decode returns for a body the ingress refuses with 400.
var errInvalidPayload = errors.New("invalid workflow_job payload")

// decode parses a workflow_job body. It fails when the body is not JSON or
// lacks action or workflow_job.id.
func decode(body []byte) (*payload, error) {
	var p payload
	if err := decodeFast(body, &p); err != nil {
		return nil, errors.Join(errInvalidPayload, err)
	}
	if p.Action == "" {
		return nil, errors.Join(errInvalidPayload, errors.New("no action"))
	}
	if p.WorkflowJob == nil || p.WorkflowJob.ID <= 0 {
		return nil, errors.Join(errInvalidPayload, errors.New("no workflow_job.id"))
	}
	return &p, nil
}

// event is the message published for the delivery.
func (p *payload) event(delivery string, received time.Time) *rmv1.WorkflowJobEvent {
	j := p.WorkflowJob
	return &rmv1.WorkflowJobEvent{
		DeliveryId:      delivery,
		Action:          p.Action,
		JobId:           j.ID,
		RunId:           int64(j.RunID),
		RunAttempt:      j.RunAttempt,
		Labels:          j.Labels,
		Owner:           p.Repository.Owner.Login,
		Repository:      p.Repository.Name,
		RepositoryId:    p.Repository.ID,
		InstallationId:  p.Installation.ID,
		RunnerId:        int64(j.RunnerID),
		RunnerName:      j.RunnerName,
		RunnerGroupId:   int64(j.RunnerGroupID),
		RunnerGroupName: j.RunnerGroupName,
		Status:          j.Status,
		Conclusion:      j.Conclusion,
		JobName:         j.Name,
		WorkflowName:    j.WorkflowName,
		CreatedAt:       timestamp(j.CreatedAt),
		StartedAt:       timestamp(j.StartedAt),
		CompletedAt:     timestamp(j.CompletedAt),
		ReceivedAt:      timestamppb.New(received),
	}
}

// timestamp parses GitHub's RFC 3339 times. An absent or unreadable time is
// left out rather than refusing the delivery: the scheduler decides on the
// action and status, and losing a job over a timestamp would be worse.
func timestamp(s string) *timestamppb.Timestamp {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return timestamppb.New(t)
}
