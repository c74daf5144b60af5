package webhook_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/ingress/internal/webhook"
)

const (
	secret         = "whsec-current-7f3a9c1e"
	previousSecret = "whsec-previous-0b5d2e8f"
)

var (
	labels   = []string{"self-hosted", "linux", "small"}
	received = time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC)
)

// bundle is one handler under test with what the test inspects.
type bundle struct {
	h    *webhook.Handler
	rdb  *redis.Client
	keys keys.Keys
	reg  *prometheus.Registry
	logs *logbuf.Buffer
}

func setup(t testing.TB, rdb *redis.Client, edit ...func(*webhook.Options)) *bundle {
	t.Helper()
	b := &bundle{
		rdb:  rdb,
		keys: keys.New(redistest.NewName("ingress")),
		reg:  prometheus.NewRegistry(),
		logs: &logbuf.Buffer{},
	}
	o := webhook.Options{
		Keys:    b.keys,
		Redis:   rdb,
		Secrets: config.Secrets{WebhookSecret: secret},
		MaxBody: 64 << 10,
		Metrics: b.reg,
		Logger:  slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     func() time.Time { return received },
	}
	for _, e := range edit {
		e(&o)
	}
	h, err := webhook.NewHandler(o)
	require.NoError(t, err)
	b.h = h
	return b
}

// post sends one delivery through the handler and returns the response.
func (b *bundle) post(t testing.TB, header http.Header, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return rec
}

func (b *bundle) xlen(t testing.TB) int64 {
	t.Helper()
	n, err := b.rdb.XLen(context.Background(), b.keys.Events()).Result()
	require.NoError(t, err)
	return n
}

