package webhooktest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/reference"
	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// webhookSchemas returns the x-webhooks request body schemas of GitHub's
// OpenAPI description (libs/github/reference).
func webhookSchemas(t *testing.T) map[string]*openapi3.Schema {
	t.Helper()
	raw, err := reference.OpenAPI()
	require.NoError(t, err)
	var doc struct {
		Webhooks map[string]struct {
			Post struct {
				RequestBody struct {
					Content map[string]struct {
						Schema json.RawMessage `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
			} `json:"post"`
		} `json:"x-webhooks"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	out := map[string]*openapi3.Schema{}
	for name, w := range doc.Webhooks {
		s := &openapi3.Schema{}
		require.NoError(t, json.Unmarshal(w.Post.RequestBody.Content["application/json"].Schema, s), name)
		out[name] = s
	}
	return out
}

func TestPayloadsMatchGitHubSchemas(t *testing.T) {
	schemas := webhookSchemas(t)
	labels := []string{"self-hosted", "linux", "small"}
	cases := []struct {
		schema string
		body   []byte
	}{
		{"workflow-job-queued", webhooktest.Payload(webhooktest.ActionQueued, 30433642, labels)},
		{"workflow-job-queued", webhooktest.Payload(webhooktest.ActionQueued, 30433643, labels, webhooktest.WithInstallation(7))},
		{"workflow-job-waiting", webhooktest.Payload(webhooktest.ActionWaiting, 30433644, labels)},
		{"workflow-job-in-progress", webhooktest.Payload(webhooktest.ActionInProgress, 30433645, labels)},
		{"workflow-job-completed", webhooktest.Payload(webhooktest.ActionCompleted, 30433646, labels)},
		{"workflow-job-completed", webhooktest.Payload(webhooktest.ActionCompleted, 30433647, labels,
			webhooktest.WithoutRunner(), webhooktest.WithConclusion("cancelled"))},
		{"workflow-job-completed", webhooktest.Payload(webhooktest.ActionCompleted, 30433648, labels,
			webhooktest.WithConclusion("failure"))},
		{"workflow-job-in-progress", publicRepoWithoutEnterprise(webhooktest.NewJob(webhooktest.ActionInProgress, 30433649, labels)).JSON()},
		{"ping", webhooktest.PingPayload(512345678)},
		{"ping", webhooktest.Hook{ID: 7, AppID: 1234, URL: "http://127.0.0.1:1/webhook", Secret: true, CreatedAt: time.Unix(1_800_000_000, 0)}.PingJSON()},
	}
	for _, tc := range cases {
		t.Run(tc.schema, func(t *testing.T) {
			s, ok := schemas[tc.schema]
			require.True(t, ok, "schema %s", tc.schema)
			var v any
			require.NoError(t, json.Unmarshal(tc.body, &v))
			require.NoError(t, s.VisitJSON(v, openapi3.MultiErrors()))
		})
	}
}

// publicRepoWithoutEnterprise moves the job to a public repository of an
// organization outside any enterprise (the fake GitHub has none).
func publicRepoWithoutEnterprise(j webhooktest.Job) webhooktest.Job {
	j.RepositoryPrivate, j.Enterprise = false, false
	return j
}

func TestPayloadSize(t *testing.T) {
	for _, action := range []string{webhooktest.ActionQueued, webhooktest.ActionInProgress, webhooktest.ActionCompleted} {
		n := len(webhooktest.Payload(action, 1, []string{"self-hosted", "linux"}))
		require.True(t, n >= 7<<10 && n <= 12<<10, "%s payload is %d bytes, want 7-12 KB like GitHub's", action, n)
	}
}

func TestSign(t *testing.T) {
	body := []byte(`{"action":"queued"}`)
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write(body)
	require.Equal(t, "sha256="+hex.EncodeToString(m.Sum(nil)), webhooktest.Sign("s3cret", body))
	// GitHub's documented example (docs.github.com, "Validating webhook deliveries").
	require.Equal(t, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		webhooktest.Sign("It's a Secret to Everybody", []byte("Hello, World!")))
}

func TestHeaderAndDeliveryID(t *testing.T) {
	id := webhooktest.NewDeliveryID()
	require.Len(t, id, 36)
	require.Equal(t, 4, strings.Count(id, "-"))
	require.NotEqual(t, id, webhooktest.NewDeliveryID())
	body := []byte("{}")
	h := webhooktest.Header("workflow_job", id, "k", body)
	require.Equal(t, "workflow_job", h.Get(webhooktest.HeaderEvent))
	require.Equal(t, id, h.Get(webhooktest.HeaderDelivery))
	require.Equal(t, webhooktest.Sign("k", body), h.Get(webhooktest.HeaderSignature256))
	require.Empty(t, webhooktest.Header("ping", id, "", body).Get(webhooktest.HeaderSignature256))
}

// restSchema returns the schema of the 200 answer of GET path in GitHub's
// OpenAPI description.
func restSchema(t *testing.T, path string) *openapi3.Schema {
	t.Helper()
	raw, err := reference.OpenAPI()
	require.NoError(t, err)
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	require.NoError(t, err)
	return doc.Paths.Value(path).Get.Responses.Status(200).Value.Content.Get("application/json").Schema.Value
}

// visit validates v, marshalled and decoded like a client would, against s.
func visit(t *testing.T, s *openapi3.Schema, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(b, &doc))
	require.NoError(t, s.VisitJSON(doc, openapi3.MultiErrors()), string(b))
}

// The fake GitHub answers GET .../actions/jobs/{job_id} and the runner
// groups' repository lists with these objects.
func TestObjectsMatchGitHubRESTSchemas(t *testing.T) {
	job := restSchema(t, "/repos/{owner}/{repo}/actions/jobs/{job_id}")
	labels := []string{"self-hosted", "linux"}
	for _, j := range []webhooktest.Job{
		webhooktest.NewJob(webhooktest.ActionQueued, 11, labels, webhooktest.WithTimes(time.Unix(1_800_000_000, 0), time.Time{}, time.Time{})),
		webhooktest.NewJob(webhooktest.ActionInProgress, 12, labels),
		webhooktest.NewJob(webhooktest.ActionCompleted, 13, labels),
		webhooktest.NewJob(webhooktest.ActionCompleted, 14, labels, webhooktest.WithConclusion("failure")),
		webhooktest.NewJob(webhooktest.ActionCompleted, 15, labels, webhooktest.WithoutRunner(), webhooktest.WithConclusion("cancelled"), webhooktest.WithSteps(0)),
	} {
		visit(t, job, webhooktest.WorkflowJobObject(j))
	}

	list := restSchema(t, "/orgs/{org}/actions/runner-groups/{runner_group_id}/repositories")
	repo := webhooktest.Repo{Owner: "acme", OwnerID: 7, Name: "app", ID: 8, CreatedAt: time.Unix(1_700_000_000, 0)}
	visit(t, list, map[string]any{"total_count": 1, "repositories": []any{webhooktest.MinimalRepositoryObject(repo)}})
	full := webhooktest.RepositoryObject(repo)
	require.Equal(t, false, full["private"])
	require.Equal(t, "public", full["visibility"])
	require.Contains(t, full, "custom_properties")
	require.NotContains(t, webhooktest.MinimalRepositoryObject(repo), "custom_properties")
}

// TestWorkflowJobObjectFollowsTheJob pins the null and non-null rules of the
// workflow job object, which the fake's REST job object follows too.
func TestWorkflowJobObjectFollowsTheJob(t *testing.T) {
	created := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	labels := []string{"self-hosted"}

	// queued: started_at is created_at, no steps, no runner, no conclusion
	q := webhooktest.NewJob(webhooktest.ActionQueued, 21, labels, webhooktest.WithTimes(created, time.Time{}, time.Time{}))
	o := webhooktest.WorkflowJobObject(q)
	require.Equal(t, "2026-05-01T10:00:00Z", o["started_at"])
	require.Equal(t, o["created_at"], o["started_at"])
	require.Empty(t, o["steps"])
	for _, k := range []string{"conclusion", "completed_at", "runner_id", "runner_name", "runner_group_id", "runner_group_name"} {
		require.Nil(t, o[k], k)
	}
	require.Equal(t, "queued", o["status"])
	require.Equal(t, []string{"self-hosted"}, o["labels"])

	// in progress: the first step done, the second running, the rest queued
	started := created.Add(5 * time.Second)
	r := webhooktest.NewJob(webhooktest.ActionInProgress, 22, labels, webhooktest.WithTimes(created, started, time.Time{}))
	o = webhooktest.WorkflowJobObject(r)
	require.NotNil(t, o["runner_id"])
	require.NotNil(t, o["runner_name"])
	require.Nil(t, o["conclusion"])
	steps := o["steps"].([]map[string]any)
	require.Len(t, steps, 6)
	var states []string
	for _, st := range steps {
		states = append(states, st["status"].(string))
	}
	require.Equal(t, []string{"completed", "in_progress", "queued", "queued", "queued", "queued"}, states)
	require.Equal(t, "2026-05-01T10:00:05Z", steps[1]["started_at"])
	require.Nil(t, steps[1]["completed_at"])
	require.Nil(t, steps[2]["started_at"])

	// completed: the steps share the run; a failure ends in the middle step
	done := started.Add(60 * time.Second)
	c := webhooktest.NewJob(webhooktest.ActionCompleted, 23, labels, webhooktest.WithTimes(created, started, done), webhooktest.WithConclusion("failure"))
	o = webhooktest.WorkflowJobObject(c)
	require.Equal(t, "2026-05-01T10:01:05Z", o["completed_at"])
	steps = o["steps"].([]map[string]any)
	var conclusions []string
	for _, st := range steps {
		require.Equal(t, "completed", st["status"])
		conclusions = append(conclusions, st["conclusion"].(string))
	}
	require.Equal(t, []string{"success", "success", "success", "failure", "skipped", "skipped"}, conclusions)
	require.Equal(t, "2026-05-01T10:00:05Z", steps[0]["started_at"])
	require.Equal(t, "2026-05-01T10:00:15Z", steps[0]["completed_at"])
	require.Equal(t, "2026-05-01T10:01:05Z", steps[5]["completed_at"])
}

// The node ids are GitHub's: those of the examples in its OpenAPI description.
func TestNodeIDs(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		id   int64
		want string
	}{
		{"User", 1, "MDQ6VXNlcjE="},
		{"Organization", 1, "MDEyOk9yZ2FuaXphdGlvbjE="},
		{"Repository", 1296269, "MDEwOlJlcG9zaXRvcnkxMjk2MjY5"},
		{"Workflow Job", 399444496, "MDEyOldvcmtmbG93IEpvYjM5OTQ0NDQ5Ng=="},
		{"Integration", 1, "MDExOkludGVncmF0aW9uMQ=="},
	} {
		require.Equal(t, tc.want, webhooktest.NodeID(tc.typ, tc.id), tc.typ)
	}
}
