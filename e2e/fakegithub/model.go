package fakegithub

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultRunnerGroupID is the id of every organization's "Default" runner group,
// as on GitHub.
const DefaultRunnerGroupID int64 = 1

// Group visibilities.
const (
	VisibilityAll      = "all"
	VisibilitySelected = "selected"
	VisibilityPrivate  = "private"
)

type org struct {
	login  string
	id     int64
	groups map[int64]*runnerGroup
}

type repository struct {
	owner, name string
	id          int64
	private     bool
	created     time.Time
}

func (r *repository) fullName() string { return r.owner + "/" + r.name }

type runnerGroup struct {
	id                    int64
	name                  string
	visibility            string
	isDefault             bool
	allowsPublic          bool
	restrictedToWorkflows bool
	selectedWorkflows     []string
	networkConfigID       *string
	repoIDs               []int64
}

func (g *runnerGroup) allows(repo *repository) bool {
	if !repo.private && !g.allowsPublic && !g.isDefault {
		return false
	}
	switch g.visibility {
	case VisibilitySelected:
		return slices.Contains(g.repoIDs, repo.id)
	case VisibilityPrivate:
		return repo.private
	default:
		return true
	}
}

type runner struct {
	id        int64
	name      string
	org       string // lower-case owner (organization or repository owner)
	repo      string // repository name for repository-level runners, else ""
	groupID   int64
	labels    []string
	secret    string
	created   time.Time
	conn      *runnerConn
	connected bool // has connected at least once
	busy      bool
	jobID     int64 // assigned job (0: none)
	// disconnected by a test: refuses reconnection
	disconnected bool
}

func (rn *runner) online() bool { return rn.conn != nil }

func (rn *runner) status() string {
	if rn.online() {
		return "online"
	}
	return "offline"
}

// job is a workflow job.
type job struct {
	id         int64
	runID      int64
	repo       *repository
	labels     []string
	duration   time.Duration
	name       string
	workflow   string
	branch     string
	sha        string
	status     string
	conclusion string
	created    time.Time
	started    time.Time
	completed  time.Time
	runnerID   int64
	runnerName string
	groupID    int64
	groupName  string
	assignedTo int64 // runner the job was sent to, not yet acknowledged
}

func (s *Server) orgLocked(login string) *org {
	key := strings.ToLower(login)
	o := s.orgs[key]
	if o == nil {
		o = &org{login: login, id: s.newIDLocked(), groups: map[int64]*runnerGroup{
			DefaultRunnerGroupID: {id: DefaultRunnerGroupID, name: "Default", visibility: VisibilityAll, isDefault: true, allowsPublic: true},
		}}
		s.orgs[key] = o
	}
	return o
}

func (s *Server) repoLocked(owner, name string) *repository {
	s.orgLocked(owner)
	key := strings.ToLower(owner + "/" + name)
	r := s.repos[key]
	if r == nil {
		r = &repository{owner: owner, name: name, id: s.newIDLocked(), private: true, created: s.opts.Now().UTC().Add(-24 * time.Hour)}
		s.repos[key] = r
	}
	return r
}

func (s *Server) repoByIDLocked(id int64) *repository {
	for _, r := range s.repos {
		if r.id == id {
			return r
		}
	}
	return nil
}

// Repository returns the id of a repository of the fake, creating it (private) if
// needed. Repositories and organizations exist as soon as they are named.
func (s *Server) Repository(owner, name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repoLocked(owner, name).id
}

// labelsMatch reports whether every job label is among the runner labels
// (case-insensitive), as GitHub matches runs-on.
func labelsMatch(runnerLabels, jobLabels []string) bool {
	for _, jl := range jobLabels {
		if !slices.ContainsFunc(runnerLabels, func(rl string) bool { return strings.EqualFold(rl, jl) }) {
			return false
		}
	}
	return true
}

func nodeID(kind string, id int64) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s%d", kind, id))
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tsOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}

const (
	apiBase = "https://api.github.com"
	webBase = "https://github.com"
)

// userJSON is a simple-user object (sender, owners).
func userJSON(login string, id int64, typ string) map[string]any {
	u := apiBase + "/users/" + login
	return map[string]any{
		"login":               login,
		"id":                  id,
		"node_id":             nodeID("U_", id),
		"avatar_url":          fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", id),
		"gravatar_id":         "",
		"url":                 u,
		"html_url":            webBase + "/" + login,
		"followers_url":       u + "/followers",
		"following_url":       u + "/following{/other_user}",
		"gists_url":           u + "/gists{/gist_id}",
		"starred_url":         u + "/starred{/owner}{/repo}",
		"subscriptions_url":   u + "/subscriptions",
		"organizations_url":   u + "/orgs",
		"repos_url":           u + "/repos",
		"events_url":          u + "/events{/privacy}",
		"received_events_url": u + "/received_events",
		"type":                typ,
		"user_view_type":      "public",
		"site_admin":          false,
	}
}

