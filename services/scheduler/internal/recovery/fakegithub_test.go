package recovery_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/recovery"
)

const webhookSecret = "recovery-test-secret"

// receiver stands in for the ingress: down (503) or up (verifies the
// signature and counts each delivery GUID).
type receiver struct {
	up       atomic.Bool
	mu       sync.Mutex
	received map[string]int // GUID -> deliveries accepted
	badSig   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !rc.up.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	m := hmac.New(sha256.New, []byte(webhookSecret))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Hub-Signature-256"))) {
		rc.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.received[r.Header.Get("X-GitHub-Delivery")]++
	w.WriteHeader(http.StatusAccepted)
}

func (rc *receiver) snapshot() (map[string]int, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return maps.Clone(rc.received), rc.badSig
}

// TestRedeliversMissedWebhooksThroughTheFake runs the recovery through the
// real GitHub client, authenticated as an App, against the fake GitHub.
func TestRedeliversMissedWebhooksThroughTheFake(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	rc := &receiver{received: map[string]int{}}
	target := httptest.NewServer(rc)
	t.Cleanup(target.Close)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	fake, err := fakegithub.New(fakegithub.Options{
		WebhookURL: target.URL, WebhookSecret: webhookSecret, WebhookTimeout: 5 * time.Second,
		AppID: 77, AppPublicKey: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), InstallationID: 5, Seed: 1,
	})
	require.NoError(t, err)
	t.Cleanup(fake.Close)
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)

	var logs logbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	privateKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	client, err := github.New(github.Options{Logger: log,
		BaseURL: api.URL, AppID: 77, InstallationID: 5,
		PrivateKey:     config.Secret(privateKey),
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 10 * time.Millisecond,
	})
	require.NoError(t, err)

	// The ingress is down while 5 jobs are queued.
	const jobs = 5
	for range jobs {
		_, err := fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "linux"}})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return len(fake.Deliveries()) == jobs }, 20*time.Second, 10*time.Millisecond)
	missed := map[string]bool{}
	for _, d := range fake.Deliveries() {
		require.False(t, d.Success())
		require.Equal(t, "queued", d.Action)
		missed[d.GUID] = true
	}
	require.Len(t, missed, jobs)

	// It comes back; one pass redelivers every missed delivery.
	rc.up.Store(true)
	rec := recovery.New(recovery.Options{
		Redis: redistest.Client(t), Keys: keys.New(redistest.NewName("recovery")),
		Source: recovery.AppHook(client), PerPage: 2, Logger: log,
	})
	rep, err := rec.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, jobs, rep.Failed)
	require.Len(t, rep.Redelivered, jobs)
	require.Equal(t, 3, rep.Pages, "5 deliveries, 2 a page")

	require.Eventually(t, func() bool { got, _ := rc.snapshot(); return len(got) == jobs }, 20*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(fake.Deliveries()) == 2*jobs }, 20*time.Second, 10*time.Millisecond)

	// The next pass sees every GUID delivered: nothing more is asked.
	rep, err = rec.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, rep.Failed)
	require.Empty(t, rep.Redelivered)

	got, badSig := rc.snapshot()
	require.Zero(t, badSig, "every redelivery is signed with the webhook secret")
	want := map[string]int{}
	for g := range missed {
		want[g] = 1
	}
	require.Equal(t, want, got, "every missed delivery received exactly once")
	require.Len(t, fake.Deliveries(), 2*jobs, "no other delivery was made")
	for _, d := range fake.Deliveries()[jobs:] {
		require.True(t, d.Redelivery)
		require.True(t, d.Success())
	}

	out := logs.String()
	require.Contains(t, out, "webhook redelivery requested")
	require.NotContains(t, out, "PRIVATE KEY")
	require.NotContains(t, out, webhookSecret)
	for _, line := range strings.Split(string(privateKey), "\n")[1:3] {
		require.NotContains(t, out, line, "no part of the App's key is logged")
	}
}
