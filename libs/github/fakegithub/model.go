package fakegithub

import (
	"slices"
	"strings"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
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

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

const webBase = "https://github.com"

// repoObject is the descriptor webhooktest builds repository objects from.
func (s *Server) repoObject(r *repository) webhooktest.Repo {
	return webhooktest.Repo{
		Owner: r.owner, OwnerID: s.orgLocked(r.owner).id, Name: r.name, ID: r.id,
		Private: r.private, CreatedAt: r.created,
	}
}
