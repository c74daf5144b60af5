package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
)

// settings are the GitHub runner group settings a configured group asks for;
// repos are its selected repositories resolved to ids (a repository GitHub
// says does not exist, 404, is left out). err is not nil when a lookup failed
// for any other reason (a 5xx, a timeout, a rate limit): repos is then
// incomplete and must not replace the group's repositories at GitHub.
func (c *Checker) settings(ctx context.Context, g *config.RunnerGroup) (s github.RunnerGroupSettings, repos []int64, err error) {
	s = github.RunnerGroupSettings{
		Name:                     g.Name,
		Visibility:               github.VisibilityAll,
		AllowsPublicRepositories: g.RepositoryAccess.AllowsPublicRepositories == nil || *g.RepositoryAccess.AllowsPublicRepositories,
		RestrictedToWorkflows:    len(g.WorkflowAccess) > 0,
		SelectedWorkflows:        slices.Clone(g.WorkflowAccess),
	}
	if len(g.RepositoryAccess.SelectedRepositories) == 0 {
		return s, nil, nil
	}
	s.Visibility = github.VisibilitySelected
	var errs []error
	for _, repo := range g.RepositoryAccess.SelectedRepositories {
		id, err := c.repositoryID(ctx, g.Organization, repo)
		switch {
		case errors.Is(err, github.ErrNotFound):
			c.log.Warn("selected repository of a runner group does not exist: left out", "group", g.Name,
				"repository", g.Organization+"/"+repo, "error", err)
			continue
		case errors.Is(err, github.ErrRateLimited):
			// The other lookups would be refused too.
			return s, nil, fmt.Errorf("selected repositories of runner group %s: %w", g.Name, err)
		case err != nil:
			errs = append(errs, fmt.Errorf("selected repository %s/%s of runner group %s: %w", g.Organization, repo, g.Name, err))
			continue
		}
		repos = append(repos, id)
	}
	slices.Sort(repos)
	return s, slices.Compact(repos), errors.Join(errs...)
}

// repositoryID resolves owner/repo, cached for repoIDCacheTTL.
func (c *Checker) repositoryID(ctx context.Context, owner, repo string) (int64, error) {
	key := strings.ToLower(owner + "/" + repo)
	now := c.store.Now()
	c.mu.Lock()
	cached, ok := c.repoIDs[key]
	c.mu.Unlock()
	ok = ok && now.Sub(cached.at) < repoIDCacheTTL
	if ok && cached.id != 0 {
		return cached.id, nil
	}
	if ok {
		return 0, fmt.Errorf("get repository %s/%s: %w (cached)", owner, repo, github.ErrNotFound)
	}
	id, err := c.gh.GetRepositoryID(ctx, owner, repo)
	if err != nil && !errors.Is(err, github.ErrNotFound) {
		return 0, err
	}
	// A repository that does not exist is remembered too (id 0), so that a
	// name mistyped in the configuration costs one call per repoIDCacheTTL.
	c.mu.Lock()
	c.repoIDs[key] = repoID{id: id, at: now}
	c.mu.Unlock()
	return id, err
}

// differs tells whether a runner group at GitHub differs from the settings
// (the selected repositories aside: they are set apart).
func differs(cur github.RunnerGroup, want github.RunnerGroupSettings) bool {
	a, b := slices.Clone(cur.SelectedWorkflows), slices.Clone(want.SelectedWorkflows)
	slices.Sort(a)
	slices.Sort(b)
	return cur.Visibility != want.Visibility ||
		cur.AllowsPublicRepositories != want.AllowsPublicRepositories ||
		cur.RestrictedToWorkflows != want.RestrictedToWorkflows ||
		!slices.Equal(a, b)
}

func fingerprint(groupID int64, ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strconv.FormatInt(groupID, 10) + ":" + strings.Join(parts, ",")
}

