package rmctl

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

const testToken = "s3cr3t-api-token"

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// fakeAPI mimics the scheduler's admin API (services/scheduler/internal/api)
// with fixed data, and records the requests.
type fakeAPI struct {
	mu       sync.Mutex
	requests []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		w.Header().Set("WWW-Authenticate", `Bearer realm="runner-manager"`)
		apiError(w, 401, "unauthorized", "a valid Bearer token is required")
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/groups", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"groups": []map[string]any{
			{"name": "small", "organization": "acme", "backend": "docker", "min_runners": 1, "max_runners": 10,
				"total": 6, "free": 2, "demand": 3, "runners": map[string]int{"pending": 1, "idle": 1, "busy": 4},
				"backoff_seconds": 0, "mode": "active"},
			{"name": "gpu", "organization": "acme", "repository": "ml", "backend": "gcp", "min_runners": 0, "max_runners": 2,
				"total": 0, "free": 0, "demand": 5, "runners": map[string]int{}, "backoff_seconds": 42.5, "mode": "draining"},
		}})
	})
	mux.HandleFunc("POST /api/v1/groups/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		name, action := r.PathValue("name"), r.PathValue("action")
		if name != "small" && name != "gpu" {
			apiError(w, 404, "not_found", `no runner group "`+name+`" in the configuration`)
			return
		}
		out := map[string]any{"group": name, "previous_mode": "active", "deleting": []string{}, "reserved": []string{}}
		switch action {
		case "pause":
			out["mode"] = "paused"
		case "drain":
			out["mode"], out["deleting"] = "draining", []string{"rm-small-b2", "rm-small-d4"}
		case "resume":
			out["mode"], out["previous_mode"], out["reserved"] = "active", "paused", []string{"rm-small-e5"}
		default:
			apiError(w, 404, "not_found", "no such route")
			return
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("GET /api/v1/runners", func(w http.ResponseWriter, r *http.Request) {
		if s := r.URL.Query().Get("state"); s == "bogus" {
			apiError(w, 400, "bad_request", `unknown state "bogus"`)
			return
		}
		stuck := runnerJSON("rm-small-c3", "deleting", 0)
		stuck["delete_failures"], stuck["delete_error"] = 4, "refused (location): the Docker host is not one of this provisioner's configuration"
		writeJSON(w, 200, map[string]any{"runners": []any{runnerJSON("rm-small-a1", "busy", 5151), runnerJSON("rm-small-b2", "idle", 0), stuck}})
	})
	mux.HandleFunc("GET /api/v1/runners/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "rm-small-a1" {
			apiError(w, 404, "not_found", `no runner "`+r.PathValue("name")+`"`)
			return
		}
		writeJSON(w, 200, runnerJSON("rm-small-a1", "busy", 5151))
	})
	mux.HandleFunc("DELETE /api/v1/runners/{name}", func(w http.ResponseWriter, r *http.Request) {
		switch name := r.PathValue("name"); {
		case name == "rm-small-a1" && r.URL.Query().Get("force") != "true":
			apiError(w, 409, "conflict", "runner is busy: deleting it kills its job; add ?force=true to do so")
		case name == "rm-small-a1":
			writeJSON(w, 202, map[string]any{"runner": name, "previous_state": "busy", "state": "deleting"})
		case name == "rm-small-b2":
			writeJSON(w, 202, map[string]any{"runner": name, "previous_state": "idle", "state": "deleting"})
		default:
			apiError(w, 404, "not_found", `no runner "`+name+`"`)
		}
	})
	mux.HandleFunc("GET /api/v1/dlq", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"dead_letters": []map[string]any{{
			"id": "1764240000000-0", "origin_stream": "{rm}:provision:docker", "origin_id": "1764230000000-3",
			"type": "create", "reason": "handler: docker: create container rm-small-x:\n  image not found", "deliveries": 5,
			"group": "provisioner-docker", "consumer": "prov-1", "time": now.Add(-90 * time.Minute), "data_bytes": 120,
		}}})
	})
	mux.HandleFunc("POST /api/v1/dlq/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		switch id := r.PathValue("id"); id {
		case "1764240000000-0":
			writeJSON(w, 202, map[string]any{"retried": id})
		case "junk":
			apiError(w, 400, "bad_request", `not a stream entry id: "junk"`)
		default:
			apiError(w, 404, "not_found", "no dead letter "+id)
		}
	})
	mux.HandleFunc("GET /api/v1/usage", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("since") == "72h0m0s" {
			apiError(w, 400, "bad_request", "since must be a duration between 1s and 25h0m0s, e.g. 24h")
			return
		}
		writeJSON(w, 200, map[string]any{
			"from": now.Add(-24*time.Hour - 5*time.Minute), "to": now, "bucket_seconds": 300, "top_repositories": 20,
			"rows": []map[string]any{
				{"group": "small", "repository": "acme/app", "workflow": "CI", "jobs": 120, "busy_seconds": 36000.4,
					"idle_seconds": 1800, "runners": 120, "boots": 120, "boot_p50_seconds": 14.2, "boot_p95_seconds": 27,
					"waits": 118, "wait_p50_seconds": 21.5, "wait_p95_seconds": 58},
				{"group": "small", "repository": "", "workflow": "", "jobs": 0, "busy_seconds": 0,
					"idle_seconds": 7200, "runners": 4, "boots": 4, "boot_p50_seconds": 15, "boot_p95_seconds": 19},
				{"group": "small", "repository": "other", "workflow": "other", "jobs": 3, "busy_seconds": 42.25,
					"idle_seconds": 31, "runners": 3, "boots": 0, "waits": 3, "wait_p50_seconds": 3, "wait_p95_seconds": 4.75},
			},
		})
	})
	mux.HandleFunc("/api/v1/boom", func(w http.ResponseWriter, r *http.Request) {})
	mux.ServeHTTP(w, r)
}

