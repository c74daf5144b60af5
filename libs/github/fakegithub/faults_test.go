package fakegithub_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

type deliverySummary struct {
	ID         int64  `json:"id"`
	GUID       string `json:"guid"`
	Redelivery bool   `json:"redelivery"`
	StatusCode int    `json:"status_code"`
	Status     string `json:"status"`
	Action     string `json:"action"`
}

// queueN queues n jobs no runner takes and waits until their queued webhooks
// are recorded.
func queueN(t *testing.T, e *env, n int) []int64 {
	var ids []int64
	for range n {
		j, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"nobody"}})
		require.NoError(t, err)
		ids = append(ids, j.ID)
	}
	require.Eventually(t, func() bool { return len(e.fake.Deliveries()) >= n }, 10*time.Second, 5*time.Millisecond)
	return ids
}

func TestDeliveriesCursorPaginationAndRedelivery(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *fakegithub.Options) { o.AcceptAnyToken = true })
	e.recv.status = http.StatusInternalServerError // the receiver is failing
	queueN(t, e, 5)

	var all []deliverySummary
	next := "/app/hook/deliveries?per_page=2"
	for next != "" {
		var page []deliverySummary
		resp := e.call("GET", next, nil, &page)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		all = append(all, page...)
		next = linkRel(resp.Header.Get("Link"), "next")
	}
	require.Len(t, all, 5)
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i-1].ID, all[i].ID, "newest first")
	}
	require.Equal(t, 500, all[0].StatusCode)
	require.Equal(t, "Invalid HTTP Response: 500", all[0].Status)
	var failures []deliverySummary
	e.call("GET", "/app/hook/deliveries?status=failure", nil, &failures)
	require.Len(t, failures, 5)

	// the receiver recovers; redeliver the oldest
	e.recv.mu.Lock()
	e.recv.status = 0
	e.recv.mu.Unlock()
	oldest := all[len(all)-1]
	var full map[string]any
	e.call("GET", fmt.Sprintf("/app/hook/deliveries/%d", oldest.ID), nil, &full)
	require.Equal(t, oldest.GUID, full["guid"])
	require.NotNil(t, full["request"].(map[string]any)["payload"])
	resp := e.call("POST", fmt.Sprintf("/app/hook/deliveries/%d/attempts", oldest.ID), nil, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	var latest []deliverySummary
	require.Eventually(t, func() bool {
		e.call("GET", "/app/hook/deliveries?status=success", nil, &latest)
		return len(latest) == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.True(t, latest[0].Redelivery)
	require.Equal(t, oldest.GUID, latest[0].GUID, "a redelivery keeps the GUID")
	require.Equal(t, 200, latest[0].StatusCode)
	require.Equal(t, http.StatusNotFound, e.call("POST", "/app/hook/deliveries/1/attempts", nil, nil).StatusCode)
}

func TestWebhookFaults(t *testing.T) {
	t.Parallel()
	t.Run("drop records a failed delivery and sends nothing", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		require.NoError(t, e.fake.SetFaults(fakegithub.Faults{Drop: 1}))
		queueN(t, e, 3)
		for _, d := range e.fake.Deliveries() {
			require.False(t, d.Success())
			require.Equal(t, "failed to connect", d.Status)
		}
		require.EqualValues(t, 3, e.fake.Stats().WebhooksDropped)
		require.Empty(t, e.recv.all())
	})
	t.Run("lose neither sends nor records", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		require.NoError(t, e.fake.SetFaults(fakegithub.Faults{Lose: 1}))
		for range 3 {
			_, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"nobody"}})
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool { return e.fake.Stats().Faults["lose"] == 3 }, 10*time.Second, 5*time.Millisecond)
		require.Empty(t, e.fake.Deliveries())
		require.Empty(t, e.recv.all())
	})
	t.Run("lose_actions limits lose to those actions", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		require.NoError(t, e.fake.SetFaults(fakegithub.Faults{Lose: 1, LoseActions: []string{"completed"}}))
		ids := queueN(t, e, 2) // queued: sent
		require.Len(t, e.recv.all(), 2)
		for _, id := range ids {
			_, err := e.fake.CancelJob(id) // completed: lost
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool { return e.fake.Stats().Faults["lose"] == 2 }, 10*time.Second, 5*time.Millisecond)
		require.Len(t, e.fake.Deliveries(), 2)
		require.Len(t, e.recv.all(), 2)
		require.ErrorContains(t, e.fake.SetFaults(fakegithub.Faults{Lose: 1, LoseActions: []string{"requested"}}), "no workflow_job action")
	})
	t.Run("a webhook held back by reorder is pending", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		require.NoError(t, e.fake.SetFaults(fakegithub.Faults{Reorder: 1}))
		_, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"nobody"}})
		require.NoError(t, err)
		// Held for a second (nothing comes after it): pending until the
		// receiver has it, so "nothing pending" means "all received".
		deadline := time.Now().Add(10 * time.Second)
		for len(e.recv.all()) == 0 {
			pending := e.fake.Stats().WebhooksPending
			if len(e.recv.all()) == 0 {
				require.Equal(t, 1, pending, "pending while not received")
			}
			require.True(t, time.Now().Before(deadline), "the held webhook was never sent")
			time.Sleep(5 * time.Millisecond)
		}
		require.Eventually(t, func() bool { return e.fake.Stats().WebhooksPending == 0 }, 10*time.Second, 5*time.Millisecond)
	})
	t.Run("duplicate sends the same delivery twice", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		require.NoError(t, e.fake.SetFaults(fakegithub.Faults{Duplicate: 1}))
		ids := queueN(t, e, 1)
		evs := e.waitEvents(ids[0], 2)
		require.Equal(t, evs[0].GUID, evs[1].GUID)
		require.Equal(t, evs[0].Body, evs[1].Body)
	})
	t.Run("reorder swaps consecutive deliveries", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		require.NoError(t, e.fake.SetFaults(fakegithub.Faults{Reorder: 1}))
		ids := queueN(t, e, 2)
		require.Eventually(t, func() bool { return len(e.recv.all()) == 2 }, 10*time.Second, 5*time.Millisecond)
		evs := e.recv.all()
		require.Equal(t, []int64{ids[1], ids[0]}, []int64{evs[0].JobID, evs[1].JobID})
	})
	t.Run("delay is applied", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		require.NoError(t, e.fake.SetFaults(fakegithub.Faults{DelayMS: 1}))
		queueN(t, e, 2)
		require.Len(t, e.recv.all(), 2)
	})
}

func TestAPIFaultsAndRateLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *fakegithub.Options) { o.RateLimitPerHour = 3 })
	var remaining []int
	for range 3 {
		resp := e.call("GET", "/orgs/acme/actions/runners", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		n, err := strconv.Atoi(resp.Header.Get("X-RateLimit-Remaining"))
		require.NoError(t, err)
		remaining = append(remaining, n)
		require.NotEmpty(t, resp.Header.Get("X-RateLimit-Reset"))
	}
	require.Equal(t, []int{2, 1, 0}, remaining)
	resp := e.call("GET", "/orgs/acme/actions/runners", nil, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "budget exhausted")
	require.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	e2 := setup(t, nil)
	require.NoError(t, e2.fake.SetFaults(fakegithub.Faults{APIRateLimit: 1, APIRateLimitSeconds: 30}))
	resp = e2.call("GET", "/orgs/acme/actions/runners", nil, nil)
	require.Contains(t, []int{http.StatusForbidden, http.StatusTooManyRequests}, resp.StatusCode)
	require.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.InDelta(t, 30, retry, 1)
	reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
	require.NoError(t, err)
	require.Greater(t, reset, time.Now().Unix())
	// the window holds even when the fault is lowered, until faults are cleared
	require.NoError(t, e2.fake.SetFaults(fakegithub.Faults{}))
	require.Equal(t, http.StatusOK, e2.call("GET", "/orgs/acme/actions/runners", nil, nil).StatusCode)

	require.NoError(t, e2.fake.SetFaults(fakegithub.Faults{API5xx: 1}))
	resp = e2.call("GET", "/orgs/acme/actions/runners", nil, nil)
	require.GreaterOrEqual(t, resp.StatusCode, 500)
	require.EqualValues(t, 1, e2.fake.Stats().Faults["api_5xx"])
}

