package fakegithub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

func (s *Server) groupJSON(r *http.Request, o *org, g *runnerGroup) map[string]any {
	base := fmt.Sprintf("%s/orgs/%s/actions/runner-groups/%d", baseURL(r), o.login, g.id)
	m := map[string]any{
		"id":                              g.id,
		"name":                            g.name,
		"visibility":                      g.visibility,
		"default":                         g.isDefault,
		"runners_url":                     base + "/runners",
		"hosted_runners_url":              base + "/hosted-runners",
		"inherited":                       false,
		"allows_public_repositories":      g.allowsPublic,
		"restricted_to_workflows":         g.restrictedToWorkflows,
		"selected_workflows":              append([]string{}, g.selectedWorkflows...),
		"workflow_restrictions_read_only": false,
	}
	if g.networkConfigID != nil {
		m["network_configuration_id"] = *g.networkConfigID
	}
	if g.visibility == VisibilitySelected {
		m["selected_repositories_url"] = base + "/repositories"
	}
	return m
}

func (s *Server) groupLocked(w http.ResponseWriter, r *http.Request) (*org, *runnerGroup) {
	o := s.orgLocked(r.PathValue("org"))
	id, _ := strconv.ParseInt(r.PathValue("runner_group_id"), 10, 64)
	g := o.groups[id]
	if g == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return nil, nil
	}
	return o, g
}

func sortedGroups(o *org) []*runnerGroup {
	var gs []*runnerGroup
	for _, g := range o.groups {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *runnerGroup) int { return int(a.id - b.id) })
	return gs
}

// listGroups: GET /orgs/{org}/actions/runner-groups (visible_to_repository, pagination).
func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orgLocked(r.PathValue("org"))
	gs := sortedGroups(o)
	if name := r.URL.Query().Get("visible_to_repository"); name != "" {
		repo := s.repoLocked(o.login, name)
		gs = slices.DeleteFunc(gs, func(g *runnerGroup) bool { return !g.allows(repo) })
	}
	items := []map[string]any{}
	for _, g := range paginate(w, r, gs) {
		items = append(items, s.groupJSON(r, o, g))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(gs), "runner_groups": items})
}

type groupRequest struct {
	Name                     *string  `json:"name"`
	Visibility               *string  `json:"visibility"`
	SelectedRepositoryIDs    []int64  `json:"selected_repository_ids"`
	Runners                  []int64  `json:"runners"`
	AllowsPublicRepositories *bool    `json:"allows_public_repositories"`
	RestrictedToWorkflows    *bool    `json:"restricted_to_workflows"`
	SelectedWorkflows        []string `json:"selected_workflows"`
	NetworkConfigurationID   *string  `json:"network_configuration_id"`
}

func decodeGroup(w http.ResponseWriter, r *http.Request) (groupRequest, bool) {
	var req groupRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeValidation(w, "Problems parsing JSON")
		return req, false
	}
	if req.Name == nil || strings.TrimSpace(*req.Name) == "" {
		writeValidation(w, "Invalid request.\n\n\"name\" wasn't supplied.")
		return req, false
	}
	if v := req.Visibility; v != nil && *v != VisibilityAll && *v != VisibilitySelected && *v != VisibilityPrivate {
		writeValidation(w, fmt.Sprintf("Invalid request.\n\nFor 'properties/visibility', %q is not a member of [\"selected\", \"all\", \"private\"].", *v))
		return req, false
	}
	return req, true
}

func (s *Server) nameTakenLocked(o *org, name string, except int64) bool {
	for _, g := range o.groups {
		if g.id != except && strings.EqualFold(g.name, name) {
			return true
		}
	}
	return false
}

func (g *runnerGroup) apply(req groupRequest) {
	g.name = *req.Name
	if req.Visibility != nil {
		g.visibility = *req.Visibility
	}
	if req.AllowsPublicRepositories != nil {
		g.allowsPublic = *req.AllowsPublicRepositories
	}
	if req.RestrictedToWorkflows != nil {
		g.restrictedToWorkflows = *req.RestrictedToWorkflows
	}
	if req.SelectedWorkflows != nil {
		g.selectedWorkflows = slices.Clone(req.SelectedWorkflows)
	}
	if req.NetworkConfigurationID != nil {
		g.networkConfigID = req.NetworkConfigurationID
	}
}

// createGroup: POST /orgs/{org}/actions/runner-groups.
func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeGroup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orgLocked(r.PathValue("org"))
	if s.nameTakenLocked(o, *req.Name, 0) {
		writeValidation(w, "Validation Failed: Name already exists")
		return
	}
	g := &runnerGroup{id: s.newIDLocked(), visibility: VisibilityAll}
	g.apply(req)
	g.repoIDs = slices.Clone(req.SelectedRepositoryIDs)
	o.groups[g.id] = g
	for _, id := range req.Runners {
		if rn := s.runners[id]; rn != nil && rn.org == strings.ToLower(o.login) && rn.repo == "" {
			rn.groupID = g.id
		}
	}
	s.dispatchLocked()
	writeJSON(w, http.StatusCreated, s.groupJSON(r, o, g))
}

