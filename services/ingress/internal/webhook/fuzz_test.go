package webhook_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

// FuzzWebhook throws arbitrary events, bodies, signatures and delivery ids at
// the handler: it never panics, answers only with the statuses of the
// contract, and publishes nothing unless the signature is valid.
//
//	go test ./internal/webhook -run '^$' -fuzz FuzzWebhook -fuzztime 60s
func FuzzWebhook(f *testing.F) {
	q := webhooktest.Payload(webhooktest.ActionQueued, 1, labels)
	c := webhooktest.Payload(webhooktest.ActionCompleted, 2, labels, webhooktest.WithInstallation(3))
	for _, seed := range []struct {
		event, delivery, sig string
		sign                 bool
		body                 []byte
	}{
		{"workflow_job", "6f1e0f2c-0b7e-11ef-9e3b-2a3f5c6d7e8f", "", true, q},
		{"workflow_job", "6f1e0f2c-0b7e-11ef-9e3b-2a3f5c6d7e90", "", true, c},
		{"workflow_job", "d", webhooktest.Sign(secret, q), false, q},
		{"workflow_job", "d", webhooktest.Sign("other", q), false, q},
		{"workflow_job", "d", "sha256=", false, q},
		{"workflow_job", "d", "", true, []byte(`{"action":"queued","workflow_job":{"id":1,"run_id":2.0,"runner_id":null}}`)},
		{"workflow_job", "d", "", true, []byte(`{"action":"queued","workflow_job":{"id":1,"run_id":1e400}}`)},
		{"workflow_job", "d", "", true, []byte(`{"action":"queued","workflow_job":{"id":-1}}`)},
		{"workflow_job", "", "", true, q},
		{"workflow_job", "a:b", "", true, q},
		{"ping", "d", "", true, webhooktest.PingPayload(1)},
		{"push", "d", "", true, []byte(`{}`)},
		{"", "", "", false, nil},
		{"workflow_job", "d", "", true, []byte("\xff\xfe")},
	} {
		f.Add(seed.event, seed.delivery, seed.sig, seed.sign, seed.body)
	}

	b := setup(f, redistest.Client(f))
	f.Fuzz(func(t *testing.T, event, delivery, sig string, sign bool, body []byte) {
		valid := webhooktest.Sign(secret, body)
		if sign {
			sig = valid
		}
		req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		req.Header.Set(webhooktest.HeaderEvent, event)
		req.Header.Set(webhooktest.HeaderDelivery, delivery)
		req.Header.Set(webhooktest.HeaderSignature256, sig)
		before := b.xlen(t)
		rec := httptest.NewRecorder()
		b.h.ServeHTTP(rec, req) // a panic fails the fuzz test
		published := b.xlen(t) - before

		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d is not in the contract", rec.Code)
		}
		if sig != valid {
			if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("bad signature answered %d", rec.Code)
			}
			if published != 0 {
				t.Fatalf("published %d entries without a valid signature", published)
			}
		}
		if published > 1 || published == 1 && rec.Code != http.StatusAccepted {
			t.Fatalf("published %d entries and answered %d", published, rec.Code)
		}
	})
}