func TestFaultsAreDeterministicPerSeed(t *testing.T) {
	t.Parallel()
	codes := func() []int {
		e := setup(t, func(o *fakegithub.Options) { o.Seed = 42 })
		require.NoError(t, e.fake.SetFaults(fakegithub.Faults{API5xx: 0.5}))
		var out []int
		for range 20 {
			out = append(out, e.call("GET", "/orgs/acme/actions/runner-groups", nil, nil).StatusCode)
		}
		return out
	}
	first := codes()
	require.Equal(t, first, codes())
	require.Contains(t, first, 200)
	require.NotEqual(t, []int{200}, uniq(first))
}

func uniq(v []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, x := range v {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	e := setup(t, func(o *fakegithub.Options) {
		o.AppID = 4242
		o.AppPublicKey = pubPEM
		o.InstallationID = 77
	})
	sign := func(k *rsa.PrivateKey, iss any, iat, exp time.Time) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss, "iat": iat.Unix(), "exp": exp.Unix()}).SignedString(k)
		require.NoError(t, err)
		return "Bearer " + tok
	}
	now := time.Now()
	valid := sign(key, "4242", now.Add(-time.Minute), now.Add(9*time.Minute))

	tests := []struct {
		name   string
		path   string
		auth   string
		status int
	}{
		{"no credentials", "/orgs/acme/actions/runners", "", http.StatusUnauthorized},
		{"unknown token", "/orgs/acme/actions/runners", "token nope", http.StatusUnauthorized},
		{"static token", "/orgs/acme/actions/runners", "token " + testToken, http.StatusOK},
		{"JWT on /app", "/app", valid, http.StatusOK},
		{"numeric iss", "/app", sign(key, 4242, now.Add(-time.Minute), now.Add(5*time.Minute)), http.StatusOK},
		{"JWT where a token is needed", "/orgs/acme/actions/runners", valid, http.StatusUnauthorized},
		{"token on /app", "/app", "token " + testToken, http.StatusUnauthorized},
		{"wrong key", "/app", sign(otherKey, "4242", now.Add(-time.Minute), now.Add(5*time.Minute)), http.StatusUnauthorized},
		{"wrong issuer", "/app", sign(key, "1", now.Add(-time.Minute), now.Add(5*time.Minute)), http.StatusUnauthorized},
		{"expired", "/app", sign(key, "4242", now.Add(-20*time.Minute), now.Add(-10*time.Minute)), http.StatusUnauthorized},
		{"lifetime over 10 minutes", "/app", sign(key, "4242", now.Add(-time.Minute), now.Add(11*time.Minute)), http.StatusUnauthorized},
		{"issued in the future", "/app", sign(key, "4242", now.Add(5*time.Minute), now.Add(9*time.Minute)), http.StatusUnauthorized},
		{"wrong installation", "/app/installations/1/access_tokens", valid, http.StatusNotFound},
	}
	for _, tt := range tests {
		method := "GET"
		if tt.path == "/app/installations/1/access_tokens" {
			method = "POST"
		}
		resp := e.callAuth(method, tt.path, tt.auth, nil, nil)
		require.Equal(t, tt.status, resp.StatusCode, tt.name)
	}

	var tok struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	resp := e.callAuth("POST", "/app/installations/77/access_tokens", valid, nil, &tok)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.NotEmpty(t, tok.Token)
	require.Equal(t, http.StatusOK, e.callAuth("GET", "/orgs/acme/actions/runners", "token "+tok.Token, nil, nil).StatusCode)
	require.Equal(t, http.StatusOK, e.callAuth("GET", "/orgs/acme/actions/runners", "Bearer "+tok.Token, nil, nil).StatusCode)
	require.NotContains(t, e.logs.String(), tok.Token)

	// the private key PEM is accepted in place of the public key
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	fromPriv := setup(t, func(o *fakegithub.Options) { o.AppID = 4242; o.AppPublicKey = privPEM })
	require.Equal(t, http.StatusOK, fromPriv.callAuth("GET", "/app", valid, nil, nil).StatusCode)
	_, err = fakegithub.New(fakegithub.Options{AppID: 1, AppPublicKey: []byte("junk")})
	require.Error(t, err)

	any := setup(t, func(o *fakegithub.Options) { o.AcceptAnyToken = true })
	require.Equal(t, http.StatusOK, any.callAuth("GET", "/app", "Bearer whatever", nil, nil).StatusCode)
	require.Equal(t, http.StatusUnauthorized, any.callAuth("GET", "/app", "", nil, nil).StatusCode)
}

