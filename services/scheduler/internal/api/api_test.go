package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/api"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

const token = "s3cret-admin-token"

type bundle struct {
	rdb   *redis.Client
	cfg   *config.Config
	keys  keys.Keys
	store *state.Store
	e     *echo.Echo
	logs  *bytes.Buffer
}

func setup(t *testing.T, tok string) *bundle {
	t.Helper()
	cfg := &config.Config{
		Name: redistest.NewName("api"),
		RunnerGroups: []config.RunnerGroup{{
			Name: "pool", Organization: "acme", MinRunners: 0, MaxRunners: 4, Labels: []string{"linux"},
			Backend: config.Backend{Type: "docker", Docker: &config.DockerSpec{Image: "runner:test"}},
		}},
	}
	cfg.SetDefaults()
	cfg.Secrets.APIToken = config.Secret(tok)
	b := &bundle{rdb: redistest.Client(t), cfg: cfg, keys: keys.New(cfg.Name), e: echo.New(), logs: &bytes.Buffer{}}
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: command.New(cfg, nil)})
	api.New(cfg, b.store, slog.New(slog.NewJSONHandler(b.logs, nil))).Register(b.e)
	return b
}

func (b *bundle) do(t *testing.T, method, path, auth string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	b.e.ServeHTTP(rec, req)
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	return rec.Code, body
}

func (b *bundle) ok(t *testing.T, method, path string, want int) map[string]any {
	t.Helper()
	code, body := b.do(t, method, path, "Bearer "+token)
	require.Equal(t, want, code, "%s %s: %v", method, path, body)
	return body
}

func requireError(t *testing.T, body map[string]any, code string) {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	require.True(t, ok, "error shape: %v", body)
	require.Equal(t, code, e["code"])
	require.NotEmpty(t, e["message"])
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"token prefix", "Bearer " + token[:5], http.StatusUnauthorized},
		{"token with suffix", "Bearer " + token + "x", http.StatusUnauthorized},
		{"basic scheme", "Basic " + token, http.StatusUnauthorized},
		{"bare token", token, http.StatusUnauthorized},
		{"valid", "Bearer " + token, http.StatusOK},
	} {
		for _, path := range []string{"/api/v1/groups", "/api/v1/runners", "/api/v1/dlq"} {
			code, body := b.do(t, http.MethodGet, path, tc.auth)
			require.Equal(t, tc.want, code, "%s %s", tc.name, path)
			if tc.want == http.StatusUnauthorized {
				requireError(t, body, api.CodeUnauthorized)
			}
		}
	}
	// Unknown routes under /api: 401 first, then a 404 of the same shape.
	code, body := b.do(t, http.MethodGet, "/api/v2/anything", "")
	require.Equal(t, http.StatusUnauthorized, code)
	requireError(t, body, api.CodeUnauthorized)
	requireError(t, b.ok(t, http.MethodGet, "/api/v2/anything", http.StatusNotFound), api.CodeNotFound)
	require.NotContains(t, b.logs.String(), token, "the token reached the logs")
}

func TestNoTokenConfiguredRefusesAll(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	for _, auth := range []string{"", "Bearer ", "Bearer anything"} {
		code, body := b.do(t, http.MethodGet, "/api/v1/groups", auth)
		require.Equal(t, http.StatusUnauthorized, code)
		requireError(t, body, api.CodeUnauthorized)
	}
}

func TestGroupsAndRunners(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ctx := context.Background()
	g, _ := command.Group(b.cfg, "pool")
	q, err := b.store.Queued(ctx, g, 1, time.Now())
	require.NoError(t, err)
	_, err = b.store.Queued(ctx, g, 2, time.Now())
	require.NoError(t, err)
	name := q.Reserved[0]

	groups := b.ok(t, http.MethodGet, "/api/v1/groups", http.StatusOK)["groups"].([]any)
	require.Len(t, groups, 1)
	pool := groups[0].(map[string]any)
	require.Equal(t, "pool", pool["name"])
	require.Equal(t, "docker", pool["backend"])
	require.EqualValues(t, 4, pool["max_runners"])
	require.EqualValues(t, 2, pool["total"])
	require.EqualValues(t, 2, pool["demand"])
	require.EqualValues(t, 2, pool["runners"].(map[string]any)["pending"])
	require.EqualValues(t, 0, pool["runners"].(map[string]any)["busy"])

	require.Len(t, b.ok(t, http.MethodGet, "/api/v1/runners", http.StatusOK)["runners"], 2)
	require.Len(t, b.ok(t, http.MethodGet, "/api/v1/runners?group=pool&state=pending", http.StatusOK)["runners"], 2)
	require.Empty(t, b.ok(t, http.MethodGet, "/api/v1/runners?state=busy", http.StatusOK)["runners"])
	require.Empty(t, b.ok(t, http.MethodGet, "/api/v1/runners?group=other", http.StatusOK)["runners"])
	requireError(t, b.ok(t, http.MethodGet, "/api/v1/runners?state=creating", http.StatusBadRequest), api.CodeBadRequest)

	r := b.ok(t, http.MethodGet, "/api/v1/runners/"+name, http.StatusOK)
	require.Equal(t, name, r["name"])
	require.Equal(t, "pending", r["state"])
	requireError(t, b.ok(t, http.MethodGet, "/api/v1/runners/nobody", http.StatusNotFound), api.CodeNotFound)
}

