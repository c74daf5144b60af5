package fakegithub

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub/runnerapi"
)

// RunnerVersion is the version the fake reports for runners that have connected.
const RunnerVersion = "2.330.0"

// scope is the owner of a runner: an organization, or a repository.
type scope struct {
	org  string // lower-case login
	repo string // "" for organization runners
}

func scopeOf(r *http.Request) scope {
	if org := r.PathValue("org"); org != "" {
		return scope{org: strings.ToLower(org)}
	}
	return scope{org: strings.ToLower(r.PathValue("owner")), repo: strings.ToLower(r.PathValue("repo"))}
}

func (sc scope) has(rn *runner) bool {
	return rn.org == sc.org && strings.EqualFold(rn.repo, sc.repo)
}

var readOnlyLabels = []string{"self-hosted", "linux", "x64", "arm64", "windows", "macos", "x86", "arm"}

func (s *Server) runnerJSON(rn *runner) map[string]any {
	labels := make([]map[string]any, 0, len(rn.labels))
	for i, l := range rn.labels {
		typ := "custom"
		if slices.Contains(readOnlyLabels, strings.ToLower(l)) {
			typ = "read-only"
		}
		labels = append(labels, map[string]any{"id": i + 1, "name": l, "type": typ})
	}
	var version any
	if rn.connected {
		version = RunnerVersion
	}
	return map[string]any{
		"id":              rn.id,
		"runner_group_id": rn.groupID,
		"name":            rn.name,
		"os":              "Linux",
		"status":          rn.status(),
		"busy":            rn.busy,
		"ephemeral":       true,
		"labels":          labels,
		"version":         version,
	}
}

type jitRequest struct {
	Name          *string  `json:"name"`
	RunnerGroupID *int64   `json:"runner_group_id"`
	Labels        []string `json:"labels"`
	WorkFolder    string   `json:"work_folder"`
}

// generateJITConfig: POST /orgs/{org}|/repos/{owner}/{repo} .../actions/runners/generate-jitconfig.
func (s *Server) generateJITConfig(w http.ResponseWriter, r *http.Request) {
	var req jitRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeValidation(w, "Problems parsing JSON")
		return
	}
	switch {
	case req.Name == nil || *req.Name == "":
		writeValidation(w, "Invalid request.\n\n\"name\" wasn't supplied.")
		return
	case req.RunnerGroupID == nil:
		writeValidation(w, "Invalid request.\n\n\"runner_group_id\" wasn't supplied.")
		return
	case len(req.Labels) == 0:
		writeValidation(w, "Invalid request.\n\n\"labels\" wasn't supplied.")
		return
	case len(req.Labels) > 100:
		writeValidation(w, "Invalid request.\n\nFor 'properties/labels', array exceeds maximum number of items.")
		return
	case len(*req.Name) > 64:
		writeValidation(w, "Invalid request.\n\nRunner name is too long (maximum is 64 characters).")
		return
	}
	sc := scopeOf(r)
	secretBytes := make([]byte, 24)
	_, _ = rand.Read(secretBytes)

	s.mu.Lock()
	defer s.mu.Unlock()
	groupID := DefaultRunnerGroupID
	if sc.repo == "" {
		o := s.orgLocked(r.PathValue("org"))
		if o.groups[*req.RunnerGroupID] == nil {
			writeError(w, http.StatusNotFound, "Not Found")
			return
		}
		groupID = *req.RunnerGroupID
	} else {
		s.repoLocked(r.PathValue("owner"), r.PathValue("repo"))
	}
	for _, rn := range s.runners {
		if sc.has(rn) && strings.EqualFold(rn.name, *req.Name) {
			writeErrorDoc(w, http.StatusConflict, "Already exists - A resource with this name already exists.", docsURL+"/actions/self-hosted-runners#create-configuration-for-a-just-in-time-runner-for-an-organization")
			return
		}
	}
	rn := &runner{
		id:      s.newIDLocked(),
		name:    *req.Name,
		org:     sc.org,
		repo:    sc.repo,
		groupID: groupID,
		labels:  slices.Clone(req.Labels),
		secret:  hex.EncodeToString(secretBytes),
		created: s.opts.Now(),
	}
	s.runners[rn.id] = rn
	s.stats.runnersTotal++
	cfg := runnerapi.JITConfig{RunnerID: rn.id, RunnerName: rn.name, Labels: rn.labels, Secret: rn.secret, URL: cmp.Or(s.opts.PublicURL, baseURL(r))}
	s.log.Info("runner registered", "runner", rn.name, "id", rn.id, "group_id", groupID)
	writeJSON(w, http.StatusCreated, map[string]any{"runner": s.runnerJSON(rn), "encoded_jit_config": cfg.Encode()})
}