func TestDeliveriesAreBounded(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *fakegithub.Options) { o.MaxDeliveries = 2; o.WebhookURL = "" })
	for range 3 {
		_, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"nobody"}})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return e.fake.Stats().WebhooksFailed == 3 }, 10*time.Second, 5*time.Millisecond)
	ds := e.fake.Deliveries()
	require.Len(t, ds, 2)
	require.Equal(t, "failed to connect", ds[0].Status, "no webhook URL: nothing is sent")
}

// DispatchAfterList: a job queued while it is set waits; the next runner
// list shows the runner idle, and right after it the runner gets the job and
// is busy: removing it is refused with GitHub's 422.
func TestDispatchAfterList(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	a := e.register("acme", "", "surplus", 1, "x")
	e.startOnline(a)
	require.NoError(t, e.fake.SetFaults(fakegithub.Faults{DispatchAfterList: true}))
	j, err := e.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"x"}, Duration: 200 * time.Millisecond})
	require.NoError(t, err)
	// A lookup by name is not the list the fault waits for.
	e.call("GET", "/orgs/acme/actions/runners?name=surplus", nil, nil)
	r, _ := e.fake.RunnerByName("surplus")
	require.False(t, r.Busy)

	var list struct {
		Runners []map[string]any `json:"runners"`
	}
	require.Equal(t, http.StatusOK, e.call("GET", "/orgs/acme/actions/runners", nil, &list).StatusCode)
	require.Len(t, list.Runners, 1)
	require.Equal(t, false, list.Runners[0]["busy"], "the list shows the runner idle")
	require.False(t, e.fake.Faults().DispatchAfterList, "one-shot")
	require.EqualValues(t, 1, e.fake.Stats().Faults["dispatch_after_list"])

	var body struct {
		Message string `json:"message"`
	}
	resp := e.call("DELETE", fmt.Sprintf("/orgs/acme/actions/runners/%d", a.Runner.ID), nil, &body)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	require.Equal(t, `Bad request - Runner "surplus" is still running a job"`, body.Message)
	done := e.waitJob(j.ID, fakegithub.StatusCompleted)
	require.Equal(t, fakegithub.ConclusionSuccess, done.Conclusion)
}

func TestAPIBudgetFault(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	require.NoError(t, e.fake.SetFaults(fakegithub.Faults{APIBudgetSeconds: 90, APIBudgetRemaining: 2}))
	var remaining []string
	for range 2 {
		resp := e.call("GET", "/orgs/acme/actions/runners", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		remaining = append(remaining, resp.Header.Get("X-RateLimit-Remaining"))
	}
	require.Equal(t, []string{"1", "0"}, remaining)
	resp := e.call("GET", "/orgs/acme/actions/runners", nil, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "the low budget is spent")
	require.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.InDelta(t, 90, retry, 2, "until the window ends")
	reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Add(90*time.Second).Unix(), reset, 2)
	require.EqualValues(t, 1, e.fake.Stats().Faults["api_budget"])
}