func orgJSON(o *org) map[string]any {
	u := apiBase + "/orgs/" + o.login
	return map[string]any{
		"login":              o.login,
		"id":                 o.id,
		"node_id":            nodeID("O_", o.id),
		"url":                u,
		"repos_url":          u + "/repos",
		"events_url":         u + "/events",
		"hooks_url":          u + "/hooks",
		"issues_url":         u + "/issues",
		"members_url":        u + "/members{/member}",
		"public_members_url": u + "/public_members{/member}",
		"avatar_url":         fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", o.id),
		"description":        "Organization " + o.login + " of the fake GitHub",
	}
}

// repoJSON is a full repository object as webhooks carry it; minimal (for the
// runner group repositories list) drops the fields a minimal-repository omits.
func (s *Server) repoJSON(r *repository) map[string]any {
	o := s.orgLocked(r.owner)
	u := apiBase + "/repos/" + r.fullName()
	html := webBase + "/" + r.fullName()
	pushed := s.opts.Now().UTC().Add(-time.Hour)
	m := map[string]any{
		"id":                          r.id,
		"node_id":                     nodeID("R_", r.id),
		"name":                        r.name,
		"full_name":                   r.fullName(),
		"private":                     r.private,
		"owner":                       userJSON(o.login, o.id, "Organization"),
		"html_url":                    html,
		"description":                 "Repository " + r.fullName() + " of the fake GitHub",
		"fork":                        false,
		"url":                         u,
		"forks_url":                   u + "/forks",
		"keys_url":                    u + "/keys{/key_id}",
		"collaborators_url":           u + "/collaborators{/collaborator}",
		"teams_url":                   u + "/teams",
		"hooks_url":                   u + "/hooks",
		"issue_events_url":            u + "/issues/events{/number}",
		"events_url":                  u + "/events",
		"assignees_url":               u + "/assignees{/user}",
		"branches_url":                u + "/branches{/branch}",
		"tags_url":                    u + "/tags",
		"blobs_url":                   u + "/git/blobs{/sha}",
		"git_tags_url":                u + "/git/tags{/sha}",
		"git_refs_url":                u + "/git/refs{/sha}",
		"trees_url":                   u + "/git/trees{/sha}",
		"statuses_url":                u + "/statuses/{sha}",
		"languages_url":               u + "/languages",
		"stargazers_url":              u + "/stargazers",
		"contributors_url":            u + "/contributors",
		"subscribers_url":             u + "/subscribers",
		"subscription_url":            u + "/subscription",
		"commits_url":                 u + "/commits{/sha}",
		"git_commits_url":             u + "/git/commits{/sha}",
		"comments_url":                u + "/comments{/number}",
		"issue_comment_url":           u + "/issues/comments{/number}",
		"contents_url":                u + "/contents/{+path}",
		"compare_url":                 u + "/compare/{base}...{head}",
		"merges_url":                  u + "/merges",
		"archive_url":                 u + "/{archive_format}{/ref}",
		"downloads_url":               u + "/downloads",
		"issues_url":                  u + "/issues{/number}",
		"pulls_url":                   u + "/pulls{/number}",
		"milestones_url":              u + "/milestones{/number}",
		"notifications_url":           u + "/notifications{?since,all,participating}",
		"labels_url":                  u + "/labels{/name}",
		"releases_url":                u + "/releases{/id}",
		"deployments_url":             u + "/deployments",
		"created_at":                  ts(r.created),
		"updated_at":                  ts(r.created),
		"pushed_at":                   ts(pushed),
		"git_url":                     "git://github.com/" + r.fullName() + ".git",
		"ssh_url":                     "git@github.com:" + r.fullName() + ".git",
		"clone_url":                   html + ".git",
		"svn_url":                     html,
		"homepage":                    nil,
		"size":                        1024,
		"stargazers_count":            0,
		"watchers_count":              0,
		"language":                    "Go",
		"has_issues":                  true,
		"has_projects":                true,
		"has_downloads":               true,
		"has_wiki":                    true,
		"has_pages":                   false,
		"has_discussions":             false,
		"forks_count":                 0,
		"mirror_url":                  nil,
		"archived":                    false,
		"disabled":                    false,
		"open_issues_count":           0,
		"license":                     nil,
		"allow_forking":               false,
		"is_template":                 false,
		"web_commit_signoff_required": false,
		"topics":                      []string{},
		"visibility":                  map[bool]string{true: "private", false: "public"}[r.private],
		"forks":                       0,
		"open_issues":                 0,
		"watchers":                    0,
		"default_branch":              "main",
		"custom_properties":           map[string]any{},
	}
	return m
}

func (s *Server) minimalRepoJSON(r *repository) map[string]any {
	m := s.repoJSON(r)
	for _, k := range []string{"custom_properties", "web_commit_signoff_required"} {
		delete(m, k)
	}
	return m
}
