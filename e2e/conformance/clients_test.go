package conformance

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v62/github"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
)

// TestRealClientsWorkAgainstTheFake drives the fake with the clients the
// services use, go-github and ghinstallation (App JWT, then installation
// tokens), through the validating transport, so the fake is proven usable by
// them and conforming at the same time.
func TestRealClientsWorkAgainstTheFake(t *testing.T) {
	const appID, installationID = 31337, 99
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	hk := &hooks{}
	hookSrv := httptest.NewServer(hk)
	defer hookSrv.Close()
	fake, err := fakegithub.New(fakegithub.Options{
		WebhookURL: hookSrv.URL, WebhookSecret: "s", AppID: appID, InstallationID: installationID,
		AppPublicKey: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	})
	require.NoError(t, err)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.Close()
	chk := &checker{t: t, spec: loadSpec(t, srv.URL), base: http.DefaultTransport, seen: map[string]bool{}}

	atr := ghinstallation.NewAppsTransportFromPrivateKey(chk, appID, key)
	atr.BaseURL = srv.URL
	itr := ghinstallation.NewFromAppsTransport(atr, installationID)
	itr.BaseURL = srv.URL
	base, err := url.Parse(srv.URL + "/")
	require.NoError(t, err)
	appClient := github.NewClient(&http.Client{Transport: atr})
	appClient.BaseURL = base
	gh := github.NewClient(&http.Client{Transport: itr})
	gh.BaseURL = base
	ctx := context.Background()

	app, _, err := appClient.Apps.Get(ctx, "")
	require.NoError(t, err)
	require.EqualValues(t, appID, app.GetID())

	repoID := fake.Repository("acme", "app")
	group, _, err := gh.Actions.CreateOrganizationRunnerGroup(ctx, "acme", github.CreateRunnerGroupRequest{
		Name: github.String("linux-small"), Visibility: github.String("selected"), SelectedRepositoryIDs: []int64{repoID},
	})
	require.NoError(t, err)
	repos, _, err := gh.Actions.ListRepositoryAccessRunnerGroup(ctx, "acme", group.GetID(), nil)
	require.NoError(t, err)
	require.Equal(t, 1, repos.GetTotalCount())
	require.EqualValues(t, repoID, repos.Repositories[0].GetID())

	var jit *github.JITRunnerConfig
	for _, name := range []string{"rm-a", "rm-b", "rm-c", "rm-d", "rm-e"} {
		jit, _, err = gh.Actions.GenerateOrgJITConfig(ctx, "acme", &github.GenerateJITConfigRequest{
			Name: name, RunnerGroupID: group.GetID(), Labels: []string{"self-hosted", "linux", "small"},
		})
		require.NoError(t, err)
		require.Equal(t, "offline", jit.GetRunner().GetStatus())
	}
	_, _, err = gh.Actions.GenerateOrgJITConfig(ctx, "acme", &github.GenerateJITConfigRequest{Name: "rm-a", RunnerGroupID: group.GetID(), Labels: []string{"x"}})
	var ghErr *github.ErrorResponse
	require.ErrorAs(t, err, &ghErr)
	require.Equal(t, http.StatusConflict, ghErr.Response.StatusCode)

	var names []string
	opts := &github.ListRunnersOptions{ListOptions: github.ListOptions{PerPage: 2}}
	for {
		page, resp, err := gh.Actions.ListOrganizationRunners(ctx, "acme", opts)
		require.NoError(t, err)
		require.Equal(t, 5, page.TotalCount)
		for _, r := range page.Runners {
			names = append(names, r.GetName())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	require.Equal(t, []string{"rm-a", "rm-b", "rm-c", "rm-d", "rm-e"}, names)
	byName, _, err := gh.Actions.ListOrganizationRunners(ctx, "acme", &github.ListRunnersOptions{Name: github.String("rm-c")})
	require.NoError(t, err)
	require.Len(t, byName.Runners, 1)
	inGroup, _, err := gh.Actions.ListRunnerGroupRunners(ctx, "acme", group.GetID(), nil)
	require.NoError(t, err)
	require.Equal(t, 5, inGroup.TotalCount)

	// the last runner takes a job; go-github reads it back
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- fakerunner.Run(rctx, fakerunner.Config{JITConfig: jit.GetEncodedJITConfig()}) }()
	require.Eventually(t, func() bool {
		r, _, err := gh.Actions.GetOrganizationRunner(ctx, "acme", jit.GetRunner().GetID())
		return err == nil && r.GetStatus() == "online"
	}, 10*time.Second, 10*time.Millisecond)
	job, err := fake.QueueJob(fakegithub.JobSpec{Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "small"}, Duration: 10 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, <-errc)
	wj, _, err := gh.Actions.GetWorkflowJobByID(ctx, "acme", "app", job.ID)
	require.NoError(t, err)
	require.Equal(t, "completed", wj.GetStatus())
	require.Equal(t, "success", wj.GetConclusion())
	require.Equal(t, "rm-e", wj.GetRunnerName())
	require.Equal(t, "linux-small", wj.GetRunnerGroupName())

	_, err = gh.Actions.RemoveOrganizationRunner(ctx, "acme", byName.Runners[0].GetID())
	require.NoError(t, err)

	// deliveries, read back with the cursor, and one redelivered
	require.Eventually(t, func() bool { return len(fake.Deliveries()) == 3 }, 10*time.Second, 5*time.Millisecond)
	var ids []int64
	copts := &github.ListCursorOptions{PerPage: 1}
	for {
		ds, resp, err := appClient.Apps.ListHookDeliveries(ctx, copts)
		require.NoError(t, err)
		for _, d := range ds {
			ids = append(ids, d.GetID())
			require.Equal(t, "workflow_job", d.GetEvent())
		}
		if resp.Cursor == "" {
			break
		}
		copts.Cursor = resp.Cursor
	}
	require.Len(t, ids, 3)
	d, _, err := appClient.Apps.GetHookDelivery(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, "completed", d.GetAction())
	_, _, err = appClient.Apps.RedeliverHookDelivery(ctx, ids[0])
	var accepted *github.AcceptedError
	require.True(t, errors.As(err, &accepted), "202 Accepted, as GitHub answers: %v", err)
	require.Eventually(t, func() bool { return len(hk.all()) == 4 }, 10*time.Second, 5*time.Millisecond)

	require.Empty(t, chk.errs, "responses not conforming to the reference")
	for _, w := range hk.all() {
		require.NoError(t, validateWebhook(chk.spec, w))
	}
}
