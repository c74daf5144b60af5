// Package fakegithubtest serves the fake GitHub for a test and registers
// just-in-time runners on it over its REST route, for the tests of what
// runs a runner (the fake runner, its image).
package fakegithubtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

// Start serves a fake GitHub with opts on a loopback port until the test ends.
func Start(t testing.TB, opts fakegithub.Options) (*fakegithub.Server, *httptest.Server) {
	t.Helper()
	fake, err := fakegithub.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { fake.Close(); srv.Close() })
	return fake, srv
}

// RegisterOrgRunner registers a runner of organization org in its default
// runner group (POST /orgs/{org}/actions/runners/generate-jitconfig with
// token) and returns its encoded JIT configuration.
func RegisterOrgRunner(t testing.TB, url, token, org, name string, labels ...string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"name": name, "runner_group_id": fakegithub.DefaultRunnerGroupID, "labels": labels})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url+"/orgs/"+org+"/actions/runners/generate-jitconfig", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var out struct {
		EncodedJITConfig string `json:"encoded_jit_config"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.EncodedJITConfig
}
