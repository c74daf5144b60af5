package scenarios

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// TestTwoOrganizations (issue 17, "Several organisations and installations"):
// one manager, authenticated as a GitHub App without an installation id,
// serves two organizations, each with its own runner group of Docker
// runners (the same labels: the organization tells them apart) and its own
// installation of the App. A job in each completes, on a runner registered
// in its own organization, and every call on an organization used a token
// of that organization's installation (the fake refuses another's, 403).
func TestTwoOrganizations(t *testing.T) {
	const orgA, orgB = "org-a", "org-b"
	installations := map[string]int64{orgA: 101, orgB: 202}
	groupA := harness.DockerGroup("team-a", 2, 0, smallLabels...)
	groupA.Organization = orgA
	groupB := harness.DockerGroup("team-b", 2, 0, smallLabels...)
	groupB.Organization = orgB
	sys := start(t, harness.Options{
		AppInstallations: installations,
		Groups:           []config.RunnerGroup{groupA, groupB},
	})
	rep := newReport(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	jobA, err := sys.QueueJobOf(ctx, orgA, "app", smallLabels, time.Second)
	require.NoError(t, err)
	jobB, err := sys.QueueJobOf(ctx, orgB, "app", smallLabels, time.Second)
	require.NoError(t, err)
	waitJobs(t, sys, []int64{jobA, jobB}, 40*time.Second)

	for id, want := range map[int64]struct{ org, group string }{jobA: {orgA, "team-a"}, jobB: {orgB, "team-b"}} {
		j, err := sys.Job(ctx, id)
		require.NoError(t, err)
		require.Equal(t, want.org, j.Owner)
		require.Equal(t, want.group, j.RunnerGroupName, "job %d of %s ran in its organization's group", id, want.org)
		require.True(t, strings.Contains(j.RunnerName, want.group), "runner %s of group %s", j.RunnerName, want.group)
	}

	st, err := sys.Stats(ctx)
	require.NoError(t, err)
	t.Logf("calls by installation and account: %v; refused: %d", st.InstallationCalls, st.ForeignTokenCalls)
	require.Zero(t, st.ForeignTokenCalls, "no call used another organization's token")
	for org, id := range installations {
		calls := st.InstallationCalls[strconv.FormatInt(id, 10)]
		require.Positive(t, calls[org], "%s's calls used its installation %d", org, id)
		for account := range calls {
			require.Equal(t, org, account, "installation %d's token was used only on %s", id, org)
		}
	}
	require.Len(t, st.InstallationCalls, 2)
	require.Positive(t, st.APICalls["GET /orgs/{org}/installation"], "the installations were looked up through the App")
	settled(t, sys, 30*time.Second)
	rep.Done(2)
}