func runnerJSON(name, state string, job int64) map[string]any {
	r := map[string]any{
		"name": name, "group": "small", "backend": "docker", "state": state, "job_id": job, "for_job": 4242,
		"instance_id": "c0ffee" + name[len(name)-2:], "github_runner_id": 77, "attempt": 1,
		"organization": "acme", "location": map[string]string{"host": ""},
		"created_at": now.Add(-3 * time.Hour), "updated_at": now.Add(-5 * time.Minute), "state_since": now.Add(-5 * time.Minute),
	}
	if job != 0 { // the job's metadata, from its in_progress event
		r["job_run_id"], r["job_repository"] = 9090, "acme/app"
		r["job_workflow"] = "CI / build and test on\nevery supported platform"
	}
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs rmctl with env (RM_API_URL defaults to the fake) and args.
func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &CLI{
		Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return now },
		Env: Env{URL: env[EnvURL], Token: env[EnvToken]},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := c.Run(ctx, args)
	return result{code, stdout.String(), stderr.String()}
}

func setup(t *testing.T) (*fakeAPI, map[string]string) {
	t.Helper()
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, map[string]string{EnvURL: srv.URL, EnvToken: testToken}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	require.Equal(t, string(want), got)
}

func TestTables(t *testing.T) {
	t.Parallel()
	_, env := setup(t)
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"groups", []string{"groups"}},
		{"runners", []string{"runners"}},
		{"runner-get", []string{"runner", "get", "rm-small-a1"}},
		{"runner-delete", []string{"runner", "delete", "rm-small-b2"}},
		{"dlq-list", []string{"dlq", "list"}},
		{"dlq-retry", []string{"dlq", "retry", "1764240000000-0"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			r := run(t, env, tc.args...)
			require.Equal(t, ExitOK, r.code, r.stderr)
			require.Empty(t, r.stderr)
			golden(t, tc.golden, r.stdout)
		})
	}
}

func TestJSONOutput(t *testing.T) {
	t.Parallel()
	_, env := setup(t)

	r := run(t, env, "-o", "json", "groups")
	require.Equal(t, ExitOK, r.code, r.stderr)
	var gs []Group
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &gs))
	require.Len(t, gs, 2)
	require.Equal(t, Group{
		Name: "small", Organization: "acme", Backend: "docker", MinRunners: 1, MaxRunners: 10,
		Total: 6, Free: 2, Demand: 3, Runners: map[string]int64{"pending": 1, "idle": 1, "busy": 4}, Mode: "active",
	}, gs[0])
	require.Equal(t, 42.5, gs[1].BackoffSeconds)

	r = run(t, env, "runners", "--state", "busy", "-o", "json") // flags after the command
	require.Equal(t, ExitOK, r.code, r.stderr)
	var rs []Runner
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rs))
	require.Len(t, rs, 3)
	require.Equal(t, int64(5151), rs[0].JobID)
	require.Equal(t, 4, rs[2].DeleteFailures, "a runner stuck deleting shows its failed deletes")
	require.Equal(t, map[string]string{"host": ""}, rs[2].Location)
	require.True(t, rs[0].CreatedAt.Equal(now.Add(-3*time.Hour)))

	r = run(t, env, "runner", "get", "rm-small-a1", "--output=json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	var one map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &one))
	require.Equal(t, "busy", one["state"])

	r = run(t, env, "-o", "json", "dlq", "list")
	require.Equal(t, ExitOK, r.code, r.stderr)
	var ds []DeadLetter
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ds))
	require.Len(t, ds, 1)
	require.Contains(t, ds[0].Reason, "image not found", "JSON keeps the whole reason")

	r = run(t, env, "-o", "json", "runner", "delete", "--force", "rm-small-a1")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.JSONEq(t, `{"runner":"rm-small-a1","previous_state":"busy","state":"deleting"}`, r.stdout)
}

