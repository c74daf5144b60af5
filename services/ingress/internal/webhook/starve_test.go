package webhook_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/ingress/internal/webhook"
)

// server is the ingress's echo app behind a real http.Server on loopback,
// with the ingress's default timeouts.
type server struct {
	*bundle
	addr    string
	entered atomic.Int64 // requests that reached the handler
}

func serve(t *testing.T, edit ...func(*webhook.Options)) *server {
	t.Helper()
	b := setup(t, redistest.Client(t), edit...)
	cfg := &config.Config{Name: "ingress-starve"}
	cfg.SetDefaults()
	app := service.NewApp("ingress", cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), b.rdb)
	app.HTTP.POST("/webhook", b.h.Echo())
	s := &server{bundle: b}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.entered.Add(1)
			app.HTTP.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: cfg.Ingress.ReadHeaderTimeout,
		ReadTimeout:       cfg.Ingress.ReadTimeout,
		WriteTimeout:      cfg.Ingress.WriteTimeout,
		IdleTimeout:       cfg.Ingress.IdleTimeout,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	s.addr = ln.Addr().String()
	return s
}

// slowRequest opens a connection and sends the headers of a POST /webhook
// announcing contentLength bytes, then only the first len(start) bytes.
func (s *server) slowRequest(t *testing.T, header http.Header, contentLength int, start string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	var sb strings.Builder
	fmt.Fprintf(&sb, "POST /webhook HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", s.addr, contentLength)
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&sb, "%s: %s\r\n", k, v)
		}
	}
	sb.WriteString("\r\n")
	sb.WriteString(start)
	_, err = io.WriteString(c, sb.String())
	require.NoError(t, err)
	return c
}

// readResponse reads one response from c, waiting at most d.
func readResponse(c net.Conn, d time.Duration) (*http.Response, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp, nil
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestSlowBodiesDoNotGrowTheHeap: 300 connections announce a 1 MiB body and
// send one byte. The heap must not grow with what they announce; at most
// MaxConcurrent of them read a body, the others are answered 503 after the
// queue wait; a genuine delivery meanwhile gets 503 with Retry-After (the
// bound works as designed); the slow bodies are cut after BodyTimeout, every
// connection is answered and closed, and then deliveries are accepted again.
func TestSlowBodiesDoNotGrowTheHeap(t *testing.T) {
	const (
		conns = 300
		slots = webhook.DefaultMaxConcurrent
	)
	s := serve(t, func(o *webhook.Options) {
		o.MaxBody = 2 << 20
		o.BodyTimeout = 6 * time.Second
	})
	body := webhooktest.Payload(webhooktest.ActionQueued, 15, labels)
	// Well formed, but not the signature of the body that never comes.
	h := signed("workflow_job", webhooktest.NewDeliveryID(), body)

	before := liveHeap()
	held := make([]net.Conn, conns)
	for i := range held {
		held[i] = s.slowRequest(t, h, 1<<20, "{")
	}
	require.Eventually(t, func() bool { return s.entered.Load() == conns }, 30*time.Second, 10*time.Millisecond,
		"every slow request reaches the handler")
	// Sample the live heap while they are held.
	var peak uint64
	for range 10 {
		peak = max(peak, liveHeap())
		require.LessOrEqual(t, gauge(t, s.reg, "runner_manager_ingress_body_reads_in_flight"), float64(slots))
		time.Sleep(50 * time.Millisecond)
	}
	growth := int64(peak) - int64(before)
	t.Logf("live heap %d MiB before, %d MiB peak with %d slow bodies held (%d KiB per connection)",
		before>>20, peak>>20, conns, growth/1024/conns)
	require.Less(t, growth, int64(32<<20), "the heap grew with the announced Content-Length")

	// Every slot is held by a slow body: a genuine delivery waits QueueWait
	// and is told to come back.
	require.Equal(t, float64(slots), gauge(t, s.reg, "runner_manager_ingress_body_reads_in_flight"))
	genuine := func() *http.Response {
		req, err := webhooktest.NewRequest(context.Background(), "http://"+s.addr+"/webhook", "workflow_job",
			webhooktest.NewDeliveryID(), secret, body)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp
	}
	start := time.Now()
	resp := genuine()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Less(t, time.Since(start), webhook.DefaultQueueWait+2*time.Second)

	// Every slow connection is answered (503 busy, or 408 once its body
	// timed out) and closed, within a bounded time.
	statuses := map[int]int{}
	for _, c := range held {
		resp, err := readResponse(c, 20*time.Second)
		require.NoError(t, err)
		statuses[resp.StatusCode]++
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF, "the connection is closed after the answer")
	}
	require.Equal(t, map[int]int{http.StatusServiceUnavailable: conns - slots, http.StatusRequestTimeout: slots}, statuses)
	require.Equal(t, float64(slots), counter(t, s.reg, "workflow_job", webhook.OutcomeBadRequest), "the cut bodies")
	require.Equal(t, float64(conns-slots+1), counter(t, s.reg, "workflow_job", webhook.OutcomeBusy))

	// The slots are free again.
	require.Eventually(t, func() bool { return gauge(t, s.reg, "runner_manager_ingress_body_reads_in_flight") == 0 },
		5*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusAccepted, genuine().StatusCode)
	require.Equal(t, int64(1), s.xlen(t))
}

