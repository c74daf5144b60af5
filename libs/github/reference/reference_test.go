package reference

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCopyIsTheDescription(t *testing.T) {
	var doc struct {
		OpenAPI  string                     `json:"openapi"`
		Paths    map[string]json.RawMessage `json:"paths"`
		Webhooks map[string]json.RawMessage `json:"x-webhooks"`
	}
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	require.NotEmpty(t, doc.OpenAPI)
	require.Contains(t, doc.Paths, "/orgs/{org}/actions/runners/generate-jitconfig")
	require.Contains(t, doc.Webhooks, "workflow-job-queued")
}

// The copy is the shared reference, wherever shared/reference is found
// beside the work tree or one of its parents (it is in the development
// layout, not in every checkout).
func TestCopyMatchesTheSharedReference(t *testing.T) {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for d := dir; filepath.Dir(d) != d; d = filepath.Dir(d) {
		shared, err := os.ReadFile(filepath.Join(d, "shared", "reference", File))
		if err != nil {
			continue
		}
		require.True(t, bytes.Equal(shared, openAPI),
			"libs/github/reference/%s differs from %s: copy the shared one here", File, filepath.Join(d, "shared", "reference"))
		t.Logf("the copy matches %s", filepath.Join(d, "shared", "reference", File))
		return
	}
	t.Logf("no shared/reference above %s: only the copy is checked", dir)
}
