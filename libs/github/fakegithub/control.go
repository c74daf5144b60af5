package fakegithub

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/webhooktest"
)

// Faults are the failures the fake injects. All are off by default;
// probabilities are in [0, 1] and drawn from the seeded generator.
type Faults struct {
	// Drop: a webhook is not sent and is recorded as a failed delivery
	// ("failed to connect"), as when the receiver is unreachable; it can be redelivered.
	Drop float64 `json:"drop"`
	// Lose: a webhook is neither sent nor recorded (lost on GitHub's side).
	Lose float64 `json:"lose"`
	// LoseActions, when set, limits Lose to the workflow_job webhooks of
	// these actions (e.g. in_progress and completed, whose loss the health
	// checks heal; a lost "queued", redeliveries included, is a job nothing
	// can see).
	LoseActions []string `json:"lose_actions"`
	// Duplicate: a webhook is sent twice with the same X-GitHub-Delivery.
	Duplicate float64 `json:"duplicate"`
	// Reorder: a webhook is held back and sent after the next one.
	Reorder float64 `json:"reorder"`
	// DelayMS delays every webhook by that many milliseconds.
	DelayMS int `json:"delay_ms"`
	// API5xx: an API call fails with 500, 502 or 503.
	API5xx float64 `json:"api_5xx"`
	// APIRateLimit: an API call starts a rate-limited window of
	// APIRateLimitSeconds (default 1) in which every call is answered 403 or 429
	// with X-RateLimit-Remaining: 0, X-RateLimit-Reset and Retry-After.
	APIRateLimit        float64 `json:"api_rate_limit"`
	APIRateLimitSeconds int     `json:"api_rate_limit_seconds"`
	// DispatchAfterList models the race between a manager's runner list and
	// GitHub's job assignment: while it is set, queued jobs are assigned to
	// no runner; the next unfiltered runner list served clears it and, right
	// after its response (which shows the runners idle), assigns the queued
	// jobs to idle matching runners, which are busy from then on (a delete of
	// their registration is refused, 422, as on GitHub). One-shot: counted
	// as fault "dispatch_after_list".
	DispatchAfterList bool `json:"dispatch_after_list"`
	// APIBudgetSeconds, when set, starts a rate-limit window of that many
	// seconds with only APIBudgetRemaining calls left in it (a budget spent
	// by another tool of the same installation): the calls answer
	// X-RateLimit-Remaining counting down from there, then 403 with
	// X-RateLimit-Remaining: 0 until the window resets to the full
	// RateLimitPerHour. Applied when the faults are set.
	APIBudgetSeconds   int `json:"api_budget_seconds"`
	APIBudgetRemaining int `json:"api_budget_remaining"`
}

// loses tells whether the Lose fault applies to a webhook of action.
func (f Faults) loses(action string) bool {
	return len(f.LoseActions) == 0 || slices.Contains(f.LoseActions, action)
}

func (f Faults) validate() error {
	for name, p := range map[string]float64{"drop": f.Drop, "lose": f.Lose, "duplicate": f.Duplicate, "reorder": f.Reorder, "api_5xx": f.API5xx, "api_rate_limit": f.APIRateLimit} {
		if p < 0 || p > 1 {
			return fmt.Errorf("fault %s: probability %v not in [0, 1]", name, p)
		}
	}
	for _, a := range f.LoseActions {
		switch a {
		case webhooktest.ActionQueued, webhooktest.ActionWaiting, webhooktest.ActionInProgress, webhooktest.ActionCompleted:
		default:
			return fmt.Errorf("fault lose_actions: %q is no workflow_job action", a)
		}
	}
	if f.DelayMS < 0 || f.APIRateLimitSeconds < 0 || f.APIBudgetSeconds < 0 || f.APIBudgetRemaining < 0 {
		return errors.New("faults: negative delay_ms, api_rate_limit_seconds, api_budget_seconds or api_budget_remaining")
	}
	return nil
}

// SetFaults replaces the injected faults; the zero Faults turns them all off
// (and ends a rate-limited window).
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	f.LoseActions = slices.Clone(f.LoseActions)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	if f.APIRateLimit == 0 {
		s.rlUntil = s.opts.Now().Add(-1)
	}
	if f.APIBudgetSeconds > 0 {
		s.budgetReset = s.opts.Now().Truncate(time.Second).Add(time.Duration(f.APIBudgetSeconds) * time.Second)
		s.budgetUsed = max(s.opts.RateLimitPerHour-f.APIBudgetRemaining, 0)
		s.stats.faults["api_budget"]++
	}
	return nil
}

