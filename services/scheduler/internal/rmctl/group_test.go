package rmctl

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runIn runs rmctl with stdin, on a terminal or not.
func runIn(t *testing.T, env map[string]string, stdin string, terminal bool, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &CLI{
		Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return now },
		Env:   Env{URL: env[EnvURL], Token: env[EnvToken]},
		Stdin: strings.NewReader(stdin), StdinIsTerminal: func() bool { return terminal },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := c.Run(ctx, args)
	return result{code, stdout.String(), stderr.String()}
}

// Issue 19: rmctl group pause|drain|resume NAME. A drain asks on a
// terminal, with the number of idle runners it deletes; -y skips the
// question; without a terminal and -y it refuses and sends nothing.
func TestGroupModeCommands(t *testing.T) {
	t.Parallel()
	api, env := setup(t)

	r := runIn(t, env, "", false, "group", "pause", "small")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Equal(t, "group small: paused (was active); queued jobs wait, idle runners are kept\n", r.stdout)

	r = runIn(t, env, "", false, "group", "resume", "small")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Equal(t, "group small: active (was paused); 1 runner reserved for waiting jobs\n", r.stdout)

	// Drain, not a terminal, no -y: refused before any request.
	api.mu.Lock()
	api.requests = nil
	api.mu.Unlock()
	r = runIn(t, env, "y\n", false, "group", "drain", "small")
	require.Equal(t, ExitUsage, r.code)
	require.Contains(t, r.stderr, "confirm with -y (standard input is not a terminal)")
	require.Empty(t, api.requests)

	// On a terminal: the question, with the group's idle runners (free: 2).
	r = runIn(t, env, "n\n", true, "group", "drain", "small")
	require.Equal(t, ExitFailed, r.code)
	require.Contains(t, r.stderr, "drain group small: 2 idle runners will be deleted [y/N] ")
	require.Contains(t, r.stderr, "Not drained.")
	require.Equal(t, []string{"GET /api/v1/groups"}, api.requests, "no drain sent")
	r = runIn(t, env, "", true, "group", "drain", "small")
	require.Equal(t, ExitFailed, r.code, "no answer is no")

	r = runIn(t, env, "y\n", true, "group", "drain", "small")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Equal(t, "group small: draining (was active); 2 idle runners deleting, busy ones go when their job completes\n", r.stdout)
	require.Equal(t, "POST /api/v1/groups/small/drain", api.requests[len(api.requests)-1])

	// -y: no question, even without a terminal.
	r = runIn(t, env, "", false, "group", "drain", "-y", "small", "-o", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Empty(t, r.stderr)
	var m ModeChange
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &m))
	require.Equal(t, ModeChange{Group: "small", Mode: "draining", PreviousMode: "active",
		Deleting: []string{"rm-small-b2", "rm-small-d4"}, Reserved: []string{}}, m)

	// An unknown group: not found, from the question or from the API.
	r = runIn(t, env, "y\n", true, "group", "drain", "nope")
	require.Equal(t, ExitNotFound, r.code)
	require.Contains(t, r.stderr, `no runner group "nope"`)
	r = runIn(t, env, "", false, "group", "pause", "nope")
	require.Equal(t, ExitNotFound, r.code)
	require.Contains(t, r.stderr, `no runner group "nope"`)

	for _, args := range [][]string{{"group"}, {"group", "stop", "small"}, {"group", "pause"}, {"group", "pause", "a", "b"}} {
		r = runIn(t, env, "", false, args...)
		require.Equal(t, ExitUsage, r.code, "%v", args)
	}
}
