package config

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMatchGroup(t *testing.T) {
	t.Parallel()
	cfg := &Config{RunnerGroups: []RunnerGroup{
		{Name: "small", Organization: "my-org", Labels: []string{"self-hosted", "linux", "small"}},
		{Name: "linux", Organization: "my-org", Labels: []string{"Linux"}},
		{Name: "gpu", Organization: "my-org", Labels: []string{"linux", "gpu"}},
		{Name: "gpu-twin", Organization: "my-org", Labels: []string{"gpu", "linux"}},
		{Name: "mono", Organization: "my-org", Repository: "monorepo", Labels: []string{"linux", "mono"}},
		{Name: "selected", Organization: "my-org", Labels: []string{"linux", "secret"},
			RepositoryAccess: RepositoryAccess{SelectedRepositories: []string{"vault"}}},
		{Name: "other", Organization: "other-org", Labels: []string{"linux"}},
	}}
	cases := []struct {
		name   string
		owner  string
		repo   string
		labels []string
		want   string // "" for no match
	}{
		{"fewest extra labels wins", "my-org", "app", []string{"linux"}, "linux"},
		{"self-hosted label is implied on the job", "my-org", "app", []string{"self-hosted", "linux"}, "linux"},
		{"self-hosted alone goes to the smallest group", "my-org", "app", []string{"self-hosted"}, "linux"},
		{"labels are case-insensitive", "my-org", "app", []string{"SELF-HOSTED", "LINUX", "Small"}, "small"},
		{"group without self-hosted still has it", "my-org", "app", []string{"self-hosted", "gpu"}, "gpu"},
		{"tie goes to the first in the file", "my-org", "app", []string{"gpu", "linux"}, "gpu"},
		{"a label no group has", "my-org", "app", []string{"linux", "arm64"}, ""},
		{"GitHub-hosted label", "my-org", "app", []string{"ubuntu-latest"}, ""},
		{"no labels", "my-org", "app", nil, ""},
		{"organization is case-insensitive", "My-Org", "app", []string{"linux"}, "linux"},
		{"other organization", "other-org", "app", []string{"linux"}, "other"},
		{"unknown organization", "nobody", "app", []string{"linux"}, ""},
		{"repository-level group for its repository", "my-org", "MonoRepo", []string{"mono"}, "mono"},
		{"repository-level group not for another repository", "my-org", "app", []string{"mono"}, ""},
		{"selected repositories include the repository", "my-org", "vault", []string{"secret"}, "selected"},
		{"selected repositories exclude the repository", "my-org", "app", []string{"secret"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := cfg.MatchGroup(tc.owner, tc.repo, "CI", tc.labels)
			if tc.want == "" {
				require.Nil(t, g, "matched %v", g)
				return
			}
			require.NotNil(t, g)
			require.Equal(t, tc.want, g.Name)
			require.Same(t, cfg.Group(tc.want), g, "returns a pointer into the config")
		})
	}
}

func names(gs []*RunnerGroup) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.Name)
	}
	return out
}

func TestMatchGroupsOrdered(t *testing.T) {
	t.Parallel()
	cfg := &Config{RunnerGroups: []RunnerGroup{
		{Name: "big", Organization: "o", Labels: []string{"linux", "big"}, SpillOver: true},
		{Name: "linux", Organization: "o", Labels: []string{"linux"}},
		{Name: "linux-2", Organization: "o", Labels: []string{"linux"}, SpillOver: true},
		{Name: "release", Organization: "o", Labels: []string{"linux", "big"}, WorkflowName: "Release"},
		{Name: "other", Organization: "p", Labels: []string{"linux"}, SpillOver: true},
	}}
	// Fewest extra labels first, then the order of the file.
	require.Equal(t, []string{"linux", "linux-2", "big"}, names(cfg.MatchGroups("o", "app", "CI", []string{"linux"})))
	// A group of the job's workflow comes before the groups of any workflow.
	require.Equal(t, []string{"release", "linux", "linux-2", "big"}, names(cfg.MatchGroups("o", "app", "Release", []string{"linux"})))
	require.Equal(t, "release", cfg.MatchGroup("o", "app", "Release", []string{"linux"}).Name)
	require.Empty(t, cfg.MatchGroups("o", "app", "CI", []string{"arm64"}))
	require.Nil(t, cfg.MatchGroup("o", "app", "CI", []string{"arm64"}))

	// The candidates are the best group, then the later ones that accept spill-over.
	require.Equal(t, []string{"linux", "linux-2", "big"}, names(cfg.JobGroups("o", "app", "CI", []string{"linux"})))
	require.Equal(t, []string{"release", "linux-2", "big"}, names(cfg.JobGroups("o", "app", "Release", []string{"linux"})))
	require.Equal(t, []string{"big"}, names(cfg.JobGroups("o", "app", "CI", []string{"big"})))
	require.Empty(t, cfg.JobGroups("o", "app", "CI", []string{"gpu"}))
}

func TestMatchGroupWorkflowName(t *testing.T) {
	t.Parallel()
	cfg := &Config{RunnerGroups: []RunnerGroup{
		{Name: "release", Organization: "o", Labels: []string{"linux"}, WorkflowName: "Release"},
	}}
	require.Equal(t, "release", cfg.MatchGroup("o", "app", "Release", []string{"linux"}).Name)
	require.Nil(t, cfg.MatchGroup("o", "app", "release", []string{"linux"}), "case-sensitive")
	require.Nil(t, cfg.MatchGroup("o", "app", "Release ", []string{"linux"}), "exact")
	require.Nil(t, cfg.MatchGroup("o", "app", "CI", []string{"linux"}))
	require.Nil(t, cfg.MatchGroup("o", "app", "", []string{"linux"}), "a job without workflow name")
}

func TestRunnerName(t *testing.T) {
	t.Parallel()
	require.Equal(t, "runner-manager-small-abcd1234", RunnerName("runner-manager", "small", "abcd1234"))
	require.Len(t, RunnerName(DefaultName, "g", NewRunnerSuffix()), len(DefaultName)+1+1+1+RunnerSuffixLen)
}

func TestNewRunnerSuffix(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z0-9]{8}$`)
	seen := map[string]bool{}
	chars := map[rune]bool{}
	for range 2000 {
		s := NewRunnerSuffix()
		require.Regexp(t, valid, s)
		require.False(t, seen[s], "suffix %s drawn twice", s)
		seen[s] = true
		for _, c := range s {
			chars[c] = true
		}
	}
	require.Len(t, chars, 36, "every character of a-z0-9 appears in 16000 draws")
	require.Equal(t, 8, RunnerSuffixLen)
}

func TestIsDNSLabel(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"a": true, "runner-manager": true, "a1-b2": true, "0abc": true,
		"": false, "-a": false, "a-": false, "A": false, "a_b": false, "a.b": false,
		string(make([]byte, 64)): false,
	} {
		require.Equal(t, want, IsDNSLabel(s), "%q", s)
	}
}
