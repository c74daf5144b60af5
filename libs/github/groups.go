package github

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	gh "github.com/google/go-github/v62/github"
)

// Runner group visibilities.
const (
	VisibilityAll      = "all"
	VisibilitySelected = "selected"
	VisibilityPrivate  = "private"
)

// RunnerGroup is an organization's runner group.
type RunnerGroup struct {
	ID         int64
	Name       string
	Visibility string
	// Default is the organization's default group (id 1).
	Default bool
	// Inherited from the enterprise: not editable by the organization.
	Inherited                bool
	AllowsPublicRepositories bool
	RestrictedToWorkflows    bool
	SelectedWorkflows        []string
}

// RunnerGroupSettings is what the manager configures on a runner group.
type RunnerGroupSettings struct {
	Name string
	// Visibility is VisibilityAll (the default when empty),
	// VisibilitySelected or VisibilityPrivate.
	Visibility               string
	AllowsPublicRepositories bool
	// RestrictedToWorkflows limits the group to SelectedWorkflows
	// ("owner/repo/.github/workflows/x.yml@ref").
	RestrictedToWorkflows bool
	SelectedWorkflows     []string
	// SelectedRepositoryIDs, with VisibilitySelected, on creation only;
	// afterwards use SetRunnerGroupRepositories.
	SelectedRepositoryIDs []int64
}

type apiRunnerGroup struct {
	ID                       int64    `json:"id"`
	Name                     string   `json:"name"`
	Visibility               string   `json:"visibility"`
	Default                  bool     `json:"default"`
	Inherited                bool     `json:"inherited"`
	AllowsPublicRepositories bool     `json:"allows_public_repositories"`
	RestrictedToWorkflows    bool     `json:"restricted_to_workflows"`
	SelectedWorkflows        []string `json:"selected_workflows"`
}

func (a apiRunnerGroup) group() RunnerGroup {
	return RunnerGroup(a)
}

type apiRunnerGroups struct {
	TotalCount   int              `json:"total_count"`
	RunnerGroups []apiRunnerGroup `json:"runner_groups"`
}

// groupBody is the body of the create and update calls. Every field is
// sent, so that an update also clears (false, an empty list).
type groupBody struct {
	Name                     string   `json:"name"`
	Visibility               string   `json:"visibility"`
	AllowsPublicRepositories bool     `json:"allows_public_repositories"`
	RestrictedToWorkflows    bool     `json:"restricted_to_workflows"`
	SelectedWorkflows        []string `json:"selected_workflows"`
	SelectedRepositoryIDs    []int64  `json:"selected_repository_ids,omitempty"`
}

func (s RunnerGroupSettings) body(create bool) groupBody {
	b := groupBody{
		Name:                     s.Name,
		Visibility:               s.Visibility,
		AllowsPublicRepositories: s.AllowsPublicRepositories,
		RestrictedToWorkflows:    s.RestrictedToWorkflows,
		SelectedWorkflows:        append([]string{}, s.SelectedWorkflows...),
	}
	if b.Visibility == "" {
		b.Visibility = VisibilityAll
	}
	if create {
		b.SelectedRepositoryIDs = s.SelectedRepositoryIDs
	}
	return b
}

func orgPath(org string) string { return "orgs/" + url.PathEscape(org) }

// ListRunnerGroups returns every runner group of the organization. The call
// has PriorityLow unless ctx says otherwise.
func (c *Client) ListRunnerGroups(ctx context.Context, org string) ([]RunnerGroup, error) {
	return c.listRunnerGroups(withDefaultPriority(ctx, PriorityLow), org)
}