// entries returns the published events, oldest first.
func (b *bundle) entries(t testing.TB) []*rmv1.WorkflowJobEvent {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), b.keys.Events(), "-", "+").Result()
	require.NoError(t, err)
	var out []*rmv1.WorkflowJobEvent
	for _, m := range msgs {
		require.Equal(t, stream.TypeWorkflowJob, m.Values[stream.FieldType])
		require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`, m.Values[stream.FieldTraceparent])
		ev := &rmv1.WorkflowJobEvent{}
		require.NoError(t, proto.Unmarshal([]byte(m.Values[stream.FieldData].(string)), ev))
		out = append(out, ev)
	}
	return out
}

func signed(event, delivery string, body []byte) http.Header {
	return webhooktest.Header(event, delivery, secret, body)
}

func TestWebhookRules(t *testing.T) {
	rdb := redistest.Client(t)
	queued := webhooktest.Payload(webhooktest.ActionQueued, 4001, labels)
	wrongBody := webhooktest.Payload(webhooktest.ActionQueued, 4002, labels)
	big := append(bytes.Repeat([]byte(" "), 64<<10), queued...)

	withoutSig := func(h http.Header) http.Header { h.Del(webhooktest.HeaderSignature256); return h }
	withSig := func(h http.Header, sig string) http.Header { h.Set(webhooktest.HeaderSignature256, sig); return h }
	goodSig := webhooktest.Sign(secret, queued)

	cases := []struct {
		name    string
		header  http.Header
		body    []byte
		status  int
		publish bool
	}{
		// 1. Size.
		{"body over the limit", signed("workflow_job", "d-big", big), big, http.StatusRequestEntityTooLarge, false},
		// 2. Signature.
		{"no signature", withoutSig(signed("workflow_job", "d-1", queued)), queued, http.StatusUnauthorized, false},
		{"legacy sha1 signature only", func() http.Header {
			h := withoutSig(signed("workflow_job", "d-2", queued))
			h.Set(webhooktest.HeaderSignature, "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6")
			return h
		}(), queued, http.StatusUnauthorized, false},
		{"wrong secret", webhooktest.Header("workflow_job", "d-3", "not-the-secret", queued), queued, http.StatusUnauthorized, false},
		{"signature of another body", withSig(signed("workflow_job", "d-4", queued), webhooktest.Sign(secret, wrongBody)), queued, http.StatusUnauthorized, false},
		{"sha1 prefix", withSig(signed("workflow_job", "d-5", queued), "sha1="+goodSig[7:]), queued, http.StatusUnauthorized, false},
		{"no prefix", withSig(signed("workflow_job", "d-6", queued), goodSig[7:]), queued, http.StatusUnauthorized, false},
		{"not hex", withSig(signed("workflow_job", "d-7", queued), "sha256="+strings.Repeat("zz", 32)), queued, http.StatusUnauthorized, false},
		{"truncated", withSig(signed("workflow_job", "d-8", queued), goodSig[:len(goodSig)-2]), queued, http.StatusUnauthorized, false},
		{"trailing garbage", withSig(signed("workflow_job", "d-9", queued), goodSig+"00"), queued, http.StatusUnauthorized, false},
		{"empty body unsigned", http.Header{webhooktest.HeaderEvent: {"workflow_job"}}, nil, http.StatusUnauthorized, false},
		{"ping unsigned", withoutSig(signed("ping", "d-10", queued)), queued, http.StatusUnauthorized, false},
		// 3, 4. Events.
		{"ping", signed("ping", "d-11", webhooktest.PingPayload(7)), webhooktest.PingPayload(7), http.StatusOK, false},
		{"workflow_run", signed("workflow_run", "d-12", queued), queued, http.StatusAccepted, false},
		{"push", signed("push", "d-13", []byte(`{"ref":"refs/heads/main"}`)), []byte(`{"ref":"refs/heads/main"}`), http.StatusAccepted, false},
		{"no event header", func() http.Header { h := signed("x", "d-14", queued); h.Del(webhooktest.HeaderEvent); return h }(), queued, http.StatusAccepted, false},
		// 5. Invalid workflow_job.
		{"not json", signed("workflow_job", "d-15", []byte(`{"action":`)), []byte(`{"action":`), http.StatusBadRequest, false},
		{"json array", signed("workflow_job", "d-16", []byte(`[1,2]`)), []byte(`[1,2]`), http.StatusBadRequest, false},
		{"no action", signed("workflow_job", "d-17", []byte(`{"workflow_job":{"id":5}}`)), []byte(`{"workflow_job":{"id":5}}`), http.StatusBadRequest, false},
		{"no workflow_job", signed("workflow_job", "d-18", []byte(`{"action":"queued"}`)), []byte(`{"action":"queued"}`), http.StatusBadRequest, false},
		{"no job id", signed("workflow_job", "d-19", []byte(`{"action":"queued","workflow_job":{"run_id":5}}`)), []byte(`{"action":"queued","workflow_job":{"run_id":5}}`), http.StatusBadRequest, false},
		{"job id is a string", signed("workflow_job", "d-20", []byte(`{"action":"queued","workflow_job":{"id":"5"}}`)), []byte(`{"action":"queued","workflow_job":{"id":"5"}}`), http.StatusBadRequest, false},
		{"no delivery id", signed("workflow_job", "", queued), queued, http.StatusBadRequest, false},
		{"delivery id with a key separator", signed("workflow_job", "abc:events", queued), queued, http.StatusBadRequest, false},
		{"delivery id too long", signed("workflow_job", strings.Repeat("a", 65), queued), queued, http.StatusBadRequest, false},
		// 6. Actions.
		{"waiting", signed("workflow_job", "d-21", webhooktest.Payload(webhooktest.ActionWaiting, 4003, labels)), webhooktest.Payload(webhooktest.ActionWaiting, 4003, labels), http.StatusAccepted, false},
		{"unknown action", signed("workflow_job", "d-22", webhooktest.Payload("requested", 4004, labels)), webhooktest.Payload("requested", 4004, labels), http.StatusAccepted, false},
		{"queued", signed("workflow_job", "d-23", queued), queued, http.StatusAccepted, true},
		{"body at the limit is read", func() http.Header {
			b := append(bytes.Repeat([]byte(" "), 64<<10-len(queued)), queued...)
			return signed("workflow_job", "d-24", b)
		}(), append(bytes.Repeat([]byte(" "), 64<<10-len(queued)), queued...), http.StatusAccepted, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, rdb)
			rec := b.post(t, tc.header, tc.body)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			want := int64(0)
			if tc.publish {
				want = 1
			}
			require.Equal(t, want, b.xlen(t))
		})
	}
}

func TestPublishedEvent(t *testing.T) {
	rdb := redistest.Client(t)
	created := time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC)
	started := created.Add(9 * time.Second)
	completed := started.Add(5 * time.Minute)
	cases := []struct {
		action string
		opts   []webhooktest.Option
		want   *rmv1.WorkflowJobEvent
	}{
		{
			action: webhooktest.ActionQueued,
			opts:   []webhooktest.Option{webhooktest.WithTimes(created, created, time.Time{})},
			want: &rmv1.WorkflowJobEvent{
				Status: "queued", CreatedAt: timestamppb.New(created), StartedAt: timestamppb.New(created),
			},
		},
		{
			action: webhooktest.ActionInProgress,
			opts: []webhooktest.Option{
				webhooktest.WithTimes(created, started, time.Time{}),
				webhooktest.WithRunner(311, "rm-linux-small-ab12", 4, "linux-small"),
			},
			want: &rmv1.WorkflowJobEvent{
				Status: "in_progress", RunnerId: 311, RunnerName: "rm-linux-small-ab12", RunnerGroupId: 4, RunnerGroupName: "linux-small",
				CreatedAt: timestamppb.New(created), StartedAt: timestamppb.New(started),
			},
		},
		{
			action: webhooktest.ActionCompleted,
			opts: []webhooktest.Option{
				webhooktest.WithTimes(created, started, completed),
				webhooktest.WithRunner(311, "rm-linux-small-ab12", 4, "linux-small"),
				webhooktest.WithConclusion("failure"),
			},
			want: &rmv1.WorkflowJobEvent{
				Status: "completed", Conclusion: "failure", RunnerId: 311, RunnerName: "rm-linux-small-ab12", RunnerGroupId: 4, RunnerGroupName: "linux-small",
				CreatedAt: timestamppb.New(created), StartedAt: timestamppb.New(started), CompletedAt: timestamppb.New(completed),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.action, func(t *testing.T) {
			b := setup(t, rdb)
			opts := append([]webhooktest.Option{
				webhooktest.WithRun(15_000_000_123, 2),
				webhooktest.WithRepository("acme", "widgets", 777),
				webhooktest.WithInstallation(99),
				webhooktest.WithNames("test (linux)", "Build and test"),
			}, tc.opts...)
			body := webhooktest.Payload(tc.action, 21_000_000_042, labels, opts...)
			delivery := webhooktest.NewDeliveryID()
			rec := b.post(t, signed("workflow_job", delivery, body), body)
			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())

			want := proto.Clone(tc.want).(*rmv1.WorkflowJobEvent)
			want.DeliveryId, want.Action, want.JobId, want.RunId, want.RunAttempt = delivery, tc.action, 21_000_000_042, 15_000_000_123, 2
			want.Labels, want.Owner, want.Repository, want.RepositoryId, want.InstallationId = labels, "acme", "widgets", 777, 99
			want.JobName, want.WorkflowName, want.ReceivedAt = "test (linux)", "Build and test", timestamppb.New(received)
			got := b.entries(t)
			require.Len(t, got, 1)
			require.True(t, proto.Equal(want, got[0]), "want %v\n got %v", want, got[0])
		})
	}
}

func TestReplayGuard(t *testing.T) {
	b := setup(t, redistest.Client(t))
	body := webhooktest.Payload(webhooktest.ActionQueued, 77, labels)
	delivery := webhooktest.NewDeliveryID()
	require.Equal(t, http.StatusAccepted, b.post(t, signed("workflow_job", delivery, body), body).Code)
	for range 3 {
		require.Equal(t, http.StatusOK, b.post(t, signed("workflow_job", delivery, body), body).Code)
	}
	require.Equal(t, int64(1), b.xlen(t))

	ttl, err := b.rdb.TTL(context.Background(), b.keys.Delivery(delivery)).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 71*time.Hour)
	require.LessOrEqual(t, ttl, webhook.DeliveryTTL)

	// The same signed body under another delivery id is a replay: 200, not
	// published (TestBodyReplayWithNewDeliveryIsNotPublished).
	rec := b.post(t, signed("workflow_job", webhooktest.NewDeliveryID(), body), body)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, webhook.OutcomeDuplicateBody+"\n", rec.Body.String())
	require.Equal(t, int64(1), b.xlen(t))

	// Another delivery of the same job (GitHub sends one per action) is published.
	next := webhooktest.Payload(webhooktest.ActionCompleted, 77, labels)
	require.Equal(t, http.StatusAccepted, b.post(t, signed("workflow_job", webhooktest.NewDeliveryID(), next), next).Code)
	require.Equal(t, int64(2), b.xlen(t))
}

func TestStreamIsTrimmed(t *testing.T) {
	b := setup(t, redistest.Client(t), func(o *webhook.Options) { o.MaxLen = 10 })
	for i := range 400 {
		body := webhooktest.Payload(webhooktest.ActionQueued, int64(i+1), labels, webhooktest.WithSteps(0))
		require.Equal(t, http.StatusAccepted, b.post(t, signed("workflow_job", webhooktest.NewDeliveryID(), body), body).Code)
	}
	// MAXLEN ~ trims whole macro nodes (100 entries by default), never leaves it unbounded.
	require.Less(t, b.xlen(t), int64(400))
}

func TestSecretRotation(t *testing.T) {
	rdb := redistest.Client(t)
	rotating := func(o *webhook.Options) {
		o.Secrets = config.Secrets{WebhookSecret: secret, WebhookSecretPrevious: previousSecret}
	}
	cases := []struct {
		name   string
		edit   func(*webhook.Options)
		signer string
		status int
	}{
		{"current secret", rotating, secret, http.StatusAccepted},
		{"previous secret", rotating, previousSecret, http.StatusAccepted},
		{"neither", rotating, "whsec-someone-else", http.StatusUnauthorized},
		{"previous secret after the rotation ended", func(*webhook.Options) {}, previousSecret, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, rdb, tc.edit)
			body := webhooktest.Payload(webhooktest.ActionQueued, 5, labels)
			rec := b.post(t, webhooktest.Header("workflow_job", webhooktest.NewDeliveryID(), tc.signer, body), body)
			require.Equal(t, tc.status, rec.Code)
			want := int64(0)
			if tc.status == http.StatusAccepted {
				want = 1
			}
			require.Equal(t, want, b.xlen(t))
		})
	}
}

func TestNewHandlerRefusesNoSecret(t *testing.T) {
	_, err := webhook.NewHandler(webhook.Options{Keys: keys.New("x"), Redis: redis.NewClient(&redis.Options{})})
	require.ErrorContains(t, err, "RM_GITHUB_WEBHOOK_SECRET")
}

// countingReader counts what the handler reads of a body.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestOversizedBodyIsNotRead(t *testing.T) {
	b := setup(t, redistest.Client(t))
	const limit = 64 << 10
	for _, declared := range []int64{limit + 1, -1} { // a Content-Length over the limit, and a chunked body
		body := &countingReader{r: io.LimitReader(zeros{}, 10<<20)}
		req := httptest.NewRequest(http.MethodPost, "/webhook", body)
		req.ContentLength = declared
		req.Header = signed("workflow_job", "d-1", nil)
		rec := httptest.NewRecorder()
		b.h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		require.LessOrEqual(t, body.n, limit+1, "read past the limit with Content-Length %d", declared)
	}
	require.Equal(t, int64(0), b.xlen(t))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestFormEncodedDelivery(t *testing.T) {
	b := setup(t, redistest.Client(t))
	payload := webhooktest.Payload(webhooktest.ActionQueued, 31, labels)
	body := []byte(url.Values{"payload": {string(payload)}}.Encode())
	h := signed("workflow_job", webhooktest.NewDeliveryID(), body)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusAccepted, b.post(t, h, body).Code)
	got := b.entries(t)
	require.Len(t, got, 1)
	require.Equal(t, int64(31), got[0].GetJobId())
}

func TestTraceparentFollowsTheSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b := setup(t, redistest.Client(t), func(o *webhook.Options) { o.TracerProvider = tp })
	body := webhooktest.Payload(webhooktest.ActionQueued, 8, labels)
	require.Equal(t, http.StatusAccepted, b.post(t, signed("workflow_job", "d-trace", body), body).Code)

	spans := rec.Ended()
	require.Len(t, spans, 1)
	sc := spans[0].SpanContext()
	msgs, err := b.rdb.XRange(context.Background(), b.keys.Events(), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01", msgs[0].Values[stream.FieldTraceparent])
}

func TestMetrics(t *testing.T) {
	b := setup(t, redistest.Client(t))
	body := webhooktest.Payload(webhooktest.ActionQueued, 9, labels)
	delivery := webhooktest.NewDeliveryID()
	b.post(t, signed("workflow_job", delivery, body), body)
	b.post(t, signed("workflow_job", delivery, body), body)
	b.post(t, webhooktest.Header("workflow_job", delivery, "bad", body), body)
	b.post(t, webhooktest.Header("made-up-event-"+delivery, delivery, "bad", body), body)

	require.Equal(t, 1.0, counter(t, b.reg, "workflow_job", webhook.OutcomePublished))
	require.Equal(t, 1.0, counter(t, b.reg, "workflow_job", webhook.OutcomeDuplicate))
	require.Equal(t, 1.0, counter(t, b.reg, "workflow_job", webhook.OutcomeUnauthorized))
	require.Equal(t, 1.0, counter(t, b.reg, "other", webhook.OutcomeUnauthorized), "unknown events share one label value")

	families, err := b.reg.Gather()
	require.NoError(t, err)
	seen := map[string]uint64{}
	for _, f := range families {
		if f.GetType() == dto.MetricType_HISTOGRAM {
			seen[f.GetName()] = f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	require.Equal(t, uint64(2), seen["runner_manager_ingress_publish_duration_seconds"])
	require.Equal(t, uint64(4), seen["runner_manager_ingress_body_bytes"])
}

func counter(t *testing.T, reg *prometheus.Registry, event, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "runner_manager_ingress_webhooks_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["event"] == event && l["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no counter for event=%s outcome=%s", event, outcome)
	return 0
}
