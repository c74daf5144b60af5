package tracing

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
)

var labels = []string{"self-hosted", "linux", "traced"}

// start runs a system of one docker group ("traced", max 1) named name.
func start(t *testing.T, name string) *harness.System {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys, err := harness.Start(ctx, harness.Options{
		Name:   name,
		Dir:    dir,
		BinDir: binDir,
		Groups: []config.RunnerGroup{harness.DockerGroup("traced", 1, 0, labels...)},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("bash", "-c", "tail -n 30 "+dir+"/*.log").CombinedOutput()
			t.Logf("last log lines:\n%s", out)
		}
		sys.Close()
	})
	return sys
}

// poll calls cond until it returns true, failing the test with what after
// within.
func poll(t *testing.T, within time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, fmt.Sprintf(what, args...))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOneTraceFromWebhookToBackend: with OTEL_EXPORTER_OTLP_ENDPOINT set, a
// queued job makes one trace: the ingress's server span, the scheduler's
// consume span of the event, the provisioner's consume span of the create
// command and its github.generate_jitconfig and backend.create spans, each
// the child of the one before; the scheduler's handling of the result
// continues it.
func TestOneTraceFromWebhookToBackend(t *testing.T) {
	rec := newReceiver(t, "127.0.0.1:0")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rec.URL())
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
	name := "e2e-trace-on"
	k := keys.New(name)
	sys := start(t, name)

	_, err := sys.QueueJob(context.Background(), "app", labels, time.Second)
	require.NoError(t, err)

	// The backend.create span, then its ancestors up to the ingress.
	var chain []span
	var all []span
	poll(t, 2*time.Minute, func() bool {
		all = rec.Spans()
		chain = nil
		byID := map[string]span{}
		var create *span
		for i, s := range all {
			byID[s.TraceID+s.SpanID] = s
			if s.Service == "provisioner-docker" && s.Name == "backend.create" {
				create = &all[i]
			}
		}
		if create == nil {
			return false
		}
		for s, ok := *create, true; ok; s, ok = byID[s.TraceID+s.ParentSpanID] {
			chain = append(chain, s)
			if s.Service == "ingress" && s.Kind == tracepb.Span_SPAN_KIND_SERVER {
				return true
			}
		}
		return false
	}, "a backend.create span descending from the ingress's server span; spans so far: %v", &all)

	var got []string
	for _, s := range chain {
		got = append(got, s.Service+": "+s.Name)
	}
	require.Equal(t, []string{
		"provisioner-docker: backend.create",
		"provisioner-docker: consume " + k.Provision("docker"),
		"scheduler: consume " + k.Events(),
		"ingress: POST /webhook",
	}, got, "the parent chain of backend.create")
	tid := chain[0].TraceID
	for _, s := range chain {
		require.Equal(t, tid, s.TraceID, "one trace id: %v", s)
	}
	create, provConsume, ingress := chain[0], chain[1], chain[3]
	require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, create.Kind)
	require.Equal(t, "docker", create.Attrs["runner_manager.backend"])
	require.Equal(t, "traced", create.Attrs["runner_manager.group"])
	runner := create.Attrs["runner_manager.runner"]
	require.True(t, strings.HasPrefix(runner, name+"-traced-"), "runner name %q", runner)
	require.Equal(t, "queued", ingress.Attrs["github.action"])
	require.Equal(t, "published", ingress.Attrs["runner_manager.outcome"])

	// The JIT configuration is asked for in the same command span, and the
	// scheduler's handling of the created result continues the trace.
	poll(t, time.Minute, func() bool {
		var jit, result bool
		for _, s := range rec.Spans() {
			jit = jit || (s.Service == "provisioner-docker" && s.Name == "github.generate_jitconfig" &&
				s.TraceID == tid && s.ParentSpanID == provConsume.SpanID && s.Attrs["runner_manager.runner"] == runner)
			result = result || (s.Service == "scheduler" && s.Name == "consume "+k.Results() &&
				s.TraceID == tid && s.ParentSpanID == provConsume.SpanID)
		}
		return jit && result
	}, "github.generate_jitconfig and the scheduler's consume %s in trace %s", k.Results(), tid)

	// With tracing on, every entry of every stream carries a trace: those
	// of webhooks, and the commands of the health and reconcile passes.
	for _, key := range []string{k.Events(), k.Provision("docker"), k.Results()} {
		entries, err := sys.RedisClient().XRange(context.Background(), key, "-", "+").Result()
		require.NoError(t, err)
		require.NotEmpty(t, entries, key)
		for _, e := range entries {
			require.True(t, traceID(t, e).IsValid(), "entry %s of %s has a traceparent: %v", e.ID, key, e.Values[stream.FieldType])
		}
	}

	// No span carries the JIT configuration or a token.
	for _, s := range rec.Spans() {
		for key, v := range s.Attrs {
			require.NotContains(t, v, harness.DevGitHubToken, "%v %s", s, key)
			require.NotContains(t, strings.ToLower(key), "jit_config", "%v", s)
		}
	}
}