func writeValidation(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": msg, "documentation_url": docsURL, "status": "422"})
}

// page reads per_page (default 30, at most 100) and page (default 1).
func page(r *http.Request) (perPage, pageNo int) {
	perPage, pageNo = 30, 1
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		pageNo = v
	}
	return perPage, pageNo
}

// paginate returns the items of the requested page and sets GitHub's Link header.
func paginate[T any](w http.ResponseWriter, r *http.Request, items []T) []T {
	perPage, pageNo := page(r)
	last := max(1, (len(items)+perPage-1)/perPage)
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		return fmt.Sprintf("<%s%s?%s>; rel=%q", baseURL(r), r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if pageNo > 1 {
		links = append(links, link(min(pageNo-1, last), "prev"))
	}
	if pageNo < last {
		links = append(links, link(pageNo+1, "next"), link(last, "last"))
	}
	if pageNo > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	start := min((pageNo-1)*perPage, len(items))
	return items[start:min(start+perPage, len(items))]
}

func (s *Server) sortedRunnersLocked(keep func(*runner) bool) []*runner {
	var out []*runner
	for _, rn := range s.runners {
		if keep(rn) {
			out = append(out, rn)
		}
	}
	slices.SortFunc(out, func(a, b *runner) int { return int(a.id - b.id) })
	return out
}

// listRunners: GET .../actions/runners (name filter, pagination).
func (s *Server) listRunners(w http.ResponseWriter, r *http.Request) {
	sc := scopeOf(r)
	name := r.URL.Query().Get("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.sortedRunnersLocked(func(rn *runner) bool {
		return sc.has(rn) && (name == "" || rn.name == name)
	})
	s.writeRunnerList(w, r, all)
	if name == "" && s.faults.DispatchAfterList {
		// The list said idle; GitHub hands out jobs the moment after.
		s.faults.DispatchAfterList = false
		s.stats.faults["dispatch_after_list"]++
		s.dispatchAfterListLocked()
	}
}

func (s *Server) writeRunnerList(w http.ResponseWriter, r *http.Request, all []*runner) {
	items := []map[string]any{}
	for _, rn := range paginate(w, r, all) {
		items = append(items, s.runnerJSON(rn))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(all), "runners": items})
}

func (s *Server) runnerInScopeLocked(r *http.Request) *runner {
	id, err := strconv.ParseInt(r.PathValue("runner_id"), 10, 64)
	if err != nil {
		return nil
	}
	rn := s.runners[id]
	if rn == nil || !scopeOf(r).has(rn) {
		return nil
	}
	return rn
}

// getRunner: GET .../actions/runners/{runner_id}.
func (s *Server) getRunner(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runnerInScopeLocked(r)
	if rn == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.runnerJSON(rn))
}

// runnerLabels: GET .../actions/runners/{runner_id}/labels.
func (s *Server) runnerLabels(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runnerInScopeLocked(r)
	if rn == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	labels := s.runnerJSON(rn)["labels"].([]map[string]any)
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(labels), "labels": labels})
}

