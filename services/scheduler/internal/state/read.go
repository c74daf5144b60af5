package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func parseRunner(name string, h map[string]string) Runner {
	atoi := func(k string) int64 { n, _ := strconv.ParseInt(h[k], 10, 64); return n }
	var loc map[string]string
	if l := h["location"]; l != "" {
		_ = json.Unmarshal([]byte(l), &loc) // written by Created: a JSON object of strings
	}
	return Runner{
		Name:           name,
		Organization:   h["organization"],
		Repository:     h["repository"],
		Location:       loc,
		SpecHash:       h["spec_hash"],
		JobRunID:       atoi("job_run_id"),
		JobRepository:  h["job_repository"],
		JobWorkflow:    h["job_workflow"],
		DeleteFailures: int(atoi("delete_failures")),
		DeleteError:    h["delete_error"],
		Group:          h["group"],
		Backend:        h["backend"],
		State:          State(h["state"]),
		JobID:          atoi("job_id"),
		ForJob:         atoi("for_job"),
		InstanceID:     h["instance_id"],
		GitHubRunnerID: atoi("github_runner_id"),
		Attempt:        int(atoi("attempt")),
		CreatedAt:      fromMS(h["created_at"]),
		UpdatedAt:      fromMS(h["updated_at"]),
		StateSince:     fromMS(h["state_since"]),
	}
}

// Runner returns the record of the runner called name; false when it has none.
func (s *Store) Runner(ctx context.Context, name string) (Runner, bool, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.Runner(name)).Result()
	if err != nil {
		return Runner{}, false, fmt.Errorf("read runner %s: %w", name, err)
	}
	if len(h) == 0 {
		return Runner{}, false, nil
	}
	return parseRunner(name, h), true, nil
}

// Runners returns the records of every runner counted against group's limit,
// oldest first.
func (s *Store) Runners(ctx context.Context, group string) ([]Runner, error) {
	names, err := s.rdb.ZRange(ctx, s.keys.GroupRunners(group), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list runners of group %s: %w", group, err)
	}
	if len(names) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(names))
	for i, n := range names {
		cmds[i] = pipe.HGetAll(ctx, s.keys.Runner(n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read runners of group %s: %w", group, err)
	}
	out := make([]Runner, 0, len(names))
	for i, c := range cmds {
		if h := c.Val(); len(h) > 0 {
			out = append(out, parseRunner(names[i], h))
		}
	}
	return out, nil
}

// Job returns a job's record; false when it has none (never seen, or expired).
func (s *Store) Job(ctx context.Context, id int64) (Job, bool, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.Job(id)).Result()
	if err != nil {
		return Job{}, false, fmt.Errorf("read job %d: %w", id, err)
	}
	if len(h) == 0 {
		return Job{}, false, nil
	}
	return Job{
		ID:           id,
		Status:       JobStatus(h["status"]),
		Group:        h["group"],
		RunnerName:   h["runner_name"],
		QueuedAt:     fromMS(h["queued_at"]),
		InProgressAt: fromMS(h["in_progress_at"]),
		CompletedAt:  fromMS(h["completed_at"]),
	}, true, nil
}

// Demand is one job waiting for a runner.
type Demand struct {
	JobID    int64     `json:"job_id"`
	QueuedAt time.Time `json:"queued_at"`
}

// Demand returns the jobs of group waiting for a runner, oldest first.
func (s *Store) Demand(ctx context.Context, group string) ([]Demand, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, s.keys.GroupDemand(group), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read demand of group %s: %w", group, err)
	}
	out := make([]Demand, 0, len(zs))
	for _, z := range zs {
		m, _ := z.Member.(string)
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, Demand{JobID: id, QueuedAt: time.UnixMilli(int64(z.Score))})
	}
	return out, nil
}

// GroupStatus is a snapshot of one group's counts (not atomic across the
// counts: for display and metrics, never for decisions).
type GroupStatus struct {
	Name string `json:"name"`
	// Total runners counted against max_runners.
	Total int64 `json:"total"`
	// Free runners that can still take a job (pending, started, idle).
	Free   int64 `json:"free"`
	Demand int64 `json:"demand"`
	// ByState counts the runners of each state.
	ByState map[State]int64 `json:"by_state"`
	// BackoffRemaining is how long top-ups still wait after a failed create, 0 when none.
	BackoffRemaining time.Duration `json:"backoff_remaining"`
	// Mode is the operator's mode of the group (active, paused, draining).
	Mode Mode `json:"mode"`
}

// GroupStatus returns the counts of group, reading every runner record.
func (s *Store) GroupStatus(ctx context.Context, group string) (GroupStatus, error) {
	st := GroupStatus{Name: group, ByState: make(map[State]int64, len(transitions)), Mode: ModeActive}
	for _, state := range States() {
		st.ByState[state] = 0
	}
	pipe := s.rdb.Pipeline()
	total := pipe.ZCard(ctx, s.keys.GroupRunners(group))
	free := pipe.ZCard(ctx, s.keys.GroupFree(group))
	demand := pipe.ZCard(ctx, s.keys.GroupDemand(group))
	backoff := pipe.PTTL(ctx, s.keys.GroupBackoff(group))
	mode := pipe.Get(ctx, s.keys.GroupMode(group))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("read counts of group %s: %w", group, err)
	}
	st.Total, st.Free, st.Demand = total.Val(), free.Val(), demand.Val()
	st.Mode = parseMode(mode.Val())
	if d := backoff.Val(); d > 0 {
		st.BackoffRemaining = d
	}
	runners, err := s.Runners(ctx, group)
	if err != nil {
		return st, err
	}
	for _, r := range runners {
		st.ByState[r.State]++
	}
	return st, nil
}

// escapeGlob escapes the glob characters of a SCAN pattern ({P} has braces,
// which are not special, but a name could hold others).
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// groupOf returns the group a key of one group family names (before and
// after are the family's shape, keys.Split): false for another key, or for
// one whose group would hold a ":" (a key of another family that happens to
// match the pattern, such as {P}:group:<g>:runners:<x>).
func groupOf(key, before, after string) (string, bool) {
	rest, ok := strings.CutPrefix(key, before)
	if !ok {
		return "", false
	}
	g, ok := strings.CutSuffix(rest, after)
	if !ok || g == "" || strings.Contains(g, ":") {
		return "", false
	}
	return g, true
}