func TestDeleteRunner(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ctx := context.Background()
	g, _ := command.Group(b.cfg, "pool")
	q, err := b.store.Queued(ctx, g, 1, time.Now())
	require.NoError(t, err)
	q2, err := b.store.Queued(ctx, g, 2, time.Now())
	require.NoError(t, err)
	idle, busy := q.Reserved[0], q2.Reserved[0]
	_, err = b.store.InProgress(ctx, g, state.JobUpdate{JobID: 2, RunnerName: busy})
	require.NoError(t, err)

	res := b.ok(t, http.MethodDelete, "/api/v1/runners/"+idle, http.StatusAccepted)
	require.Equal(t, "pending", res["previous_state"])
	require.Equal(t, "deleting", res["state"])
	requireError(t, b.ok(t, http.MethodDelete, "/api/v1/runners/"+idle, http.StatusConflict), api.CodeConflict)
	requireError(t, b.ok(t, http.MethodDelete, "/api/v1/runners/nobody", http.StatusNotFound), api.CodeNotFound)

	body := b.ok(t, http.MethodDelete, "/api/v1/runners/"+busy, http.StatusConflict)
	requireError(t, body, api.CodeConflict)
	require.Contains(t, body["error"].(map[string]any)["message"], "force")
	b.ok(t, http.MethodDelete, "/api/v1/runners/"+busy+"?force=true", http.StatusAccepted)

	msgs, err := b.rdb.XRange(ctx, b.keys.Provision("docker"), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 4, "two creates, two deletes")
}

func TestDLQ(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ctx := context.Background()
	id, err := b.rdb.XAdd(ctx, &redis.XAddArgs{Stream: b.keys.DLQ(), Values: []any{
		stream.FieldOriginStream, b.keys.Results(), stream.FieldOriginID, "1-1",
		stream.FieldType, stream.TypeResult, stream.FieldData, "xyz", stream.FieldTraceparent, "",
		stream.FieldReason, "decode failed", stream.FieldDeliveries, "5", stream.FieldGroup, keys.GroupScheduler,
	}}).Result()
	require.NoError(t, err)

	list := b.ok(t, http.MethodGet, "/api/v1/dlq", http.StatusOK)["dead_letters"].([]any)
	require.Len(t, list, 1)
	d := list[0].(map[string]any)
	require.Equal(t, id, d["id"])
	require.Equal(t, b.keys.Results(), d["origin_stream"])
	require.Equal(t, "decode failed", d["reason"])
	require.EqualValues(t, 5, d["deliveries"])
	require.EqualValues(t, 3, d["data_bytes"])
	requireError(t, b.ok(t, http.MethodGet, "/api/v1/dlq?count=0", http.StatusBadRequest), api.CodeBadRequest)

	requireError(t, b.ok(t, http.MethodPost, "/api/v1/dlq/not-an-id/retry", http.StatusBadRequest), api.CodeBadRequest)
	b.ok(t, http.MethodPost, "/api/v1/dlq/"+id+"/retry", http.StatusAccepted)
	requireError(t, b.ok(t, http.MethodPost, "/api/v1/dlq/"+id+"/retry", http.StatusNotFound), api.CodeNotFound)
	back, err := b.rdb.XRange(ctx, b.keys.Results(), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, back, 1)
	require.Equal(t, "xyz", back[0].Values[stream.FieldData])
	require.Zero(t, b.rdb.XLen(ctx, b.keys.DLQ()).Val())
	require.False(t, strings.Contains(b.logs.String(), token))
}