// deleteRunner: DELETE .../actions/runners/{runner_id}. A busy runner cannot be
// removed (422), like on GitHub; a connected idle one is told to exit.
func (s *Server) deleteRunner(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runnerInScopeLocked(r)
	if rn == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if rn.busy {
		writeValidation(w, fmt.Sprintf("Bad request - Runner %q is still running a job\"", rn.name))
		return
	}
	if rn.jobID != 0 { // assigned, not yet acknowledged: give the job back
		if j := s.jobs[rn.jobID]; j != nil && j.assignedTo == rn.id {
			j.assignedTo = 0
		}
	}
	s.removeRunnerLocked(rn, true)
	s.dispatchLocked()
	w.WriteHeader(http.StatusNoContent)
}

// removeRunnerLocked deletes a registration; notify tells a connected runner.
func (s *Server) removeRunnerLocked(rn *runner, notify bool) {
	delete(s.runners, rn.id)
	s.gone[rn.id] = true
	if rn.conn != nil {
		if notify {
			rn.conn.send(runnerapi.Message{Type: runnerapi.TypeRemoved})
		}
		rn.conn.close()
		rn.conn = nil
	}
	s.log.Info("runner removed", "runner", rn.name, "id", rn.id)
}

// runnerConn is one open connect stream.
type runnerConn struct {
	msgs chan runnerapi.Message
	done chan struct{}
	once sync.Once
}

func (c *runnerConn) send(m runnerapi.Message) {
	select {
	case c.msgs <- m:
	default: // a runner is sent at most a few messages; never block under the lock
	}
}

func (c *runnerConn) close() { c.once.Do(func() { close(c.done) }) }

func (s *Server) runnerAuthLocked(w http.ResponseWriter, r *http.Request) *runner {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad runner id", http.StatusBadRequest)
		return nil
	}
	rn := s.runners[id]
	if rn == nil {
		if s.gone[id] {
			http.Error(w, "runner registration is gone", http.StatusGone)
		} else {
			http.Error(w, "unknown runner", http.StatusNotFound)
		}
		return nil
	}
	secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if subtle.ConstantTimeCompare([]byte(secret), []byte(rn.secret)) != 1 {
		http.Error(w, "bad runner credentials", http.StatusUnauthorized)
		return nil
	}
	return rn
}

// runnerConnect: GET /_runner/{id}/connect, the runner's session stream.
func (s *Server) runnerConnect(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rn := s.runnerAuthLocked(w, r)
	if rn == nil {
		s.mu.Unlock()
		return
	}
	switch {
	case rn.disconnected:
		s.mu.Unlock()
		http.Error(w, "runner was disconnected", http.StatusForbidden)
		return
	case rn.conn != nil:
		s.mu.Unlock()
		http.Error(w, "runner already connected", http.StatusConflict)
		return
	case s.closed:
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	conn := &runnerConn{msgs: make(chan runnerapi.Message, 8), done: make(chan struct{})}
	rn.conn = conn
	rn.connected = true
	runnerID := rn.id
	s.log.Info("runner connected", "runner", rn.name, "id", rn.id)
	s.dispatchLocked()
	s.mu.Unlock()

	defer s.runnerGone(runnerID, conn)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	write := func(m runnerapi.Message) bool {
		if enc.Encode(m) != nil || rc.Flush() != nil {
			return false
		}
		if m.Type == runnerapi.TypeJob {
			s.jobAcknowledged(runnerID, m.Job.ID)
		}
		return true
	}
	if !write(runnerapi.Message{Type: runnerapi.TypeHello}) {
		return
	}
	ping := time.NewTicker(s.opts.RunnerPingInterval)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closeCh:
			return
		case <-conn.done:
			for { // flush what was queued before the close
				select {
				case m := <-conn.msgs:
					if !write(m) {
						return
					}
				default:
					return
				}
			}
		case m := <-conn.msgs:
			if !write(m) {
				return
			}
		case <-ping.C:
			if !write(runnerapi.Message{Type: runnerapi.TypePing}) {
				return
			}
		}
	}
}

