package fakegithub_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// shape is what a JSON document looks like, without its values: the same
// properties at every depth, each with its JSON type ("null" where null).
func shape(t *testing.T, doc []byte) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(doc, &v), string(doc))
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			m := map[string]any{}
			for k, e := range x {
				m[k] = walk(e)
			}
			return m
		case []any:
			l := make([]any, len(x))
			for i, e := range x {
				l[i] = walk(e)
			}
			return l
		case nil:
			return "null"
		default:
			return fmt.Sprintf("%T", x)
		}
	}
	return walk(v)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestPayloadsAreWebhooktests pins that libs/github/webhooktest alone shapes
// what the fake sends and answers, so that the ingress tests (built on
// webhooktest) decode what the end-to-end runs deliver: each workflow_job
// webhook has exactly the shape of webhooktest's payload for the same action
// and the same state (every property at every depth, its JSON type, its
// nulls); the REST job object is the workflow_job of the job's last webhook,
// value for value; the runner groups' repositories are webhooktest's minimal
// repositories.
func TestPayloadsAreWebhooktests(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	labels := []string{"self-hosted", "linux"}
	// the fake's payloads: an App installation, no enterprise
	want := func(action string, labels []string, opts ...webhooktest.Option) []byte {
		j := webhooktest.NewJob(action, 1, labels, append([]webhooktest.Option{webhooktest.WithInstallation(fakegithub.DefaultInstallationID)}, opts...)...)
		j.Enterprise = false
		return j.JSON()
	}

	a := e.register("acme", "", "rm-1", fakegithub.DefaultRunnerGroupID, labels...)
	errc := e.startOnline(a)
	ran, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: labels, Duration: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, recvErr(t, errc))
	evs := e.waitEvents(ran.ID, 3)
	require.Equal(t, []string{"queued", "in_progress", "completed"}, actions(evs))
	for _, ev := range evs {
		require.Equal(t, shape(t, want(ev.Action, labels)), shape(t, ev.Body), "%s webhook", ev.Action)
	}

	// cancelled while queued: no runner, no steps
	nobody := []string{"nobody"}
	cancelled, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: nobody})
	require.NoError(t, err)
	_, err = e.fake.CancelJob(cancelled.ID)
	require.NoError(t, err)
	cevs := e.waitEvents(cancelled.ID, 2)
	require.Equal(t, []string{"queued", "completed"}, actions(cevs))
	require.Equal(t, shape(t, want(webhooktest.ActionCompleted, nobody, webhooktest.WithoutRunner(), webhooktest.WithConclusion("cancelled"), webhooktest.WithSteps(0))),
		shape(t, cevs[1].Body))

	for _, last := range []event{evs[2], cevs[1]} {
		var got map[string]any
		e.call("GET", fmt.Sprintf("/repos/acme/app/actions/jobs/%d", last.JobID), nil, &got)
		require.Equal(t, last.Job, got, "the REST job is the last webhook's workflow_job")
	}

	var g struct {
		ID int64 `json:"id"`
	}
	e.call("POST", "/orgs/acme/actions/runner-groups", map[string]any{"name": "small", "visibility": "selected",
		"selected_repository_ids": []int64{e.fake.Repository("acme", "app")}}, &g)
	var list struct {
		Repositories []any `json:"repositories"`
	}
	e.call("GET", fmt.Sprintf("/orgs/acme/actions/runner-groups/%d/repositories", g.ID), nil, &list)
	require.Len(t, list.Repositories, 1)
	repo := webhooktest.NewJob(webhooktest.ActionQueued, 1, labels).Repo()
	require.Equal(t, shape(t, mustMarshal(t, webhooktest.MinimalRepositoryObject(repo))), shape(t, mustMarshal(t, list.Repositories[0])))
}
