package webhooktest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/reference"
	"github.com/runner-manager/runner-manager/e2e/webhooktest"
)

// webhookSchemas returns the x-webhooks request body schemas of GitHub's
// OpenAPI description (e2e/reference).
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
		{"ping", webhooktest.PingPayload(512345678)},
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