// Issue 19: pause, drain and resume a group. Pause: a queued job waits
// (counted as demand), the runners are kept. Drain: the runners not busy
// go (reason drained), the busy one stays. Resume: the waiting demand gets
// its runners at once. The mode shows in GET /api/v1/groups; an unknown
// group is a 404; the routes need the token.
func TestGroupModes(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ctx := context.Background()
	g, _ := command.Group(b.cfg, "pool")
	q, err := b.store.Queued(ctx, g, 1, time.Now())
	require.NoError(t, err)
	q2, err := b.store.Queued(ctx, g, 2, time.Now())
	require.NoError(t, err)
	free, busy := q.Reserved[0], q2.Reserved[0]
	_, err = b.store.InProgress(ctx, g, state.JobUpdate{JobID: 2, RunnerName: busy})
	require.NoError(t, err)
	mode := func() string {
		groups := b.ok(t, http.MethodGet, "/api/v1/groups", http.StatusOK)["groups"].([]any)
		return groups[0].(map[string]any)["mode"].(string)
	}
	require.Equal(t, "active", mode())
	commands := func() int {
		n, err := b.rdb.XLen(ctx, b.keys.Provision("docker")).Result()
		require.NoError(t, err)
		return int(n)
	}

	res := b.ok(t, http.MethodPost, "/api/v1/groups/pool/pause", http.StatusOK)
	require.Equal(t, "paused", res["mode"])
	require.Equal(t, "active", res["previous_mode"])
	require.Equal(t, "paused", mode())
	before := commands()
	out, err := b.store.Queued(ctx, g, 3, time.Now())
	require.NoError(t, err)
	require.Empty(t, out.Reserved, "paused: the job waits")
	out, err = b.store.Queued(ctx, g, 4, time.Now())
	require.NoError(t, err)
	require.Empty(t, out.Reserved)
	require.Equal(t, before, commands())
	r, _, err := b.store.Runner(ctx, free)
	require.NoError(t, err)
	require.Equal(t, state.Pending, r.State, "paused keeps the runners")

	res = b.ok(t, http.MethodPost, "/api/v1/groups/pool/resume", http.StatusOK)
	require.Equal(t, "active", res["mode"])
	require.Equal(t, "paused", res["previous_mode"])
	require.Len(t, res["reserved"], 2, "jobs 3 and 4 get theirs at once (max_runners 4)")
	require.Equal(t, "active", mode())
	require.Equal(t, before+2, commands())

	res = b.ok(t, http.MethodPost, "/api/v1/groups/pool/drain", http.StatusOK)
	require.Equal(t, "draining", res["mode"])
	require.Equal(t, "draining", mode())
	deleting := res["deleting"].([]any)
	require.Len(t, deleting, 3, "every runner but the busy one")
	require.Contains(t, deleting, free)
	require.NotContains(t, deleting, busy)
	rs, err := b.store.Runners(ctx, "pool")
	require.NoError(t, err)
	for _, r := range rs {
		if r.Name == busy {
			require.Equal(t, state.Busy, r.State)
		} else {
			require.Equal(t, state.Deleting, r.State)
		}
	}
	msgs, err := b.rdb.XRange(ctx, b.keys.Provision("docker"), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, before+2+3, "three deletes")
	for _, m := range msgs[before+2:] {
		var c rmv1.ProvisionCommand
		require.NoError(t, proto.Unmarshal([]byte(m.Values["data"].(string)), &c))
		require.Equal(t, state.ReasonDrained, c.GetDelete().GetReason())
		require.False(t, c.GetDelete().GetRegistrationGone(), "registration first")
	}

	// A second drain finds nothing more to delete.
	res = b.ok(t, http.MethodPost, "/api/v1/groups/pool/drain", http.StatusOK)
	require.Equal(t, "draining", res["previous_mode"])
	require.Empty(t, res["deleting"])

	for _, action := range []string{"pause", "drain", "resume"} {
		body := b.ok(t, http.MethodPost, "/api/v1/groups/nope/"+action, http.StatusNotFound)
		requireError(t, body, api.CodeNotFound)
		require.Contains(t, body["error"].(map[string]any)["message"], `"nope"`)
		code, body := b.do(t, http.MethodPost, "/api/v1/groups/pool/"+action, "Bearer wrong")
		require.Equal(t, http.StatusUnauthorized, code)
		requireError(t, body, api.CodeUnauthorized)
	}
	require.Equal(t, "draining", mode(), "refused requests change nothing")
	require.Zero(t, b.rdb.Exists(ctx, b.keys.GroupMode("nope")).Val())
}
