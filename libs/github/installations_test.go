package github

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// orgsServer is a fake GitHub with the App installed on several
// organizations: each installation's tokens are good for its organization
// only, as at GitHub.
type orgsServer struct {
	*appServer
	mu sync.Mutex
	// installs: organization → installation id.
	installs map[string]int64
	// tokens: token → installation id.
	tokens  map[string]int64
	lookups map[string]int
	// remaining is the X-RateLimit-Remaining of each installation's calls.
	remaining map[int64]int
	reset     time.Time
	// calls by organization and the installation whose token was used.
	calls map[string]int
}

func newOrgsServer(t *testing.T, installs map[string]int64) *orgsServer {
	s := &orgsServer{
		appServer: newAppServer(t), installs: installs, tokens: map[string]int64{},
		lookups: map[string]int{}, remaining: map[int64]int{}, calls: map[string]int{},
		reset: time.Now().Add(time.Hour),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /orgs/{org}/installation", s.lookup)
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/installation", s.lookup)
	s.mux.HandleFunc("POST /app/installations/{id}/access_tokens", func(w http.ResponseWriter, r *http.Request) {
		if err := s.verifyJWT(r); err != nil {
			writeJSON(w, 401, map[string]string{"message": err.Error()})
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, id := range s.installs {
			if r.PathValue("id") == fmt.Sprint(id) {
				s.tokenCalls.Add(1)
				token := fmt.Sprintf("ghs_INSTALL%dTOKEN%d", id, s.tokenCalls.Load())
				s.tokens[token] = id
				writeJSON(w, 201, map[string]any{"token": token, "expires_at": time.Now().Add(s.tokenTTL).UTC().Format(time.RFC3339)})
				return
			}
		}
		writeJSON(w, 404, map[string]string{"message": "Not Found"})
	})
	s.mux.HandleFunc("GET /orgs/{org}/actions/runners/{id}", s.installationCall(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	}))
	s.mux.HandleFunc("DELETE /orgs/{org}/actions/runners/{id}", s.installationCall(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(204)
	}))
	s.mux.HandleFunc("GET /repos/{owner}/{repo}/actions/jobs/{id}", s.installationCall(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": 5, "run_id": 6, "status": "queued", "labels": []string{"x"}})
	}))
	return s
}

func (s *orgsServer) lookup(w http.ResponseWriter, r *http.Request) {
	if err := s.verifyJWT(r); err != nil {
		writeJSON(w, 401, map[string]string{"message": err.Error()})
		return
	}
	login := r.PathValue("org") + r.PathValue("owner")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups[login]++
	id, ok := s.installs[login]
	if !ok {
		writeJSON(w, 404, map[string]string{"message": "Not Found"})
		return
	}
	writeJSON(w, 200, map[string]any{"id": id, "app_id": testAppID})
}

// installationCall checks that the call carries a token of the
// organization's installation, counts it and answers with the
// installation's rate-limit headers.
func (s *orgsServer) installationCall(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		login := r.PathValue("org") + r.PathValue("owner")
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "token ")
		s.mu.Lock()
		id, known := s.tokens[token]
		valid := known && s.installs[login] == id
		if known {
			if _, ok := s.remaining[id]; !ok {
				s.remaining[id] = 5000
			}
			s.remaining[id]--
			w.Header().Set("X-RateLimit-Limit", "5000")
			w.Header().Set("X-RateLimit-Remaining", fmt.Sprint(s.remaining[id]))
			w.Header().Set("X-RateLimit-Reset", fmt.Sprint(s.reset.Unix()))
		}
		if valid {
			s.calls[fmt.Sprintf("%s/%d", login, id)]++
		}
		s.mu.Unlock()
		switch {
		case !known:
			writeJSON(w, 401, map[string]string{"message": "Bad credentials"})
		case !valid:
			writeJSON(w, 403, map[string]string{"message": "Resource not accessible by integration"})
		default:
			h(w, r)
		}
	}
}

func (s *orgsServer) count(key string, m map[string]int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[key]
}

func appOptionsNoInstallation(s *orgsServer) func(*Options) {
	return func(o *Options) {
		o.Token = ""
		o.AppID = testAppID
		o.PrivateKey = s.pem()
	}
}

