package webhooktest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

const (
	apiBase = "https://api.github.com"
	webBase = "https://github.com"
)

// The user who triggers the workflow runs: the sender of every delivery.
const (
	SenderLogin       = "octocat"
	SenderID    int64 = 583_231
)

// Repo describes a repository (owned by an organization) as webhooks and the
// REST API show it.
type Repo struct {
	Owner   string // the owner's login
	OwnerID int64
	Name    string
	ID      int64
	// Private: visibility "private", else "public".
	Private bool
	// CreatedAt is the creation time; PushedAt the last push (zero:
	// CreatedAt). updated_at is the later of the two.
	CreatedAt time.Time
	PushedAt  time.Time
}

// FullName is owner/name.
func (r Repo) FullName() string { return r.Owner + "/" + r.Name }

// NodeID returns the GraphQL global id GitHub gives the object of type typ
// ("User", "Organization", "Repository", "Workflow Job", "Integration",
// "IntegrationInstallation") with that id: base64 of "0<len(typ)>:<typ><id>",
// as in the examples of GitHub's OpenAPI description ("MDQ6VXNlcjE=" is
// user 1).
func NodeID(typ string, id int64) string {
	return base64.StdEncoding.EncodeToString([]byte("0" + strconv.Itoa(len(typ)) + ":" + typ + strconv.FormatInt(id, 10)))
}

// RepositoryObject returns the full repository object webhooks carry.
func RepositoryObject(r Repo) map[string]any {
	m := MinimalRepositoryObject(r)
	m["custom_properties"] = map[string]any{}
	m["web_commit_signoff_required"] = false
	return m
}

// MinimalRepositoryObject returns a minimal-repository object, as the REST
// API lists them (the repositories of a runner group): the full object
// without custom_properties and web_commit_signoff_required.
func MinimalRepositoryObject(r Repo) map[string]any {
	api := apiBase + "/repos/" + r.FullName()
	html := webBase + "/" + r.FullName()
	pushed := r.PushedAt
	if pushed.IsZero() {
		pushed = r.CreatedAt
	}
	updated := pushed
	if r.CreatedAt.After(updated) {
		updated = r.CreatedAt
	}
	visibility := "public"
	if r.Private {
		visibility = "private"
	}
	m := map[string]any{
		"id":                r.ID,
		"node_id":           NodeID("Repository", r.ID),
		"name":              r.Name,
		"full_name":         r.FullName(),
		"private":           r.Private,
		"owner":             UserObject(r.Owner, r.OwnerID, "Organization"),
		"html_url":          html,
		"description":       "The " + r.Name + " service, its tests and its deployment.",
		"fork":              false,
		"url":               api,
		"homepage":          nil,
		"language":          "Go",
		"forks":             3,
		"forks_count":       3,
		"stargazers_count":  42,
		"watchers_count":    42,
		"watchers":          42,
		"size":              18_734,
		"default_branch":    "main",
		"open_issues":       17,
		"open_issues_count": 17,
		"is_template":       false,
		"topics":            []string{"ci", "golang"},
		"has_issues":        true,
		"has_projects":      true,
		"has_wiki":          false,
		"has_pages":         false,
		"has_downloads":     true,
		"has_discussions":   false,
		"archived":          false,
		"disabled":          false,
		"visibility":        visibility,
		"mirror_url":        nil,
		"license":           map[string]any{"key": "mit", "name": "MIT License", "spdx_id": "MIT", "url": apiBase + "/licenses/mit", "node_id": "MDc6TGljZW5zZW1pdA=="},
		"pushed_at":         ts(pushed),
		"created_at":        ts(r.CreatedAt),
		"updated_at":        ts(updated),
		"allow_forking":     false,
		"git_url":           "git://github.com/" + r.FullName() + ".git",
		"ssh_url":           "git@github.com:" + r.FullName() + ".git",
		"clone_url":         html + ".git",
		"svn_url":           html,
	}
	for _, u := range []string{
		"archive_url:/{archive_format}{/ref}", "assignees_url:/assignees{/user}", "blobs_url:/git/blobs{/sha}",
		"branches_url:/branches{/branch}", "collaborators_url:/collaborators{/collaborator}",
		"comments_url:/comments{/number}", "commits_url:/commits{/sha}", "compare_url:/compare/{base}...{head}",
		"contents_url:/contents/{+path}", "contributors_url:/contributors", "deployments_url:/deployments",
		"downloads_url:/downloads", "events_url:/events", "forks_url:/forks", "git_commits_url:/git/commits{/sha}",
		"git_refs_url:/git/refs{/sha}", "git_tags_url:/git/tags{/sha}", "hooks_url:/hooks",
		"issue_comment_url:/issues/comments{/number}", "issue_events_url:/issues/events{/number}",
		"issues_url:/issues{/number}", "keys_url:/keys{/key_id}", "labels_url:/labels{/name}",
		"languages_url:/languages", "merges_url:/merges", "milestones_url:/milestones{/number}",
		"notifications_url:/notifications{?since,all,participating}", "pulls_url:/pulls{/number}",
		"releases_url:/releases{/id}", "stargazers_url:/stargazers", "statuses_url:/statuses/{sha}",
		"subscribers_url:/subscribers", "subscription_url:/subscription", "tags_url:/tags",
		"teams_url:/teams", "trees_url:/git/trees{/sha}",
	} {
		k, path, _ := strings.Cut(u, ":")
		m[k] = api + path
	}
	return m
}

