package github

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
)

const (
	testAppID          = 4242
	testInstallationID = 99
	installationToken  = "ghs_INSTALLATIONTOKEN0123456789"
)

// appServer is a fake GitHub that issues installation tokens to a JWT signed
// by key, and counts them.
type appServer struct {
	t          *testing.T
	key        *rsa.PrivateKey
	tokenCalls atomic.Int32
	// tokenTTL of the tokens issued.
	tokenTTL time.Duration
	mux      *http.ServeMux
}

func newAppServer(t *testing.T) *appServer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	s := &appServer{t: t, key: key, tokenTTL: time.Hour, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /app/installations/{id}/access_tokens", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != fmt.Sprint(testInstallationID) {
			writeJSON(w, 404, map[string]string{"message": "Not Found"})
			return
		}
		if err := s.verifyJWT(r); err != nil {
			writeJSON(w, 401, map[string]string{"message": err.Error()})
			return
		}
		s.tokenCalls.Add(1)
		writeJSON(w, 201, map[string]any{
			"token":      installationToken,
			"expires_at": time.Now().Add(s.tokenTTL).UTC().Format(time.RFC3339),
		})
	})
	return s
}

func (s *appServer) pem() config.Secret {
	der := x509.MarshalPKCS1PrivateKey(s.key)
	return config.Secret(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}))
}

// verifyJWT checks an App's JWT: RS256, signed by the App's key, issued by
// the App id, and current.
func (s *appServer) verifyJWT(r *http.Request) error {
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return fmt.Errorf("no bearer JWT")
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("malformed JWT")
	}
	var header struct{ Alg string }
	if err := decodeSegment(parts[0], &header); err != nil || header.Alg != "RS256" {
		return fmt.Errorf("JWT alg %q, want RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("JWT signature: %w", err)
	}
	var claims struct {
		Iss string
		Iat int64
		Exp int64
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return err
	}
	now := time.Now().Unix()
	if claims.Iss != fmt.Sprint(testAppID) || claims.Iat > now || claims.Exp <= now || claims.Exp-claims.Iat > 600 {
		return fmt.Errorf("JWT claims %+v", claims)
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func appOptions(s *appServer) func(*Options) {
	return func(o *Options) {
		o.Token = ""
		o.AppID = testAppID
		o.InstallationID = testInstallationID
		o.PrivateKey = s.pem()
	}
}

func TestAppInstallationTokenIsUsedAndCached(t *testing.T) {
	t.Parallel()
	s := newAppServer(t)
	var apiCalls atomic.Int32
	s.mux.HandleFunc("GET /orgs/acme/actions/runners/{id}", func(w http.ResponseWriter, r *http.Request) {
		apiCalls.Add(1)
		if r.Header.Get("Authorization") != "token "+installationToken {
			writeJSON(w, 401, map[string]string{"message": "Bad credentials"})
			return
		}
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	})
	b := setup(t, s.mux, appOptions(s))
	for range 3 {
		_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 1)
		require.NoError(t, err)
	}
	require.Equal(t, int32(3), apiCalls.Load())
	require.Equal(t, int32(1), s.tokenCalls.Load(), "the installation token is cached")
	require.Equal(t, 1.0, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "app",
		"route", routeAccessTokens, "method", "POST", "code", "201"))
	require.NotContains(t, b.logs.String(), installationToken)
}

func TestAppInstallationTokenIsRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	s := newAppServer(t)
	s.tokenTTL = 30 * time.Second // within ghinstallation's refresh margin
	s.mux.HandleFunc("GET /orgs/acme/actions/runners/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	})
	b := setup(t, s.mux, appOptions(s))
	for range 2 {
		_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 1)
		require.NoError(t, err)
	}
	require.Equal(t, int32(2), s.tokenCalls.Load())
}

func TestAppTokenFailureIsNeverNotFound(t *testing.T) {
	t.Parallel()
	s := newAppServer(t)
	b := setup(t, s.mux, appOptions(s), func(o *Options) { o.InstallationID = 12345 })
	err := b.client.DeleteRunner(context.Background(), OrgScope("acme"), 1)
	require.ErrorIs(t, err, ErrPermanent, "a wrong installation id must not read as 'runner already gone'")
	require.NotErrorIs(t, err, ErrNotFound)
	require.Contains(t, err.Error(), "delete runner 1 of acme: POST "+routeAccessTokens+": 404 Not Found")
}

