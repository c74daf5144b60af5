// Package clienttest runs the GitHub client of libs/github against the fake
// GitHub of libs/github/fakegithub: the client's requests must be what the fake (and
// so GitHub's OpenAPI description) expects, and the fake's answers what the
// client understands.
package clienttest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

const token = "ghp_CLIENTTESTTOKEN000000000"

type bundle struct {
	fake   *fakegithub.Server
	url    string
	client *github.Client
}

// setup starts a fake and a client of it. mod adjusts the fake's options,
// modClient the client's.
func setup(t *testing.T, mod func(*fakegithub.Options), modClient func(*github.Options)) *bundle {
	t.Helper()
	fo := fakegithub.Options{Tokens: []string{token}, Seed: 1}
	if mod != nil {
		mod(&fo)
	}
	fake, err := fakegithub.New(fo)
	require.NoError(t, err)
	t.Cleanup(fake.Close)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	co := github.Options{
		BaseURL:        srv.URL,
		Token:          token,
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  10 * time.Millisecond,
		MaxAttempts:    8,
		Timeout:        10 * time.Second,
	}
	if modClient != nil {
		modClient(&co)
	}
	c, err := github.New(co)
	require.NoError(t, err)
	return &bundle{fake: fake, url: srv.URL, client: c}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRunnerLifecycleAtOrganizationLevel(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	ctx := ctx(t)
	scope := github.OrgScope("acme")

	def, err := b.client.GetRunnerGroupByName(ctx, "acme", "Default")
	require.NoError(t, err)
	require.True(t, def.Default)

	jit, err := b.client.GenerateJITConfig(ctx, scope, github.JITRequest{Name: "rm-small-abc", RunnerGroupID: def.ID, Labels: []string{"self-hosted", "small"}})
	require.NoError(t, err)
	require.NotZero(t, jit.RunnerID)
	require.Equal(t, "rm-small-abc", jit.Name)
	require.True(t, jit.Encoded.IsSet())

	_, err = b.client.GenerateJITConfig(ctx, scope, github.JITRequest{Name: "rm-small-abc", RunnerGroupID: def.ID, Labels: []string{"self-hosted"}})
	require.ErrorIs(t, err, github.ErrConflict, "a taken name is a conflict")

	_, err = b.client.GenerateJITConfig(ctx, scope, github.JITRequest{Name: "rm-small-x", RunnerGroupID: 9999, Labels: []string{"self-hosted"}})
	require.ErrorIs(t, err, github.ErrNotFound, "an unknown runner group")

	r, err := b.client.GetRunner(ctx, scope, jit.RunnerID)
	require.NoError(t, err)
	require.Equal(t, "rm-small-abc", r.Name)
	require.False(t, r.Online(), "registered, never connected")
	require.Equal(t, def.ID, r.RunnerGroupID)
	require.Subset(t, r.Labels, []string{"self-hosted", "small"})

	byName, err := b.client.GetRunnerByName(ctx, scope, "rm-small-abc")
	require.NoError(t, err)
	require.Equal(t, jit.RunnerID, byName.ID)

	require.NoError(t, b.client.DeleteRunner(ctx, scope, jit.RunnerID))
	require.ErrorIs(t, b.client.DeleteRunner(ctx, scope, jit.RunnerID), github.ErrNotFound)
	_, err = b.client.GetRunnerByName(ctx, scope, "rm-small-abc")
	require.ErrorIs(t, err, github.ErrNotFound)
}

func TestListingReadsEveryPage(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	ctx := ctx(t)
	scope := github.RepoScope("acme", "app")
	const n = 230
	for i := range n {
		_, err := b.client.GenerateJITConfig(ctx, scope, github.JITRequest{Name: fmt.Sprintf("rm-%03d", i), RunnerGroupID: 1, Labels: []string{"self-hosted"}})
		require.NoError(t, err)
	}
	_, err := b.client.GenerateJITConfig(ctx, scope, github.JITRequest{Name: "other-1", RunnerGroupID: 1, Labels: []string{"self-hosted"}})
	require.NoError(t, err)

	all, err := b.client.ListRunners(ctx, scope)
	require.NoError(t, err)
	require.Len(t, all, n+1)
	ours, err := b.client.FindRunnersByPrefix(ctx, scope, "rm-")
	require.NoError(t, err)
	require.Len(t, ours, n)
	require.Equal(t, int64(6), b.fake.Stats().APICalls["GET /repos/{owner}/{repo}/actions/runners"],
		"per_page=100: three pages for each of the two listings")
}

func TestRunnerGroupsAndJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	ctx := ctx(t)

	g, err := b.client.CreateRunnerGroup(ctx, "acme", github.RunnerGroupSettings{Name: "linux-small", AllowsPublicRepositories: true})
	require.NoError(t, err)
	require.Equal(t, github.VisibilityAll, g.Visibility)
	_, err = b.client.CreateRunnerGroup(ctx, "acme", github.RunnerGroupSettings{Name: "linux-small"})
	require.Error(t, err, "a group name is unique")
	require.NotErrorIs(t, err, github.ErrRetryable)

	u, err := b.client.UpdateRunnerGroup(ctx, "acme", g.ID, github.RunnerGroupSettings{
		Name: "linux-small", Visibility: github.VisibilitySelected, RestrictedToWorkflows: true,
		SelectedWorkflows: []string{"acme/app/.github/workflows/ci.yml@refs/heads/main"},
	})
	require.NoError(t, err)
	require.Equal(t, github.VisibilitySelected, u.Visibility)
	require.True(t, u.RestrictedToWorkflows)
	require.Equal(t, []string{"acme/app/.github/workflows/ci.yml@refs/heads/main"}, u.SelectedWorkflows)

	// GET /repos/{owner}/{repo} is not in the reference description, so the
	// fake does not serve it: the id comes from the fake itself.
	repoID := b.fake.Repository("acme", "app")
	require.NoError(t, b.client.SetRunnerGroupRepositories(ctx, "acme", g.ID, []int64{repoID}))

	got, err := b.client.GetRunnerGroupByName(ctx, "acme", "linux-small")
	require.NoError(t, err)
	require.Equal(t, g.ID, got.ID)

	queued, err := b.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "small"}})
	require.NoError(t, err)
	job, err := b.client.GetJob(ctx, "acme", "app", queued.ID)
	require.NoError(t, err)
	require.Equal(t, github.JobQueued, job.Status)
	require.Equal(t, queued.RunID, job.RunID)
	require.Equal(t, []string{"self-hosted", "small"}, job.Labels)

	_, err = b.fake.CancelJob(queued.ID)
	require.NoError(t, err)
	job, err = b.client.GetJob(ctx, "acme", "app", queued.ID)
	require.NoError(t, err)
	require.True(t, job.Done())
	require.Equal(t, "cancelled", job.Conclusion)

	_, err = b.client.GetJob(ctx, "acme", "app", 424242)
	require.ErrorIs(t, err, github.ErrNotFound)
}