// TestSeveralInstallations: the App is installed on two organizations; the
// installation routes take the App's JWT, each installation has its own
// tokens, and a token is good for its installation's organization only.
func TestSeveralInstallations(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	e := setup(t, func(o *fakegithub.Options) {
		o.AppID = 4242
		o.AppPublicKey = privPEM
		o.Installations = map[string]int64{"org-a": 101, "Org-B": 202}
	})
	now := time.Now()
	jwtTok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": 4242, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(9 * time.Minute).Unix()}).SignedString(key)
	require.NoError(t, err)
	bearer := "Bearer " + jwtTok

	var inst struct {
		ID      int64 `json:"id"`
		Account struct {
			Login string `json:"login"`
		} `json:"account"`
	}
	require.Equal(t, http.StatusOK, e.callAuth("GET", "/orgs/org-a/installation", bearer, nil, &inst).StatusCode)
	require.Equal(t, int64(101), inst.ID)
	require.Equal(t, http.StatusOK, e.callAuth("GET", "/repos/org-b/app/installation", bearer, nil, &inst).StatusCode)
	require.Equal(t, int64(202), inst.ID, "a repository's installation is its owner's")
	require.Equal(t, http.StatusNotFound, e.callAuth("GET", "/orgs/org-c/installation", bearer, nil, nil).StatusCode, "not installed")
	require.Equal(t, http.StatusUnauthorized, e.callAuth("GET", "/orgs/org-a/installation", "token "+testToken, nil, nil).StatusCode,
		"the installation routes take the App's JWT")
	require.Equal(t, http.StatusNotFound, e.callAuth("POST", "/app/installations/77/access_tokens", bearer, nil, nil).StatusCode)

	tokens := map[string]string{}
	for org, id := range map[string]int64{"org-a": 101, "org-b": 202} {
		var tok struct {
			Token string `json:"token"`
		}
		require.Equal(t, http.StatusCreated, e.callAuth("POST", fmt.Sprintf("/app/installations/%d/access_tokens", id), bearer, nil, &tok).StatusCode)
		tokens[org] = "token " + tok.Token
	}
	require.Equal(t, http.StatusOK, e.callAuth("GET", "/orgs/org-a/actions/runners", tokens["org-a"], nil, nil).StatusCode)
	require.Equal(t, http.StatusOK, e.callAuth("GET", "/orgs/org-b/actions/runners", tokens["org-b"], nil, nil).StatusCode)
	require.NotEqual(t, http.StatusForbidden, e.callAuth("GET", "/repos/ORG-B/app/actions/jobs/1", tokens["org-b"], nil, nil).StatusCode, "scoped by owner, any case")
	require.Equal(t, http.StatusForbidden, e.callAuth("GET", "/orgs/org-b/actions/runners", tokens["org-a"], nil, nil).StatusCode,
		"org-a's token on org-b")
	require.Equal(t, http.StatusForbidden, e.callAuth("POST", "/repos/org-a/app/actions/runners/generate-jitconfig", tokens["org-b"],
		map[string]any{"name": "r", "runner_group_id": 1, "labels": []string{"x"}}, nil).StatusCode, "org-b's token on org-a's repository")
	require.Equal(t, http.StatusOK, e.callAuth("GET", "/orgs/org-a/actions/runners", "token "+testToken, nil, nil).StatusCode,
		"a static token is good everywhere")

	st := e.fake.Stats()
	require.Equal(t, map[string]map[string]int64{"101": {"org-a": 1}, "202": {"org-b": 2}}, st.InstallationCalls)
	require.Equal(t, int64(2), st.ForeignTokenCalls)
}