// getGroup: GET /orgs/{org}/actions/runner-groups/{runner_group_id}.
func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, g := s.groupLocked(w, r); g != nil {
		writeJSON(w, http.StatusOK, s.groupJSON(r, o, g))
	}
}

// updateGroup: PATCH /orgs/{org}/actions/runner-groups/{runner_group_id}.
func (s *Server) updateGroup(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeGroup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, g := s.groupLocked(w, r)
	if g == nil {
		return
	}
	if s.nameTakenLocked(o, *req.Name, g.id) {
		writeValidation(w, "Validation Failed: Name already exists")
		return
	}
	g.apply(req)
	s.dispatchLocked()
	writeJSON(w, http.StatusOK, s.groupJSON(r, o, g))
}

// deleteGroup: DELETE /orgs/{org}/actions/runner-groups/{runner_group_id}. Its
// runners move to the Default group, as on GitHub.
func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, g := s.groupLocked(w, r)
	if g == nil {
		return
	}
	if g.isDefault {
		writeValidation(w, "Validation Failed: The default runner group cannot be deleted")
		return
	}
	delete(o.groups, g.id)
	for _, rn := range s.runners {
		if rn.org == strings.ToLower(o.login) && rn.repo == "" && rn.groupID == g.id {
			rn.groupID = DefaultRunnerGroupID
		}
	}
	s.dispatchLocked()
	w.WriteHeader(http.StatusNoContent)
}

// listGroupRepos: GET .../runner-groups/{runner_group_id}/repositories.
func (s *Server) listGroupRepos(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, g := s.groupLocked(w, r)
	if g == nil {
		return
	}
	var repos []*repository
	for _, id := range g.repoIDs {
		if repo := s.repoByIDLocked(id); repo != nil {
			repos = append(repos, repo)
		}
	}
	items := []map[string]any{}
	for _, repo := range paginate(w, r, repos) {
		items = append(items, webhooktest.MinimalRepositoryObject(s.repoObject(repo)))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(repos), "repositories": items})
}

// setGroupRepos: PUT .../runner-groups/{runner_group_id}/repositories.
func (s *Server) setGroupRepos(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDs *[]int64 `json:"selected_repository_ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.IDs == nil {
		writeValidation(w, "Invalid request.\n\n\"selected_repository_ids\" wasn't supplied.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, g := s.groupLocked(w, r)
	if g == nil {
		return
	}
	g.repoIDs = slices.Compact(slices.Sorted(slices.Values(*req.IDs)))
	s.dispatchLocked()
	w.WriteHeader(http.StatusNoContent)
}

// addGroupRepo / removeGroupRepo: PUT|DELETE .../repositories/{repository_id}.
func (s *Server) addGroupRepo(w http.ResponseWriter, r *http.Request) { s.editGroupRepo(w, r, true) }

func (s *Server) removeGroupRepo(w http.ResponseWriter, r *http.Request) {
	s.editGroupRepo(w, r, false)
}

func (s *Server) editGroupRepo(w http.ResponseWriter, r *http.Request, add bool) {
	id, _ := strconv.ParseInt(r.PathValue("repository_id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, g := s.groupLocked(w, r)
	if g == nil {
		return
	}
	g.repoIDs = slices.DeleteFunc(g.repoIDs, func(x int64) bool { return x == id })
	if add {
		g.repoIDs = append(g.repoIDs, id)
		slices.Sort(g.repoIDs)
	}
	s.dispatchLocked()
	w.WriteHeader(http.StatusNoContent)
}

// listGroupRunners: GET .../runner-groups/{runner_group_id}/runners.
func (s *Server) listGroupRunners(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, g := s.groupLocked(w, r)
	if g == nil {
		return
	}
	login := strings.ToLower(o.login)
	all := s.sortedRunnersLocked(func(rn *runner) bool { return rn.org == login && rn.repo == "" && rn.groupID == g.id })
	s.writeRunnerList(w, r, all)
}

// setGroupRunners: PUT .../runner-groups/{runner_group_id}/runners.
func (s *Server) setGroupRunners(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Runners *[]int64 `json:"runners"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Runners == nil {
		writeValidation(w, "Invalid request.\n\n\"runners\" wasn't supplied.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, g := s.groupLocked(w, r)
	if g == nil {
		return
	}
	login := strings.ToLower(o.login)
	for _, rn := range s.runners {
		if rn.org != login || rn.repo != "" {
			continue
		}
		if slices.Contains(*req.Runners, rn.id) {
			rn.groupID = g.id
		} else if rn.groupID == g.id {
			rn.groupID = DefaultRunnerGroupID
		}
	}
	s.dispatchLocked()
	w.WriteHeader(http.StatusNoContent)
}
