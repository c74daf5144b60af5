package config

import (
	"sort"
	"strings"
)

// SelfHostedLabel is implied on every job and in every group: GitHub adds it
// to every self-hosted runner.
const SelfHostedLabel = "self-hosted"

// MatchGroup returns the runner group that serves a job of repository
// owner/repo, of the workflow named workflowName, with the runs-on labels
// jobLabels, or nil when none does: the first of MatchGroups.
func (c *Config) MatchGroup(owner, repo, workflowName string, jobLabels []string) *RunnerGroup {
	if m := c.MatchGroups(owner, repo, workflowName, jobLabels); len(m) > 0 {
		return m[0]
	}
	return nil
}

// MatchGroups returns every runner group that can serve a job of repository
// owner/repo, of the workflow named workflowName, with the runs-on labels
// jobLabels, best first; empty when none can.
//
// A group matches when:
//   - its organization equals owner (case-insensitive);
//   - for a repository-level group, its repository equals repo; for an
//     organization-level group with repository_access.selected_repositories,
//     repo is one of them (case-insensitive): GitHub would not give the job
//     to a runner of that group otherwise;
//   - its workflow_name, when set, equals workflowName exactly
//     (case-sensitive);
//   - every job label is one of the group's labels, case-insensitive, where
//     self-hosted is implied on both sides.
//
// A job without labels matches nothing. The groups whose workflow_name is
// set come first (they are dedicated to the job's workflow), then among
// equals the group with the fewest labels the job did not ask for, then the
// first in the configuration.
func (c *Config) MatchGroups(owner, repo, workflowName string, jobLabels []string) []*RunnerGroup {
	if len(jobLabels) == 0 {
		return nil
	}
	want := labelSet(jobLabels)
	type match struct {
		g     *RunnerGroup
		extra int
	}
	var ms []match
	for i := range c.RunnerGroups {
		g := &c.RunnerGroups[i]
		if !strings.EqualFold(g.Organization, owner) || !g.servesRepo(repo) {
			continue
		}
		if g.WorkflowName != "" && g.WorkflowName != workflowName {
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
		if ok {
			// Every job label is in have, so the extra labels are the rest.
			ms = append(ms, match{g, len(have) - len(want)})
		}
	}
	sort.SliceStable(ms, func(i, j int) bool {
		wi, wj := ms[i].g.WorkflowName != "", ms[j].g.WorkflowName != ""
		if wi != wj {
			return wi
		}
		return ms[i].extra < ms[j].extra
	})
	out := make([]*RunnerGroup, len(ms))
	for i, m := range ms {
		out[i] = m.g
	}
	return out
}

// JobGroups returns the groups a queued job may be counted in, in order of
// preference: the best match (MatchGroups), then every other match whose
// spill_over is true. The scheduler counts the job in the first of them that
// has room for it (docs/configuration.md, "How a job finds its group"), else
// in the first. Empty when no group matches.
func (c *Config) JobGroups(owner, repo, workflowName string, jobLabels []string) []*RunnerGroup {
	ms := c.MatchGroups(owner, repo, workflowName, jobLabels)
	if len(ms) == 0 {
		return nil
	}
	out := []*RunnerGroup{ms[0]}
	for _, g := range ms[1:] {
		if g.SpillOver {
			out = append(out, g)
		}
	}
	return out
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