func TestAppAuthenticationAndDeliveries(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	b := setup(t, func(o *fakegithub.Options) {
		o.Tokens = nil
		o.AppID = 77
		o.AppPublicKey = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
		o.InstallationID = 5
	}, func(o *github.Options) {
		o.Token = ""
		o.AppID = 77
		o.InstallationID = 5
		o.PrivateKey = config.Secret(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	})
	ctx := ctx(t)

	for i := range 3 {
		_, err := b.client.GenerateJITConfig(ctx, github.OrgScope("acme"), github.JITRequest{Name: fmt.Sprintf("rm-%d", i), RunnerGroupID: 1, Labels: []string{"self-hosted"}})
		require.NoError(t, err)
	}
	runners, err := b.client.ListRunners(ctx, github.OrgScope("acme"))
	require.NoError(t, err)
	require.Len(t, runners, 3)
	require.Equal(t, int64(1), b.fake.Stats().APICalls["POST /app/installations/{installation_id}/access_tokens"],
		"one installation token for every call")

	// No webhook URL: every webhook is recorded as a failed delivery.
	for range 3 {
		_, err := b.fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return len(b.fake.Deliveries()) == 3 }, 10*time.Second, 10*time.Millisecond)

	var all []github.HookDelivery
	cursor := ""
	for {
		page, next, err := b.client.ListHookDeliveries(ctx, cursor, 2)
		require.NoError(t, err)
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Len(t, all, 3)
	for _, d := range all {
		require.True(t, d.Failed())
		require.Equal(t, "workflow_job", d.Event)
		require.Equal(t, "queued", d.Action)
	}
	require.NoError(t, b.client.Redeliver(ctx, all[0].ID))
	require.Eventually(t, func() bool { return len(b.fake.Deliveries()) == 4 }, 10*time.Second, 10*time.Millisecond)
	redelivered := b.fake.Deliveries()[3]
	require.True(t, redelivered.Redelivery)
	require.Equal(t, all[0].GUID, redelivered.GUID)
}

func TestGHESBaseURL(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	c, err := github.New(github.Options{BaseURL: b.url + "/api/v3", Token: token})
	require.NoError(t, err)
	_, err = c.ListRunners(ctx(t), github.OrgScope("acme"))
	require.NoError(t, err)
}

// TestFaultsAreAbsorbed: with a third of the calls failing with 5xx, every
// call of a series still succeeds thanks to the retries.
func TestServerErrorsAreAbsorbed(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	require.NoError(t, b.fake.SetFaults(fakegithub.Faults{API5xx: 0.3}))
	ctx := ctx(t)
	for i := range 20 {
		_, err := b.client.GenerateJITConfig(ctx, github.OrgScope("acme"), github.JITRequest{Name: fmt.Sprintf("rm-%d", i), RunnerGroupID: 1, Labels: []string{"self-hosted"}})
		if err != nil {
			// A retried POST whose first attempt registered the runner.
			require.ErrorIs(t, err, github.ErrConflict)
		}
		_, err = b.client.ListRunners(ctx, github.OrgScope("acme"))
		require.NoError(t, err)
	}
	require.NotZero(t, b.fake.Stats().Faults["api_5xx"])
}

// TestRateLimitIsWaitedOut: the fake answers 403/429 with Retry-After; the
// client waits and retries instead of failing, and fails with ErrRateLimited
// only when its context cannot wait that long.
func TestRateLimitIsWaitedOut(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	ctx := ctx(t)
	require.NoError(t, b.fake.SetFaults(fakegithub.Faults{APIRateLimit: 1, APIRateLimitSeconds: 1}))

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := b.client.ListRunners(short, github.OrgScope("acme"))
	require.ErrorIs(t, err, github.ErrRateLimited)
	require.True(t, strings.Contains(err.Error(), "list runners of acme"), err.Error())

	done := make(chan error, 1)
	go func() {
		_, err := b.client.ListRunners(ctx, github.OrgScope("acme"))
		done <- err
	}()
	// Every call is rate limited while the fault is on; the waiting call
	// goes through once it is off.
	require.Eventually(t, func() bool { return b.fake.Stats().Faults["api_rate_limit"] >= 2 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, b.fake.SetFaults(fakegithub.Faults{}))
	require.NoError(t, <-done)
}

// The runner downloads API, at both levels: the linux packages the
// provisioner installs, each with its checksum.
func TestRunnerApplications(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	for _, scope := range []github.Scope{github.OrgScope("acme"), github.RepoScope("acme", "app")} {
		apps, err := b.client.ListRunnerApplications(ctx(t), scope)
		require.NoError(t, err, scope.String())
		found := map[string]github.RunnerApplication{}
		for _, a := range apps {
			found[a.OS+"-"+a.Architecture] = a
		}
		for _, arch := range []string{"x64", "arm64"} {
			a, ok := found["linux-"+arch]
			require.True(t, ok, "%s: no linux-%s package in %v", scope, arch, apps)
			file := "actions-runner-linux-" + arch + "-" + fakegithub.RunnerVersion + ".tar.gz"
			require.Equal(t, file, a.Filename)
			require.Equal(t, "https://github.com/actions/runner/releases/download/v"+fakegithub.RunnerVersion+"/"+file, a.DownloadURL)
			require.Equal(t, fakegithub.RunnerDownloadChecksum(file), a.SHA256Checksum)
			require.Len(t, a.SHA256Checksum, 64)
		}
	}
}