// Faults returns the faults in force.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Stats are counters of the fake's activity.
type Stats struct {
	// APICalls counts API calls (authenticated or not) per route template,
	// e.g. "GET /orgs/{org}/actions/runners".
	APICalls map[string]int64 `json:"api_calls"`
	// Jobs counts jobs per status (queued, in_progress, completed).
	Jobs map[string]int `json:"jobs"`
	// WebhooksSent counts deliveries answered 2xx, WebhooksFailed the others
	// (including dropped ones), WebhooksDropped those dropped or lost by a fault.
	WebhooksSent    int64 `json:"webhooks_sent"`
	WebhooksFailed  int64 `json:"webhooks_failed"`
	WebhooksDropped int64 `json:"webhooks_dropped"`
	// WebhooksPending counts the webhooks not sent yet: waiting, held back by
	// the reorder fault, or in flight.
	WebhooksPending int `json:"webhooks_pending"`
	// Faults counts injected faults per kind.
	Faults map[string]int64 `json:"faults"`
	// RunnersRegistered is the number of current registrations, RunnersOnline of
	// those connected, RunnersBusy of those running a job; RunnersTotal counts
	// every registration ever made.
	RunnersRegistered int   `json:"runners_registered"`
	RunnersOnline     int   `json:"runners_online"`
	RunnersBusy       int   `json:"runners_busy"`
	RunnersTotal      int64 `json:"runners_total"`
	// InstallationCalls counts the calls made with installation tokens, by
	// installation id and account (the organization or repository owner of
	// the path, lower-case; "" for a path of neither). ForeignTokenCalls
	// counts the calls refused because the token's installation is not the
	// account's.
	InstallationCalls map[string]map[string]int64 `json:"installation_calls"`
	ForeignTokenCalls int64                       `json:"foreign_token_calls"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		APICalls:        map[string]int64{},
		Jobs:            map[string]int{StatusQueued: 0, StatusInProgress: 0, StatusCompleted: 0},
		WebhooksSent:    s.stats.webhooksSent,
		WebhooksFailed:  s.stats.webhooksFailed,
		WebhooksDropped: s.stats.webhooksDropped,
		WebhooksPending: len(s.outbox) + s.sending,
		Faults:          map[string]int64{},
		RunnersTotal:    s.stats.runnersTotal,
	}
	for k, v := range s.stats.apiCalls {
		st.APICalls[k] = v
	}
	st.InstallationCalls = map[string]map[string]int64{}
	for id, m := range s.stats.installCalls {
		st.InstallationCalls[strconv.FormatInt(id, 10)] = maps.Clone(m)
	}
	st.ForeignTokenCalls = s.stats.foreignCalls
	for k, v := range s.stats.faults {
		st.Faults[k] = v
	}
	for _, j := range s.jobs {
		st.Jobs[j.status]++
	}
	for _, rn := range s.runners {
		st.RunnersRegistered++
		if rn.online() {
			st.RunnersOnline++
		}
		if rn.busy {
			st.RunnersBusy++
		}
	}
	return st
}

// Runner is a registration as the control API shows it.
type Runner struct {
	ID            int64    `json:"id"`
	Name          string   `json:"name"`
	Owner         string   `json:"owner"`
	Repo          string   `json:"repo,omitempty"`
	RunnerGroupID int64    `json:"runner_group_id"`
	Labels        []string `json:"labels"`
	Status        string   `json:"status"`
	Busy          bool     `json:"busy"`
	JobID         int64    `json:"job_id,omitempty"`
}

// Runners returns the current registrations, oldest first.
func (s *Server) Runners() []Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Runner{}
	for _, rn := range s.sortedRunnersLocked(func(*runner) bool { return true }) {
		out = append(out, Runner{ID: rn.id, Name: rn.name, Owner: rn.org, Repo: rn.repo, RunnerGroupID: rn.groupID,
			Labels: slices.Clone(rn.labels), Status: rn.status(), Busy: rn.busy, JobID: rn.jobID})
	}
	return out
}

// RunnerByName returns the registration with that name, if any.
func (s *Server) RunnerByName(name string) (Runner, bool) {
	for _, rn := range s.Runners() {
		if rn.Name == name {
			return rn, true
		}
	}
	return Runner{}, false
}

// DisconnectRunner closes the connection of every runner of that name and
// refuses their reconnection: they go offline, as when their machine dies. A job
// they were running fails.
func (s *Server) DisconnectRunner(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for _, rn := range s.runners {
		if rn.name == name {
			found = true
			rn.disconnected = true
			if rn.conn != nil {
				rn.conn.close()
			}
		}
	}
	if !found {
		return fmt.Errorf("disconnect runner %s: %w", name, ErrNotFound)
	}
	return nil
}

func ctlError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func (s *Server) ctlQueueJob(w http.ResponseWriter, r *http.Request) {
	var spec JobSpec
	if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
		ctlError(w, http.StatusBadRequest, fmt.Errorf("decode job: %w", err))
		return
	}
	spec.Duration = 0
	j, err := s.QueueJob(spec)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

func (s *Server) ctlListJobs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Jobs(r.URL.Query().Get("status")))
}

func (s *Server) ctlGetJob(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	j, ok := s.Job(id)
	if !ok {
		ctlError(w, http.StatusNotFound, ErrNotFound)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) ctlCancelJob(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	j, err := s.CancelJob(id)
	if err != nil {
		ctlError(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) ctlStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) ctlGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

func (s *Server) ctlSetFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		ctlError(w, http.StatusBadRequest, fmt.Errorf("decode faults: %w", err))
		return
	}
	if err := s.SetFaults(f); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) ctlListRunners(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Runners())
}

func (s *Server) ctlDisconnect(w http.ResponseWriter, r *http.Request) {
	if err := s.DisconnectRunner(r.PathValue("name")); err != nil {
		ctlError(w, http.StatusNotFound, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ctlRepo(w http.ResponseWriter, r *http.Request) {
	owner, repo := r.PathValue("owner"), r.PathValue("repo")
	writeJSON(w, http.StatusOK, map[string]any{"id": s.Repository(owner, repo), "full_name": owner + "/" + repo})
}

func (s *Server) ctlPing(w http.ResponseWriter, _ *http.Request) {
	s.SendPing()
	w.WriteHeader(http.StatusAccepted)
}

// ParseLabelSets parses "a,b,c;d,e" into label sets (the --simulate-labels form).
func ParseLabelSets(v string) [][]string {
	var sets [][]string
	for _, set := range strings.Split(v, ";") {
		var labels []string
		for _, l := range strings.Split(set, ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		if len(labels) > 0 {
			sets = append(sets, labels)
		}
	}
	return sets
}