func (c *Client) listRunnerGroups(ctx context.Context, org string) ([]RunnerGroup, error) {
	op := "list runner groups of " + org
	if org == "" {
		return nil, invalid(op, "empty organization")
	}
	var all []RunnerGroup
	err := c.callAs(ctx, op, false, orgAccount(org), func(ctx context.Context, g *gh.Client) error {
		all = nil
		return listPages(ctx, func(ctx context.Context, page int) (*gh.Response, error) {
			var out apiRunnerGroups
			resp, err := c.do(ctx, g, http.MethodGet,
				fmt.Sprintf("%s/actions/runner-groups?per_page=%d&page=%d", orgPath(org), DefaultPerPage, page), nil, &out)
			if err != nil {
				return nil, err
			}
			for _, g := range out.RunnerGroups {
				all = append(all, g.group())
			}
			return resp, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// GetRunnerGroupByName returns the organization's runner group of that
// name, or ErrNotFound.
func (c *Client) GetRunnerGroupByName(ctx context.Context, org, name string) (*RunnerGroup, error) {
	groups, err := c.listRunnerGroups(ctx, org)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if g.Name == name {
			return &g, nil
		}
	}
	return nil, &Error{Op: fmt.Sprintf("get runner group %s of %s", name, org), kind: ErrNotFound}
}

// CreateRunnerGroup creates a runner group in the organization.
func (c *Client) CreateRunnerGroup(ctx context.Context, org string, s RunnerGroupSettings) (*RunnerGroup, error) {
	op := fmt.Sprintf("create runner group %s in %s", s.Name, org)
	if org == "" || s.Name == "" {
		return nil, invalid(op, "empty organization or group name")
	}
	var out apiRunnerGroup
	err := c.callAs(ctx, op, false, orgAccount(org), func(ctx context.Context, g *gh.Client) error {
		_, err := c.do(ctx, g, http.MethodPost, orgPath(org)+"/actions/runner-groups", s.body(true), &out)
		return err
	})
	if err != nil {
		return nil, err
	}
	g := out.group()
	return &g, nil
}

// UpdateRunnerGroup sets the settings of a runner group (name, visibility,
// public repositories, workflow restrictions); the selected repositories
// are set with SetRunnerGroupRepositories.
func (c *Client) UpdateRunnerGroup(ctx context.Context, org string, groupID int64, s RunnerGroupSettings) (*RunnerGroup, error) {
	op := fmt.Sprintf("update runner group %d (%s) of %s", groupID, s.Name, org)
	if org == "" || s.Name == "" {
		return nil, invalid(op, "empty organization or group name")
	}
	var out apiRunnerGroup
	err := c.callAs(ctx, op, false, orgAccount(org), func(ctx context.Context, g *gh.Client) error {
		_, err := c.do(ctx, g, http.MethodPatch,
			fmt.Sprintf("%s/actions/runner-groups/%d", orgPath(org), groupID), s.body(false), &out)
		return err
	})
	if err != nil {
		return nil, err
	}
	g := out.group()
	return &g, nil
}

// SetRunnerGroupRepositories replaces the repositories that may use a
// runner group of visibility VisibilitySelected.
func (c *Client) SetRunnerGroupRepositories(ctx context.Context, org string, groupID int64, repoIDs []int64) error {
	op := fmt.Sprintf("set repositories of runner group %d of %s", groupID, org)
	if org == "" {
		return invalid(op, "empty organization")
	}
	body := gh.SetRepoAccessRunnerGroupRequest{SelectedRepositoryIDs: append([]int64{}, repoIDs...)}
	return c.callAs(ctx, op, false, orgAccount(org), func(ctx context.Context, g *gh.Client) error {
		_, err := c.do(ctx, g, http.MethodPut,
			fmt.Sprintf("%s/actions/runner-groups/%d/repositories", orgPath(org), groupID), body, nil)
		return err
	})
}

// GetRepositoryID returns the id of a repository, for the selected
// repositories of a runner group. (GET /repos/{owner}/{repo} is not in the
// project's reference description; it is GitHub's standard endpoint.)
func (c *Client) GetRepositoryID(ctx context.Context, owner, repo string) (int64, error) {
	op := fmt.Sprintf("get repository %s/%s", owner, repo)
	if owner == "" || repo == "" {
		return 0, invalid(op, "empty owner or repository")
	}
	var out struct {
		ID int64 `json:"id"`
	}
	err := c.callAs(ctx, op, false, repoAccount(owner, repo), func(ctx context.Context, g *gh.Client) error {
		_, err := c.do(ctx, g, http.MethodGet, "repos/"+url.PathEscape(owner)+"/"+url.PathEscape(repo), nil, &out)
		return err
	})
	if err != nil {
		return 0, err
	}
	return out.ID, nil
}