func TestAppRequiresAWellFormedKey(t *testing.T) {
	t.Parallel()
	_, err := New(Options{AppID: 1, InstallationID: 2, PrivateKey: "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "not a key")
	_, err = New(Options{AppID: 1})
	require.ErrorContains(t, err, "needs a private key")
}

func TestHookDeliveries(t *testing.T) {
	t.Parallel()
	s := newAppServer(t)
	var redelivered atomic.Int64
	delivery := func(id int64, code int) map[string]any {
		return map[string]any{
			"id": id, "guid": fmt.Sprintf("guid-%d", id), "delivered_at": "2026-01-02T03:04:05Z", "redelivery": false,
			"duration": 0.1, "status": "OK", "status_code": code, "event": "workflow_job", "action": "queued",
			"installation_id": testInstallationID, "repository_id": 7,
		}
	}
	s.mux.HandleFunc("GET /app/hook/deliveries", func(w http.ResponseWriter, r *http.Request) {
		if err := s.verifyJWT(r); err != nil {
			writeJSON(w, 401, map[string]string{"message": err.Error()})
			return
		}
		require.Equal(t, "2", r.URL.Query().Get("per_page"))
		if r.URL.Query().Get("cursor") == "" {
			w.Header().Set("Link", fmt.Sprintf(`<http://%s/app/hook/deliveries?per_page=2&cursor=v1_abc>; rel="next"`, r.Host))
			writeJSON(w, 200, []any{delivery(3, 200), delivery(2, 503)})
			return
		}
		require.Equal(t, "v1_abc", r.URL.Query().Get("cursor"))
		writeJSON(w, 200, []any{delivery(1, 200)})
	})
	s.mux.HandleFunc("POST /app/hook/deliveries/{id}/attempts", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, s.verifyJWT(r))
		var id int64
		fmt.Sscan(r.PathValue("id"), &id)
		redelivered.Store(id)
		writeJSON(w, 202, map[string]any{})
	})
	b := setup(t, s.mux, appOptions(s))
	ctx := context.Background()

	page, next, err := b.client.ListHookDeliveries(ctx, "", 2)
	require.NoError(t, err)
	require.Equal(t, "v1_abc", next)
	require.Len(t, page, 2)
	require.Equal(t, HookDelivery{
		ID: 2, GUID: "guid-2", DeliveredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Status: "OK", StatusCode: 503,
		Event: "workflow_job", Action: "queued", InstallationID: testInstallationID, RepositoryID: 7,
	}, page[1])
	require.True(t, page[1].Failed())
	require.False(t, page[0].Failed())

	page, next, err = b.client.ListHookDeliveries(ctx, next, 2)
	require.NoError(t, err)
	require.Empty(t, next)
	require.Len(t, page, 1)

	require.NoError(t, b.client.Redeliver(ctx, 2))
	require.Equal(t, int64(2), redelivered.Load())
	require.Zero(t, s.tokenCalls.Load(), "App routes use the JWT, not an installation token")
}

func TestOrgHookDeliveriesWithAToken(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/acme/hooks/5/deliveries", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []any{map[string]any{"id": 11, "guid": "g", "status_code": 0, "event": "workflow_job"}})
	})
	mux.HandleFunc("POST /orgs/acme/hooks/5/deliveries/11/attempts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 202, map[string]any{})
	})
	b := setup(t, mux)
	ctx := context.Background()
	page, next, err := b.client.ListOrgHookDeliveries(ctx, "acme", 5, "", 0)
	require.NoError(t, err)
	require.Empty(t, next)
	require.Equal(t, []HookDelivery{{ID: 11, GUID: "g", Event: "workflow_job"}}, page)
	require.NoError(t, b.client.RedeliverOrgHook(ctx, "acme", 5, 11))

	_, _, err = b.client.ListHookDeliveries(ctx, "", 0)
	require.ErrorIs(t, err, ErrPermanent, "App deliveries need an App")
}

// TestTokenRefreshIgnoresTheReserve: a low-priority call that needs a new
// installation token gets it even when the App's own window is at the
// reserve, since every other call waits on that token.
func TestTokenRefreshIgnoresTheReserve(t *testing.T) {
	t.Parallel()
	s := newAppServer(t)
	s.tokenTTL = 30 * time.Second // a refresh for every call
	var (
		b    *bundle
		left atomic.Int32
	)
	left.Store(5)
	tokens := s.mux
	mux := http.NewServeMux()
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Remaining", fmt.Sprint(left.Add(-1)))
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(b.clock.Now().Add(time.Hour).Unix()))
		tokens.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /orgs/acme/actions/runners/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	})
	b = setup(t, mux, appOptions(s), func(o *Options) { o.Reserve = 10 })
	ctx, cancel := context.WithTimeout(WithPriority(context.Background(), PriorityLow), 30*time.Second)
	defer cancel()
	for range 3 {
		_, err := b.client.GetRunner(ctx, OrgScope("acme"), 1)
		require.NoError(t, err)
	}
	require.Equal(t, int32(3), s.tokenCalls.Load())
	require.Empty(t, b.clock.Waits())
}