// runnerGone handles the end of a connect stream: the runner is offline; a job it
// had not acknowledged goes back to the queue; a job it was running fails, and the
// ephemeral runner is removed, as GitHub does when it loses a runner.
func (s *Server) runnerGone(runnerID int64, conn *runnerConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runners[runnerID]
	if rn == nil || rn.conn != conn {
		return
	}
	rn.conn = nil
	s.log.Info("runner offline", "runner", rn.name, "id", rn.id)
	if rn.jobID == 0 {
		return
	}
	j := s.jobs[rn.jobID]
	switch {
	case j == nil:
	case j.status == StatusQueued:
		j.assignedTo = 0
		rn.jobID = 0
		s.dispatchLocked()
	case j.status == StatusInProgress:
		s.completeJobLocked(j, ConclusionFailure)
		s.removeRunnerLocked(rn, false)
		s.dispatchLocked()
	default: // cancelled before the runner received it
		rn.jobID = 0
		rn.busy = false
	}
}

// jobAcknowledged: the runner received the job; it is now in progress.
func (s *Server) jobAcknowledged(runnerID, jobID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn, j := s.runners[runnerID], s.jobs[jobID]
	if rn == nil || j == nil {
		return
	}
	s.acknowledgeLocked(rn, j)
}

// acknowledgeLocked moves the job the runner received to in progress, or,
// when it was cancelled meanwhile, tells the runner so and removes it.
func (s *Server) acknowledgeLocked(rn *runner, j *job) {
	jobID := j.id
	if j.status != StatusQueued || j.assignedTo != rn.id {
		// cancelled meanwhile: tell the runner; its registration is used up
		if rn.conn != nil {
			rn.conn.send(runnerapi.Message{Type: runnerapi.TypeCancel, Job: &runnerapi.Job{ID: jobID}})
		}
		rn.busy = false
		rn.jobID = 0
		s.removeRunnerLocked(rn, false)
		return
	}
	rn.busy = true
	j.status = StatusInProgress
	delete(s.queued, j.id)
	j.started = s.opts.Now()
	j.runnerID, j.runnerName, j.groupID = rn.id, rn.name, rn.groupID
	j.groupName = s.groupNameLocked(rn)
	s.enqueueJobEventLocked(j)
}

func (s *Server) groupNameLocked(rn *runner) string {
	if o := s.orgs[rn.org]; o != nil && rn.repo == "" {
		if g := o.groups[rn.groupID]; g != nil {
			return g.name
		}
	}
	return "Default"
}