// TestTracingOff: without an endpoint nothing is exported (a receiver on the
// exporter's default address, localhost:4318, gets no request even after the
// services' shutdown flush), and the trace context still propagates: the
// queued event, the create command and its result carry one trace id, to
// join the services' logs.
func TestTracingOff(t *testing.T) {
	rec := newReceiver(t, "127.0.0.1:4318")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
	name := "e2e-trace-off"
	k := keys.New(name)
	sys := start(t, name)
	rdb := sys.RedisClient()

	_, err := sys.QueueJob(context.Background(), "app", labels, time.Second)
	require.NoError(t, err)

	// The queued event, the create command and the created result.
	var event, command, result trace.TraceID
	poll(t, 2*time.Minute, func() bool {
		ctx := context.Background()
		evs, err := rdb.XRange(ctx, k.Events(), "-", "+").Result()
		require.NoError(t, err)
		cmds, err := rdb.XRange(ctx, k.Provision("docker"), "-", "+").Result()
		require.NoError(t, err)
		res, err := rdb.XRange(ctx, k.Results(), "-", "+").Result()
		require.NoError(t, err)
		for _, e := range evs {
			var ev rmv1.WorkflowJobEvent
			require.NoError(t, decode(e, &ev))
			if ev.GetAction() == "queued" {
				event = traceID(t, e)
			}
		}
		for _, e := range cmds {
			var c rmv1.ProvisionCommand
			require.NoError(t, decode(e, &c))
			if c.GetCreate() != nil {
				command = traceID(t, e)
			}
		}
		for _, e := range res {
			var r rmv1.ProvisionResult
			require.NoError(t, decode(e, &r))
			if r.GetCreated() != nil {
				result = traceID(t, e)
			}
		}
		return event.IsValid() && command.IsValid() && result.IsValid()
	}, "a queued event, a create command and a created result with trace ids")
	require.Equal(t, event, command, "the create command continues the queued event's trace")
	require.Equal(t, event, result, "the result continues the command's trace")

	sys.Close()
	require.Zero(t, rec.Requests(), "nothing exported with tracing off")
}

// traceID is the trace id of an entry's traceparent (invalid when none).
func traceID(t *testing.T, e redis.XMessage) trace.TraceID {
	t.Helper()
	tp, _ := e.Values[stream.FieldTraceparent].(string)
	return trace.SpanContextFromContext(stream.ContextWithTraceparent(context.Background(), tp)).TraceID()
}

// decode decodes an entry's data.
func decode(e redis.XMessage, m proto.Message) error {
	data, _ := e.Values[stream.FieldData].(string)
	typ, _ := e.Values[stream.FieldType].(string)
	return stream.Message{Stream: "", ID: e.ID, Type: typ, Data: []byte(data)}.Unmarshal(m)
}