func TestQueryAndFlags(t *testing.T) {
	t.Parallel()
	api, env := setup(t)
	r := run(t, env, "runners", "--group", "small", "--state=idle")
	require.Equal(t, ExitOK, r.code, r.stderr)
	r = run(t, env, "dlq", "list", "--count", "5")
	require.Equal(t, ExitOK, r.code, r.stderr)
	r = run(t, env, "runner", "delete", "rm-small-a1", "--force")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Equal(t, []string{
		"GET /api/v1/runners?group=small&state=idle",
		"GET /api/v1/dlq?count=5",
		"DELETE /api/v1/runners/rm-small-a1?force=true",
	}, api.requests)
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	t.Parallel()
	_, env := setup(t)
	good := env[EnvURL]
	env[EnvURL] = "http://127.0.0.1:1" // nothing listens there
	env[EnvToken] = "wrong"
	r := run(t, env, "--url", good, "--token", testToken, "groups")
	require.Equal(t, ExitOK, r.code, r.stderr)
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	_, env := setup(t)
	noToken := map[string]string{EnvURL: env[EnvURL]}
	wrongToken := map[string]string{EnvURL: env[EnvURL], EnvToken: "nope"}
	down := map[string]string{EnvURL: "http://127.0.0.1:1", EnvToken: testToken}
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string
	}{
		{"no command", env, nil, ExitUsage, "no command"},
		{"unknown command", env, []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{"unknown flag", env, []string{"groups", "--colour"}, ExitUsage, "flag provided but not defined: -colour"},
		{"missing name", env, []string{"runner", "get"}, ExitUsage, "runner get: missing NAME"},
		{"extra argument", env, []string{"runner", "get", "a", "b"}, ExitUsage, `unexpected argument "b"`},
		{"bad output", env, []string{"-o", "yaml", "groups"}, ExitUsage, `-o "yaml": want table or json`},
		{"bad state", env, []string{"runners", "--state", "asleep"}, ExitUsage, "want one of pending, started, idle, busy, deleting"},
		{"bad url", map[string]string{EnvURL: "localhost:8081"}, []string{"groups"}, ExitUsage, "want http://HOST:PORT"},
		{"API bad request", env, []string{"dlq", "retry", "junk"}, ExitUsage, `not a stream entry id: "junk"`},
		{"runner not found", env, []string{"runner", "get", "nope"}, ExitNotFound, `not found: no runner "nope"`},
		{"delete not found", env, []string{"runner", "delete", "nope"}, ExitNotFound, `no runner "nope"`},
		{"dead letter not found", env, []string{"dlq", "retry", "1-1"}, ExitNotFound, "no dead letter 1-1"},
		{"busy runner", env, []string{"runner", "delete", "rm-small-a1"}, ExitFailed, "runner is busy: deleting it kills its job"},
		{"no token", noToken, []string{"groups"}, ExitAuth, "401: RM_API_TOKEN is missing or wrong"},
		{"wrong token", wrongToken, []string{"runners"}, ExitAuth, "401: RM_API_TOKEN is missing or wrong"},
		{"unreachable", down, []string{"groups"}, ExitFailed, "cannot reach the admin API at http://127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.env, tc.args...)
			require.Equal(t, tc.code, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, tc.stderr)
			require.Empty(t, r.stdout)
			require.NotContains(t, r.stderr, testToken, "the token never shows")
		})
	}
}