func TestAppUsesEachOrganizationsInstallation(t *testing.T) {
	t.Parallel()
	s := newOrgsServer(t, map[string]int64{"acme": 11, "beta": 22})
	b := setup(t, s.mux, appOptionsNoInstallation(s))
	ctx := context.Background()
	for range 2 {
		for _, org := range []string{"acme", "beta"} {
			_, err := b.client.GetRunner(ctx, OrgScope(org), 1)
			require.NoError(t, err, org)
		}
	}
	_, err := b.client.GetJob(ctx, "beta", "app", 5)
	require.NoError(t, err, "a repository of a known organization uses its installation")

	require.Equal(t, 2, s.count("acme/11", s.calls))
	require.Equal(t, 3, s.count("beta/22", s.calls))
	require.Equal(t, 1, s.count("acme", s.lookups), "the installation is looked up once")
	require.Equal(t, 1, s.count("beta", s.lookups))
	require.Equal(t, int32(2), s.tokenCalls.Load(), "one token per installation")

	require.Equal(t, 2.0, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "11",
		"route", "/orgs/{org}/actions/runners/{runner_id}", "method", "GET", "code", "200"))
	require.Equal(t, 2.0, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "app",
		"route", "/orgs/{org}/installation", "method", "GET", "code", "200"))
	require.Equal(t, 4997.0, metric(t, b.reg, "runner_manager_github_rate_limit_remaining", "installation", "22"))

	budgets := b.client.Budgets()
	require.Len(t, budgets, 3)
	require.Equal(t, "11", budgets[0].Installation)
	require.Equal(t, "22", budgets[1].Installation)
	require.Equal(t, "app", budgets[2].Installation)
	require.Equal(t, 4998, budgets[0].Remaining)
	require.Equal(t, 4997, budgets[1].Remaining)
	require.Equal(t, 5000, budgets[0].Limit)
	require.Equal(t, s.reset.Unix(), budgets[0].Reset.Unix())
}

func TestAppLooksUpARepositorysInstallation(t *testing.T) {
	t.Parallel()
	s := newOrgsServer(t, map[string]int64{"someone": 31})
	b := setup(t, s.mux, appOptionsNoInstallation(s))
	_, err := b.client.GetJob(context.Background(), "someone", "tool", 5)
	require.NoError(t, err)
	require.Equal(t, 1, s.count("someone", s.lookups))
	require.Equal(t, 1.0, metric(t, b.reg, "runner_manager_github_api_calls_total", "installation", "app",
		"route", "/repos/{owner}/{repo}/installation", "method", "GET", "code", "200"))
}

func TestAppNotInstalledIsNeverNotFound(t *testing.T) {
	t.Parallel()
	s := newOrgsServer(t, map[string]int64{"acme": 11})
	b := setup(t, s.mux, appOptionsNoInstallation(s))
	err := b.client.DeleteRunner(context.Background(), OrgScope("other"), 1)
	require.ErrorIs(t, err, ErrPermanent)
	require.NotErrorIs(t, err, ErrNotFound, "an organization without the App must not read as 'runner already gone'")
	require.Contains(t, err.Error(), "GET /orgs/{org}/installation: 404 Not Found: the GitHub App is not installed")
}

// TestAppInstallationIsLookedUpAgainWhenGone: the App was uninstalled from
// an organization and installed again, with a new id: GitHub refuses the
// old installation a token (404); the client looks the organization up
// again and goes on with the new installation.
func TestAppInstallationIsLookedUpAgainWhenGone(t *testing.T) {
	t.Parallel()
	s := newOrgsServer(t, map[string]int64{"acme": 11})
	s.tokenTTL = 30 * time.Second // within ghinstallation's refresh margin: a token per call
	b := setup(t, s.mux, appOptionsNoInstallation(s))
	ctx := context.Background()
	_, err := b.client.GetRunner(ctx, OrgScope("acme"), 1)
	require.NoError(t, err)

	s.mu.Lock()
	s.installs["acme"] = 12
	s.mu.Unlock()
	require.NoError(t, b.client.DeleteRunner(ctx, OrgScope("acme"), 1))
	require.Equal(t, 2, s.count("acme", s.lookups))
	require.Equal(t, 1, s.count("acme/12", s.calls))
}

// TestAppReserveIsPerInstallation: one organization's installation at its
// reserve holds its own low-priority calls, not another's.
func TestAppReserveIsPerInstallation(t *testing.T) {
	t.Parallel()
	s := newOrgsServer(t, map[string]int64{"acme": 11, "beta": 22})
	s.remaining[11] = 6 // the next call leaves 5: the reserve
	b := setup(t, s.mux, appOptionsNoInstallation(s), func(o *Options) { o.Reserve = 5 })
	ctx := context.Background()
	_, err := b.client.GetRunner(ctx, OrgScope("acme"), 1)
	require.NoError(t, err)

	short, cancel := context.WithTimeout(WithPriority(ctx, PriorityLow), 10*time.Second)
	defer cancel()
	_, err = b.client.GetRunner(short, OrgScope("acme"), 1)
	require.ErrorIs(t, err, ErrRateLimited, "acme's installation keeps its reserve")
	_, err = b.client.GetRunner(short, OrgScope("beta"), 1)
	require.NoError(t, err, "beta's installation has its own budget")
	require.Equal(t, 1.0, metric(t, b.reg, "runner_manager_github_rate_limit_refusals_total", "installation", "11"))
}

func TestTokenBudgetIsLabelledToken(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/acme/actions/runners/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "4321")
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(time.Now().Add(time.Hour).Unix()))
		writeJSON(w, 200, runnerJSON(1, "r", "online", false))
	})
	b := setup(t, mux)
	_, err := b.client.GetRunner(context.Background(), OrgScope("acme"), 1)
	require.NoError(t, err)
	budgets := b.client.Budgets()
	require.Len(t, budgets, 1)
	require.Equal(t, "token", budgets[0].Installation)
	require.Equal(t, 4321, budgets[0].Remaining)
	require.Equal(t, 5000, budgets[0].Limit)
}