// UserObject returns a simple-user object: a sender, a repository's owner,
// an installation's account. typ is "User", "Organization" or "Bot".
func UserObject(login string, id int64, typ string) map[string]any {
	api := apiBase + "/users/" + login
	return map[string]any{
		"login":               login,
		"id":                  id,
		"node_id":             NodeID(typ, id),
		"avatar_url":          avatarURL(id),
		"gravatar_id":         "",
		"url":                 api,
		"html_url":            webBase + "/" + login,
		"followers_url":       api + "/followers",
		"following_url":       api + "/following{/other_user}",
		"gists_url":           api + "/gists{/gist_id}",
		"starred_url":         api + "/starred{/owner}{/repo}",
		"subscriptions_url":   api + "/subscriptions",
		"organizations_url":   api + "/orgs",
		"repos_url":           api + "/repos",
		"events_url":          api + "/events{/privacy}",
		"received_events_url": api + "/received_events",
		"type":                typ,
		"user_view_type":      "public",
		"site_admin":          false,
	}
}

// Sender returns the user object of SenderLogin, the sender of every
// delivery.
func Sender() map[string]any { return UserObject(SenderLogin, SenderID, "User") }

// OrganizationObject returns the organization object webhooks carry.
func OrganizationObject(login string, id int64) map[string]any {
	api := apiBase + "/orgs/" + login
	return map[string]any{
		"login":              login,
		"id":                 id,
		"node_id":            NodeID("Organization", id),
		"url":                api,
		"repos_url":          api + "/repos",
		"events_url":         api + "/events",
		"hooks_url":          api + "/hooks",
		"issues_url":         api + "/issues",
		"members_url":        api + "/members{/member}",
		"public_members_url": api + "/public_members{/member}",
		"avatar_url":         avatarURL(id),
		"description":        "The " + login + " organization.",
	}
}

func enterpriseObject() map[string]any {
	return map[string]any{
		"id": 1_234, "slug": "octo-enterprise", "name": "Octo Enterprise", "node_id": NodeID("Enterprise", 1_234),
		"avatar_url": "https://avatars.githubusercontent.com/b/1234?v=4", "description": nil,
		"website_url": nil, "html_url": webBase + "/enterprises/octo-enterprise",
		"created_at": "2019-05-01T12:00:00Z", "updated_at": "2026-01-01T12:00:00Z",
	}
}

func avatarURL(id int64) string {
	return "https://avatars.githubusercontent.com/u/" + strconv.FormatInt(id, 10) + "?v=4"
}

func stepName(i, n int) string {
	switch {
	case i == 1:
		return "Set up job"
	case i == n:
		return "Complete job"
	case i == 2:
		return "Run actions/checkout@v4"
	case i == n-1:
		return "Post Run actions/checkout@v4"
	default:
		return "Run make test-" + strconv.Itoa(i)
	}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// mustJSON marshals v like GitHub: no HTML escaping, no trailing newline.
func mustJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("webhooktest: " + err.Error()) // only maps of plain values: cannot fail
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