// TestSignatureHeaderCheckedBeforeTheBody: a request without a well-formed
// X-Hub-Signature-256 is answered 401 at once, without waiting for a body
// that never arrives.
func TestSignatureHeaderCheckedBeforeTheBody(t *testing.T) {
	s := serve(t)
	body := webhooktest.Payload(webhooktest.ActionQueued, 16, labels)
	good := webhooktest.Sign(secret, body)
	cases := map[string]func(http.Header){
		"missing":   func(h http.Header) { h.Del(webhooktest.HeaderSignature256) },
		"sha1":      func(h http.Header) { h.Set(webhooktest.HeaderSignature256, "sha1="+good[7:]) },
		"not hex":   func(h http.Header) { h.Set(webhooktest.HeaderSignature256, "sha256="+strings.Repeat("zz", 32)) },
		"truncated": func(h http.Header) { h.Set(webhooktest.HeaderSignature256, good[:len(good)-2]) },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			h := signed("workflow_job", webhooktest.NewDeliveryID(), body)
			edit(h)
			c := s.slowRequest(t, h, len(body), "") // the body never comes
			start := time.Now()
			resp, err := readResponse(c, 3*time.Second)
			require.NoError(t, err, "no answer before the body")
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			t.Logf("401 after %s", time.Since(start))
		})
	}
	require.Equal(t, int64(0), s.xlen(t))
}

// TestBodyReplayWithNewDeliveryIsNotPublished: GitHub signs the body, not
// X-GitHub-Delivery. A captured body sent again under fresh delivery ids is
// answered 200 and not published; GitHub's own redelivery (same id, same
// body) is answered 200 as before.
func TestBodyReplayWithNewDeliveryIsNotPublished(t *testing.T) {
	b := setup(t, redistest.Client(t))
	body := webhooktest.Payload(webhooktest.ActionQueued, 17, labels)
	first := webhooktest.NewDeliveryID()
	require.Equal(t, http.StatusAccepted, b.post(t, signed("workflow_job", first, body), body).Code)

	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() {
			id := webhooktest.NewDeliveryID()
			if i%2 == 0 {
				id = first // GitHub's redelivery
			}
			codes[i] = b.post(t, signed("workflow_job", id, body), body).Code
		})
	}
	wg.Wait()
	for i, c := range codes {
		require.Equal(t, http.StatusOK, c, "replay %d", i)
	}
	require.Equal(t, int64(1), b.xlen(t), "published once")

	sum := sha256.Sum256(body)
	ttl, err := b.rdb.TTL(context.Background(), b.keys.Body(hex.EncodeToString(sum[:]))).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 71*time.Hour)
	require.LessOrEqual(t, ttl, webhook.DeliveryTTL)

	// Another body of the same job (the next action) is published.
	next := webhooktest.Payload(webhooktest.ActionInProgress, 17, labels)
	require.Equal(t, http.StatusAccepted, b.post(t, signed("workflow_job", webhooktest.NewDeliveryID(), next), next).Code)
	require.Equal(t, int64(2), b.xlen(t))
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
