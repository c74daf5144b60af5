package rmctl

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUsage(t *testing.T) {
	t.Parallel()
	api, env := setup(t)

	r := run(t, env, "usage")
	require.Equal(t, ExitOK, r.code, r.stderr)
	golden(t, "usage", r.stdout)
	require.Contains(t, r.stderr, `(5-minute buckets); repositories beyond the top 20 are "other"`)

	r = run(t, env, "usage", "--since", "1h", "-o", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	var rep UsageReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	require.Len(t, rep.Rows, 3)
	require.InDelta(t, 36000.4, rep.Rows[0].BusySeconds, 1e-9)
	require.EqualValues(t, 118, rep.Rows[0].Waits)
	require.Equal(t, []string{"GET /api/v1/usage?since=24h0m0s", "GET /api/v1/usage?since=1h0m0s"}, api.requests)

	r = run(t, env, "usage", "--since", "72h")
	require.Equal(t, ExitUsage, r.code, "the API's bad_request is a usage error")
	require.Contains(t, r.stderr, "since must be")
	r = run(t, env, "usage", "--since", "-1h")
	require.Equal(t, ExitUsage, r.code)
	r = run(t, env, "usage", "extra")
	require.Equal(t, ExitUsage, r.code)
}
