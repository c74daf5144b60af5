package webhook_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/ingress/internal/webhook"
)

// cpuTime is the CPU time of the test process: on a shared machine it is a
// steadier measure than the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWebhook measures the handler alone (no network between the client
// and the handler; Redis on loopback), with realistic 7-12 KB deliveries:
//
//	go test ./internal/webhook -run '^$' -bench BenchmarkWebhook -benchmem -cpuprofile cpu.out
//
// "published" is the whole path; "waiting" stops before Redis (signature
// check, decode, log line), which is the CPU cost of the handler itself.
// cpu-ns/op is the process's CPU time per request (Redis not included).
func BenchmarkWebhook(b *testing.B) {
	bd := setup(b, redistest.Client(b), func(o *webhook.Options) {
		o.MaxLen = 10_000
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	})
	for _, action := range []string{webhooktest.ActionQueued, webhooktest.ActionWaiting} {
		name := "published"
		if action == webhooktest.ActionWaiting {
			name = "waiting"
		}
		// Every request gets a body of its own (the body replay guard would
		// answer a repeated one 200, unpublished): 64 bases of 7-12 KB, each
		// varied by a counter at a few SHA-256 blocks per request.
		variants := make([]*webhooktest.Variants, 64)
		for i := range variants {
			variants[i] = webhooktest.NewVariants(secret, webhooktest.Payload(action, int64(1000+i), labels, webhooktest.WithSteps(i%24)))
		}
		var seq atomic.Int64
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					delivery := "bench-" + strconv.FormatInt(n, 10) + "-" + bd.keys.Prefix()[1:9]
					body, sig := variants[int(n)%len(variants)].Body(delivery)
					req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
					req.Header.Set(webhooktest.HeaderEvent, "workflow_job")
					req.Header.Set(webhooktest.HeaderDelivery, delivery)
					req.Header.Set(webhooktest.HeaderSignature256, sig)
					rec := httptest.NewRecorder()
					bd.h.ServeHTTP(rec, req)
					if rec.Code != http.StatusAccepted {
						b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
					}
				}
			})
		})
	}
}