// syncGroups makes the organization-level runner groups at GitHub match the
// configuration (check 8): one listing per organization; a missing group is
// created, one whose settings differ is updated, the selected repositories
// are set when they changed (or every RepositoriesRefresh), and every
// group's id is stored for the create commands ({P}:ghgroup:<group>).
// Repository-level groups have no runner group (GitHub's default, id 1).
func (c *Checker) syncGroups(ctx context.Context, rep *Report) error {
	if c.gh == nil {
		return nil
	}
	byOrg := map[string][]*config.RunnerGroup{}
	for i := range c.cfg.RunnerGroups {
		g := &c.cfg.RunnerGroups[i]
		if g.Repository == "" && g.Organization != "" {
			byOrg[g.Organization] = append(byOrg[g.Organization], g)
		}
	}
	orgs := make([]string, 0, len(byOrg))
	for o := range byOrg {
		orgs = append(orgs, o)
	}
	sort.Strings(orgs)
	var errs []error
	for _, org := range orgs {
		existing, err := c.gh.ListRunnerGroups(ctx, org)
		if err != nil {
			errs = append(errs, fmt.Errorf("runner groups of %s: %w", org, err))
			continue
		}
		for _, g := range byOrg[org] {
			if err := c.syncGroup(ctx, org, g, existing, rep); err != nil {
				errs = append(errs, err)
			}
		}
	}
	c.count(CheckRunnerGroup, len(rep.GroupsCreated)+len(rep.GroupsUpdated))
	return errors.Join(errs...)
}

func (c *Checker) syncGroup(ctx context.Context, org string, g *config.RunnerGroup, existing []github.RunnerGroup, rep *Report) error {
	want, repoIDs, lookupErr := c.settings(ctx, g)
	var cur *github.RunnerGroup
	for i := range existing {
		if strings.EqualFold(existing[i].Name, g.Name) {
			cur = &existing[i]
			break
		}
	}
	log := c.log.With("group", g.Name, "organization", org)
	reposSet := false
	switch {
	case cur == nil && lookupErr != nil && want.Visibility == github.VisibilitySelected:
		// Created with only the repositories resolved it would admit less
		// than asked until the next pass: wait for every lookup.
		return fmt.Errorf("create runner group %s in %s: %w", g.Name, org, lookupErr)
	case cur == nil:
		want.SelectedRepositoryIDs = repoIDs
		created, err := c.gh.CreateRunnerGroup(ctx, org, want)
		if err != nil {
			return fmt.Errorf("create runner group %s in %s: %w", g.Name, org, err)
		}
		cur = created
		reposSet = true
		rep.GroupsCreated = append(rep.GroupsCreated, g.Name)
		log.Info("runner group created at GitHub", "id", cur.ID, "visibility", want.Visibility)
	case cur.Inherited:
		log.Warn("runner group is inherited from the enterprise: its settings cannot be managed here", "id", cur.ID)
	case differs(*cur, want):
		want.Name = cur.Name // keep GitHub's spelling
		updated, err := c.gh.UpdateRunnerGroup(ctx, org, cur.ID, want)
		if err != nil {
			return fmt.Errorf("update runner group %s of %s: %w", g.Name, org, err)
		}
		cur = updated
		rep.GroupsUpdated = append(rep.GroupsUpdated, g.Name)
		log.Info("runner group updated at GitHub", "id", cur.ID, "visibility", want.Visibility,
			"allows_public_repositories", want.AllowsPublicRepositories, "restricted_to_workflows", want.RestrictedToWorkflows)
	}
	if want.Visibility == github.VisibilitySelected && !cur.Inherited && lookupErr == nil {
		fp := fingerprint(cur.ID, repoIDs)
		applied, err := c.store.GroupRepositoriesApplied(ctx, g.Name)
		if err != nil {
			return err
		}
		if applied != fp {
			// Set at creation, or changed, or not set since RepositoriesRefresh.
			if !reposSet {
				if err := c.gh.SetRunnerGroupRepositories(ctx, org, cur.ID, repoIDs); err != nil {
					return fmt.Errorf("set repositories of runner group %s of %s: %w", g.Name, org, err)
				}
				log.Info("runner group repositories set at GitHub", "id", cur.ID, "repositories", len(repoIDs))
			}
			if err := c.store.SetGroupRepositoriesApplied(ctx, g.Name, fp, c.opt.RepositoriesRefresh); err != nil {
				return err
			}
		}
	}
	known, err := c.store.GitHubGroupID(ctx, g.Name)
	if err != nil {
		return err
	}
	if known != cur.ID {
		if err := c.store.SetGitHubGroupID(ctx, g.Name, cur.ID); err != nil {
			return err
		}
		log.Info("runner group id stored", "id", cur.ID)
	}
	if lookupErr != nil {
		// A transient failure never shrinks a group's access: its
		// repositories stay as they are until every lookup answers.
		return fmt.Errorf("repositories of runner group %s of %s left unchanged: %w", g.Name, org, lookupErr)
	}
	return nil
}