// runnerComplete: POST /_runner/{id}/jobs/{job_id}/complete.
func (s *Server) runnerComplete(w http.ResponseWriter, r *http.Request) {
	var c runnerapi.Completion
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		http.Error(w, "bad completion", http.StatusBadRequest)
		return
	}
	switch c.Conclusion {
	case "":
		c.Conclusion = ConclusionSuccess
	case ConclusionSuccess, ConclusionFailure, ConclusionCancelled:
	default:
		http.Error(w, "bad conclusion", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := s.runnerAuthLocked(w, r)
	if rn == nil {
		return
	}
	jobID, _ := strconv.ParseInt(r.PathValue("job_id"), 10, 64)
	j := s.jobs[jobID]
	if j == nil || rn.jobID != jobID {
		http.Error(w, "not this runner's job", http.StatusConflict)
		return
	}
	if j.status == StatusQueued && j.assignedTo == rn.id {
		// A short job can end before the connect stream has marked it
		// acknowledged: its completion proves the runner received it.
		s.acknowledgeLocked(rn, j)
	}
	if j.status == StatusInProgress {
		s.completeJobLocked(j, c.Conclusion)
	}
	rn.busy = false
	rn.jobID = 0
	s.removeRunnerLocked(rn, false)
	s.dispatchLocked()
	w.WriteHeader(http.StatusNoContent)
}

// dispatchLocked assigns queued jobs, oldest first, to idle online runners whose
// labels contain the job's labels and whose group the job's repository may use.
func (s *Server) dispatchLocked() {
	if s.faults.DispatchAfterList {
		return
	}
	s.assignLocked(false)
}

// dispatchAfterListLocked assigns the jobs held by the DispatchAfterList
// fault; the runners that get one are busy at once.
func (s *Server) dispatchAfterListLocked() { s.assignLocked(true) }

// assignLocked assigns queued jobs to idle runners; busyNow marks a runner
// busy on assignment rather than when it acknowledges the job.
func (s *Server) assignLocked(busyNow bool) {
	if s.closed {
		return
	}
	var queued []*job
	for _, j := range s.queued {
		if j.assignedTo == 0 {
			queued = append(queued, j)
		}
	}
	if len(queued) == 0 {
		return
	}
	slices.SortFunc(queued, func(a, b *job) int { return int(a.id - b.id) })
	idle := s.sortedRunnersLocked(func(rn *runner) bool { return rn.online() && !rn.busy && rn.jobID == 0 })
	for _, j := range queued {
		for i, rn := range idle {
			if rn == nil || !s.canRunLocked(rn, j) {
				continue
			}
			idle[i] = nil
			rn.jobID = j.id
			j.assignedTo = rn.id
			if busyNow {
				// Taken at once: GitHub refuses to remove the runner from now on.
				rn.busy = true
			}
			rn.conn.send(runnerapi.Message{Type: runnerapi.TypeJob, Job: &runnerapi.Job{
				ID: j.id, Owner: j.repo.owner, Repo: j.repo.name, Labels: j.labels, DurationMS: j.duration.Milliseconds(),
			}})
			break
		}
	}
}

func (s *Server) canRunLocked(rn *runner, j *job) bool {
	if !labelsMatch(rn.labels, j.labels) || !strings.EqualFold(rn.org, j.repo.owner) {
		return false
	}
	if rn.repo != "" {
		return strings.EqualFold(rn.repo, j.repo.name)
	}
	o := s.orgs[rn.org]
	if o == nil {
		return false
	}
	g := o.groups[rn.groupID]
	return g != nil && g.allows(j.repo)
}

// RunnerDownloads are the runner packages of RunnerVersion that the fake
// offers (GET .../actions/runners/downloads), as GitHub lists them. The
// checksum of each is the SHA-256 of its file name: the fake serves no
// archives, so a test can compute it (RunnerDownloadChecksum).
func RunnerDownloads() []map[string]any {
	var out []map[string]any
	for _, p := range []struct{ os, arch, ext string }{
		{"osx", "x64", "tar.gz"}, {"osx", "arm64", "tar.gz"},
		{"linux", "x64", "tar.gz"}, {"linux", "arm", "tar.gz"}, {"linux", "arm64", "tar.gz"},
		{"win", "x64", "zip"}, {"win", "arm64", "zip"},
	} {
		file := fmt.Sprintf("actions-runner-%s-%s-%s.%s", p.os, p.arch, RunnerVersion, p.ext)
		out = append(out, map[string]any{
			"os":              p.os,
			"architecture":    p.arch,
			"download_url":    "https://github.com/actions/runner/releases/download/v" + RunnerVersion + "/" + file,
			"filename":        file,
			"sha256_checksum": RunnerDownloadChecksum(file),
		})
	}
	return out
}

// RunnerDownloadChecksum is the checksum the fake gives the package file.
func RunnerDownloadChecksum(file string) string {
	sum := sha256.Sum256([]byte(file))
	return hex.EncodeToString(sum[:])
}

func (s *Server) listRunnerDownloads(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, RunnerDownloads())
}