func TestServerError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 500, "internal", "read group small failed")
	}))
	t.Cleanup(srv.Close)
	r := run(t, map[string]string{EnvURL: srv.URL, EnvToken: testToken}, "groups")
	require.Equal(t, ExitFailed, r.code)
	require.Equal(t, "rmctl: the scheduler failed (500): read group small failed; see the scheduler's logs\n", r.stderr)

	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>hello</html>"))
	}))
	t.Cleanup(notJSON.Close)
	r = run(t, map[string]string{EnvURL: notJSON.URL}, "groups")
	require.Equal(t, ExitFailed, r.code)
	require.Contains(t, r.stderr, "is "+notJSON.URL+" the scheduler?")
}

func TestEmptyLists(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"groups": nil, "runners": []any{}, "dead_letters": []any{}})
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{EnvURL: srv.URL}
	for _, args := range [][]string{{"groups"}, {"runners"}, {"dlq", "list"}} {
		r := run(t, env, args...)
		require.Equal(t, ExitOK, r.code)
		require.Empty(t, r.stdout, "a table with no rows prints nothing on stdout")
		require.NotEmpty(t, r.stderr)

		r = run(t, env, append(args, "-o", "json")...)
		require.Equal(t, ExitOK, r.code)
		require.Equal(t, "[]\n", r.stdout)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"runners", "-h"}, {"runner", "get", "--help"}} {
		r := run(t, nil, args...)
		require.Equal(t, ExitOK, r.code)
		require.True(t, strings.HasPrefix(r.stdout, "rmctl: operate a runner-manager"))
	}
}

// TestConfigCheck runs in the environment of the process (config.Check reads
// RM_*), so it is not parallel.
func TestConfigCheck(t *testing.T) {
	for _, k := range []string{"RM_REDIS_URL", "RM_GITHUB_APP_ID", "RM_GITHUB_APP_INSTALLATION_ID",
		"RM_GITHUB_APP_PRIVATE_KEY", "RM_GITHUB_APP_PRIVATE_KEY_FILE", "RM_GITHUB_WEBHOOK_SECRET_PREVIOUS", "RM_API_TOKEN"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
	t.Setenv("RM_GITHUB_TOKEN", "ghp_configchecktoken")
	t.Setenv("RM_GITHUB_WEBHOOK_SECRET", "webhook-secret")

	good := filepath.Join("testdata", "good.yaml")
	r := run(t, nil, "config", "check", good)
	require.Equal(t, ExitOK, r.code, r.stderr+r.stdout)
	require.True(t, strings.HasPrefix(r.stdout, good+": valid\n"), r.stdout)
	// The groups as a job finds them: workflow, labels, limits, spill-over.
	golden(t, "config-check-good", r.stdout)

	r = run(t, nil, "config", "check", good, "-o", "json")
	require.Equal(t, ExitOK, r.code)
	require.JSONEq(t, `{"file":"`+good+`","valid":true,"problems":[],"groups":[
		{"name":"small","organization":"my-org","repository":"","workflow_name":"","labels":["linux"],"min_runners":0,"max_runners":2,"spill_over":false},
		{"name":"release","organization":"my-org","repository":"app","workflow_name":"Release","labels":["linux","large"],"min_runners":0,"max_runners":20,"spill_over":true}]}`, r.stdout)

	bad := filepath.Join("testdata", "bad.yaml")
	r = run(t, nil, "config", "check", bad)
	require.Equal(t, ExitFailed, r.code)
	golden(t, "config-check-bad", r.stdout)
	require.Contains(t, r.stderr, "problems")

	r = run(t, nil, "-o", "json", "config", "check", bad)
	require.Equal(t, ExitFailed, r.code)
	var out struct {
		Valid    bool
		Problems []struct {
			Line    int
			Path    string
			Message string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	require.False(t, out.Valid)
	require.GreaterOrEqual(t, len(out.Problems), 2)
	for i := 1; i < len(out.Problems); i++ {
		require.LessOrEqual(t, out.Problems[i-1].Line, out.Problems[i].Line, "sorted by line")
	}

	r = run(t, nil, "config", "check", filepath.Join("testdata", "missing.yaml"))
	require.Equal(t, ExitFailed, r.code)
	require.Contains(t, r.stderr, "missing.yaml")

	r = run(t, nil, "config", "check")
	require.Equal(t, ExitUsage, r.code)

	// Secrets of the environment never reach the output.
	t.Setenv("RM_GITHUB_APP_ID", "notanumber")
	r = run(t, nil, "config", "check", bad)
	require.NotContains(t, r.stdout+r.stderr, "ghp_configchecktoken")
	require.NotContains(t, r.stdout+r.stderr, "webhook-secret")
}
