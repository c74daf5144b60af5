package config

import "strings"

// SelfHostedLabel is implied on every job and in every group: GitHub adds it
// to every self-hosted runner.
const SelfHostedLabel = "self-hosted"

// MatchGroup returns the runner group that serves a job of repository
// owner/repo with the runs-on labels jobLabels, or nil when none does.
//
// A group matches when:
//   - its organization equals owner (case-insensitive);
//   - for a repository-level group, its repository equals repo; for an
//     organization-level group with repository_access.selected_repositories,
//     repo is one of them (case-insensitive): GitHub would not give the job
//     to a runner of that group otherwise;
//   - every job label is one of the group's labels, case-insensitive, where
//     self-hosted is implied on both sides.
//
// A job without labels matches nothing. Among several matches the group with
// the fewest labels the job did not ask for wins, then the first in the
// configuration.
func (c *Config) MatchGroup(owner, repo string, jobLabels []string) *RunnerGroup {
	if len(jobLabels) == 0 {
		return nil
	}
	want := labelSet(jobLabels)
	var best *RunnerGroup
	bestExtra := 0
	for i := range c.RunnerGroups {
		g := &c.RunnerGroups[i]
		if !strings.EqualFold(g.Organization, owner) || !g.servesRepo(repo) {
			continue
		}
		have := labelSet(g.Labels)
		ok := true
		for l := range want {
			if !have[l] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		// Every job label is in have, so the extra labels are the rest.
		if extra := len(have) - len(want); best == nil || extra < bestExtra {
			best, bestExtra = g, extra
		}
	}
	return best
}

func (g *RunnerGroup) servesRepo(repo string) bool {
	if g.Repository != "" {
		return strings.EqualFold(g.Repository, repo)
	}
	if sel := g.RepositoryAccess.SelectedRepositories; len(sel) > 0 {
		for _, r := range sel {
			if strings.EqualFold(r, repo) {
				return true
			}
		}
		return false
	}
	return true
}

// labelSet lowercases labels and adds self-hosted.
func labelSet(labels []string) map[string]bool {
	s := make(map[string]bool, len(labels)+1)
	s[SelfHostedLabel] = true
	for _, l := range labels {
		s[strings.ToLower(strings.TrimSpace(l))] = true
	}
	return s
}
