package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/ingress/internal/webhook"
)

// TestRedisOutage stops Redis under the ingress and starts it again: requests
// get 503 and /readyz fails while it is down, both recover by themselves, and
// every delivery that got a 2xx is in the stream.
func TestRedisOutage(t *testing.T) {
	srv := redistest.StartAOF(t) // the stream must survive the restart
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })

	b := setup(t, rdb)
	cfg := &config.Config{Name: "ingress-outage"}
	cfg.SetDefaults()
	app := service.NewApp("ingress", cfg, slog.New(slog.NewJSONHandler(b.logs, nil)), rdb)
	app.HTTP.POST("/webhook", b.h.Echo())

	accepted := map[string]bool{} // delivery ids answered with a 2xx
	var refused []string          // delivery ids answered 503, to redeliver
	job := int64(0)
	send := func(delivery string) int {
		t.Helper()
		if delivery == "" {
			delivery = webhooktest.NewDeliveryID()
		}
		job++
		body := webhooktest.Payload(webhooktest.ActionQueued, job, labels)
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(string(body)))
		req.Header = signed("workflow_job", delivery, body)
		rec := httptest.NewRecorder()
		app.HTTP.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusAccepted || rec.Code == http.StatusOK:
			accepted[delivery] = true
		case rec.Code == http.StatusServiceUnavailable:
			refused = append(refused, delivery)
		default:
			t.Fatalf("delivery %s: unexpected status %d %s", delivery, rec.Code, rec.Body.String())
		}
		return rec.Code
	}
	readyz := func() int {
		rec := httptest.NewRecorder()
		app.HTTP.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}

	for range 5 {
		require.Equal(t, http.StatusAccepted, send(""))
	}
	require.Equal(t, http.StatusOK, readyz())

	srv.Stop()
	for range 3 {
		require.Equal(t, http.StatusServiceUnavailable, send(""))
	}
	require.Equal(t, http.StatusServiceUnavailable, readyz())

	srv.Restart()
	// Readiness and publishing come back without any restart of the ingress.
	require.Eventually(t, func() bool { return readyz() == http.StatusOK }, 15*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusAccepted, send(""))
	// GitHub redelivers what failed, with the same delivery ids.
	for _, d := range append([]string(nil), refused...) {
		require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, send(d))
	}
	for range 5 {
		require.Equal(t, http.StatusAccepted, send(""))
	}

	published := map[string]bool{}
	for _, ev := range b.entries(t) {
		require.False(t, published[ev.GetDeliveryId()], "delivery %s published twice", ev.GetDeliveryId())
		published[ev.GetDeliveryId()] = true
	}
	for d := range accepted {
		require.True(t, published[d], "delivery %s got a 2xx but is not in the stream", d)
	}
	require.Len(t, accepted, 14)
}

// TestNoSecretInLogs sends good, bad and failing deliveries and checks that
// neither the secrets, nor any signature, nor the body reach the log lines or
// the responses.
func TestNoSecretInLogs(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	b := setup(t, rdb, func(o *webhook.Options) {
		o.Secrets = config.Secrets{WebhookSecret: secret, WebhookSecretPrevious: previousSecret}
	})

	var sigs, responses []string
	post := func(event, delivery, signer string, body []byte) {
		h := webhooktest.Header(event, delivery, signer, body)
		sigs = append(sigs, h.Get(webhooktest.HeaderSignature256))
		rec := b.post(t, h, body)
		responses = append(responses, rec.Body.String(), fmt.Sprint(rec.Header()))
	}
	body := webhooktest.Payload(webhooktest.ActionQueued, 123, labels, webhooktest.WithNames("body-marker-job", "body-marker-workflow"))
	post("workflow_job", webhooktest.NewDeliveryID(), secret, body)
	post("workflow_job", webhooktest.NewDeliveryID(), previousSecret, body)
	post("workflow_job", webhooktest.NewDeliveryID(), "wrong-"+secret, body)
	post("workflow_job", "", secret, body)
	post("workflow_job", webhooktest.NewDeliveryID(), secret, []byte(`{"action":"queued","body-marker":`))
	post("ping", webhooktest.NewDeliveryID(), secret, webhooktest.PingPayload(1))
	srv.Stop()
	post("workflow_job", webhooktest.NewDeliveryID(), secret, body)

	logs := b.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	require.Len(t, lines, 7, "one line per request")
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[6]), &last))
	require.Equal(t, "unavailable", last["outcome"])
	require.NotEmpty(t, last["error"], "a 503 says why")

	out := logs + strings.Join(responses, "\n")
	for _, s := range append([]string{secret, previousSecret, "body-marker"}, sigs...) {
		if s == "" {
			continue
		}
		require.NotContains(t, out, s)
		if hex, ok := strings.CutPrefix(s, "sha256="); ok {
			require.NotContains(t, out, hex)
		}
	}
}

// TestClientHangupDoesNotCancelThePublish: a request whose client went away
// still completes its script, so the answer GitHub did not see is not lost.
func TestClientHangupDoesNotCancelThePublish(t *testing.T) {
	b := setup(t, redistest.Client(t))
	body := webhooktest.Payload(webhooktest.ActionQueued, 64, labels)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/webhook", strings.NewReader(string(body)))
	req.Header = signed("workflow_job", webhooktest.NewDeliveryID(), body)
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusAccepted, rec.Code)
	require.Equal(t, int64(1), b.xlen(t))
}

// TestRedisHangs: a Redis that accepts connections and never answers gets the
// request a 503 once the handler's timeout expires, not a hung request.
func TestRedisHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }() // read, never answer
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	b := setup(t, rdb, func(o *webhook.Options) { o.Timeout = 100 * time.Millisecond })
	body := webhooktest.Payload(webhooktest.ActionQueued, 3, labels)
	rec := b.post(t, signed("workflow_job", webhooktest.NewDeliveryID(), body), body)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, b.logs.String(), "timeout")
}
