package fakegithub

import (
	"fmt"
	"net/http"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// appCreated is the creation time the fake reports for its App and installation.
var appCreated = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

var appPermissions = map[string]string{
	"actions":                          "read",
	"administration":                   "write",
	"metadata":                         "read",
	"organization_self_hosted_runners": "write",
}

// getApp: GET /app (App JWT).
func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	owner := webhooktest.UserObject("runner-manager", 9000001, "Organization")
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                  s.opts.AppID,
		"slug":                "runner-manager-fake",
		"node_id":             webhooktest.NodeID("Integration", s.opts.AppID),
		"client_id":           fmt.Sprintf("Iv1.fake%08d", s.opts.AppID),
		"owner":               owner,
		"name":                "runner-manager (fake)",
		"description":         "GitHub App of the runner-manager fake GitHub",
		"external_url":        "https://github.com/runner-manager/runner-manager",
		"html_url":            webBase + "/apps/runner-manager-fake",
		"created_at":          ts(appCreated),
		"updated_at":          ts(appCreated),
		"permissions":         appPermissions,
		"events":              []string{"workflow_job"},
		"installations_count": max(len(s.opts.Installations), 1),
	})
}

// getInstallation: GET /orgs/{org}/installation and /repos/{owner}/{repo}/installation
// (App JWT). The App is installed on the accounts of Options.Installations, or
// on every account when it is empty.
func (s *Server) getInstallation(w http.ResponseWriter, r *http.Request) {
	login := r.PathValue("org")
	if login == "" {
		login = r.PathValue("owner")
	}
	id, installed := s.installationOf(login)
	if !installed {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.mu.Lock()
	o := s.orgLocked(login)
	account := webhooktest.UserObject(o.login, o.id, "Organization")
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                        id,
		"account":                   account,
		"repository_selection":      "all",
		"access_tokens_url":         fmt.Sprintf("%s/app/installations/%d/access_tokens", baseURL(r), id),
		"repositories_url":          baseURL(r) + "/installation/repositories",
		"html_url":                  fmt.Sprintf("%s/organizations/%s/settings/installations/%d", webBase, o.login, id),
		"app_id":                    s.opts.AppID,
		"app_slug":                  "runner-manager-fake",
		"target_id":                 o.id,
		"target_type":               "Organization",
		"permissions":               appPermissions,
		"events":                    []string{"workflow_job"},
		"created_at":                ts(appCreated),
		"updated_at":                ts(appCreated),
		"single_file_name":          nil,
		"has_multiple_single_files": false,
		"single_file_paths":         []string{},
		"suspended_by":              nil,
		"suspended_at":              nil,
	})
}
