package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/keys"
)

// Operations of the health checks (docs/design.md §7), package health. Their
// keys (libs/keys, Health*):
//
//	{P}:health:orphan:<name>          string, TTL: a delete of the orphan instance <name> was emitted
//	{P}:health:listed:<backend>       string, TTL: a list command of <backend> was emitted (spacing)
//	{P}:health:list:<command id>      string, TTL: what a list command covered, for its inventory
//	{P}:health:ghorphans:<scope>      zset: "<id>:<name>" of registrations without record -> first seen (ms)
//	{P}:health:absent:<scope>         hash: runner with a record -> consecutive listings of scope it was absent from
//	{P}:health:jobchecks              zset: job id -> last time its status was asked at GitHub (ms)
//	{P}:health:ghgroup-repos:<group>  string, TTL: the repository ids last set on the GitHub runner group
//
// Job records ({P}:job:<id>) also get "owner" and "repository" from the
// scripts of queued and in_progress events (QueuedIn, InProgress), so that a
// job can be looked up at GitHub.

// Reasons of delete commands emitted by the health checks.
const (
	// ReasonOrphan: an instance with this manager's label and no record.
	ReasonOrphan = "orphan"
	// ReasonInstanceVanished: the record's instance is gone from the backend.
	ReasonInstanceVanished = "instance_vanished"
)

// DeleteOrphan emits the delete command of an instance that has no record
// (r carries the name, group, backend and instance id the inventory gave),
// for reason, at most once per guard: an inventory handled twice, or two
// inventories close together, emit one delete. A runner that has a record
// is left alone (checked in the same script). It returns whether the command
// was emitted.
func (s *Store) DeleteOrphan(ctx context.Context, r Runner, reason string, guard time.Duration) (bool, error) {
	if s.opt.Commands == nil {
		return false, ErrNoCommands
	}
	cmd, err := s.opt.Commands.Delete(ctx, r, reason)
	if err != nil {
		return false, fmt.Errorf("prepare delete of orphan %s: %w", r.Name, err)
	}
	args := append(s.header(s.opt.Now()), r.Name, max(guard.Milliseconds(), 1), cmd.Data, cmd.Traceparent, r.Backend)
	n, err := s.run(ctx, scriptDeleteOrphan, args...).Int()
	if err != nil {
		return false, fmt.Errorf("delete orphan %s: %w", r.Name, err)
	}
	return n == 1, nil
}

// EmitList emits a list command on backend's stream, unless one was emitted
// less than spacing ago, and keeps meta (what the command covers) for keep
// under the command's id, for its inventory (ListMeta). It returns whether
// the command was emitted.
func (s *Store) EmitList(ctx context.Context, backend string, cmd Command, meta []byte, spacing, keep time.Duration) (bool, error) {
	args := append(s.header(s.opt.Now()), backend, cmd.Data, cmd.Traceparent,
		max(spacing.Milliseconds(), 1), cmd.ID, meta, max(keep.Milliseconds(), 1))
	n, err := s.run(ctx, scriptEmitList, args...).Int()
	if err != nil {
		return false, fmt.Errorf("emit list command of backend %s: %w", backend, err)
	}
	return n == 1, nil
}

// ListMeta returns what the list command commandID covered; false when the
// command is unknown or expired.
func (s *Store) ListMeta(ctx context.Context, commandID string) ([]byte, bool, error) {
	if commandID == "" {
		return nil, false, nil
	}
	v, err := s.rdb.Get(ctx, s.keys.HealthList(commandID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read list command %s: %w", commandID, err)
	}
	return v, true, nil
}

// JobRepository returns the owner and repository of a job, empty when unknown.
func (s *Store) JobRepository(ctx context.Context, jobID int64) (owner, repo string, err error) {
	v, err := s.rdb.HMGet(ctx, s.keys.Job(jobID), "owner", "repository").Result()
	if err != nil {
		return "", "", fmt.Errorf("read repository of job %d: %w", jobID, err)
	}
	owner, _ = v[0].(string)
	repo, _ = v[1].(string)
	return owner, repo, nil
}

// Existing tells which of names have a runner record.
func (s *Store) Existing(ctx context.Context, names []string) (map[string]bool, error) {
	out := make(map[string]bool, len(names))
	if len(names) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(names))
	for i, n := range names {
		cmds[i] = pipe.Exists(ctx, s.keys.Runner(n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read runner records: %w", err)
	}
	for i, c := range cmds {
		if c.Val() == 1 {
			out[names[i]] = true
		}
	}
	return out, nil
}

// RecordedGroups returns the groups that have runners counted against them,
// configured or not (a group removed from the configuration keeps its
// runners until they are deleted), sorted. It SCANs, so it is for periodic
// checks, not for every event.
func (s *Store) RecordedGroups(ctx context.Context) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	before, after := keys.Split(s.keys.GroupRunners)
	iter := s.rdb.Scan(ctx, 0, escapeGlob(before)+"*"+escapeGlob(after), 256).Iterator()
	for iter.Next(ctx) {
		g, ok := groupOf(iter.Val(), before, after)
		if ok && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list groups with runners: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// GitHubOrphan is a registration at GitHub without a runner record.
type GitHubOrphan struct {
	ID   int64
	Name string
}

// SeenGitHubOrphans records the registrations of scope found without record
// in this pass and returns when each was first seen; those of scope not seen
// now are forgotten. A registration is deleted only once it has been an
// orphan long enough (its first sighting is old), never on one sighting.
func (s *Store) SeenGitHubOrphans(ctx context.Context, scope string, seen []GitHubOrphan) (map[GitHubOrphan]time.Time, error) {
	args := append(s.header(s.opt.Now()), scope)
	for _, o := range seen {
		args = append(args, strconv.FormatInt(o.ID, 10)+":"+o.Name)
	}
	v, err := s.run(ctx, scriptSeenGitHubOrphans, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("record GitHub orphans of %s: %w", scope, err)
	}
	out := make(map[GitHubOrphan]time.Time, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		idStr, name, ok := strings.Cut(v[i], ":")
		id, err := strconv.ParseInt(idStr, 10, 64)
		if !ok || err != nil {
			continue
		}
		out[GitHubOrphan{ID: id, Name: name}] = fromMS(v[i+1])
	}
	return out, nil
}

// SeenAbsent records which runners with a record were absent from this
// listing of scope at GitHub and returns, for each of them, how many
// consecutive listings (this one included) they were absent from; the
// runners not absent now are forgotten. GitHub pages runner lists by offset:
// with churn, an entry can shift between two pages and be missed by one
// listing, so absence is acted on only once a second listing confirms it.
func (s *Store) SeenAbsent(ctx context.Context, scope string, absent []string) (map[string]int, error) {
	args := append(s.header(s.opt.Now()), scope)
	for _, n := range absent {
		args = append(args, n)
	}
	v, err := s.run(ctx, scriptSeenAbsent, args...).Result()
	if err != nil {
		return nil, fmt.Errorf("record runners absent from %s: %w", scope, err)
	}
	arr, _ := v.([]any)
	out := make(map[string]int, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		name, _ := arr[i].(string)
		n, _ := arr[i+1].(int64)
		out[name] = int(n)
	}
	return out, nil
}

// ForgetGitHubOrphan drops a registration from the orphans of scope (it was removed).
func (s *Store) ForgetGitHubOrphan(ctx context.Context, scope string, o GitHubOrphan) error {
	if err := s.rdb.ZRem(ctx, s.keys.HealthGitHubOrphans(scope), strconv.FormatInt(o.ID, 10)+":"+o.Name).Err(); err != nil {
		return fmt.Errorf("forget GitHub orphan %s of %s: %w", o.Name, scope, err)
	}
	return nil
}

// JobChecks returns when the status of each job was last asked at GitHub
// (zero when never), and forgets the checks older than forgetBefore.
func (s *Store) JobChecks(ctx context.Context, ids []int64, forgetBefore time.Time) (map[int64]time.Time, error) {
	key := s.keys.HealthJobChecks()
	pipe := s.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, key, "-inf", "("+ms(forgetBefore))
	cmds := make([]*redis.FloatCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.ZScore(ctx, key, strconv.FormatInt(id, 10))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read job checks: %w", err)
	}
	out := make(map[int64]time.Time, len(ids))
	for i, c := range cmds {
		if c.Err() == nil {
			out[ids[i]] = time.UnixMilli(int64(c.Val()))
		}
	}
	return out, nil
}

// JobChecked records that the status of job id was asked at GitHub at t.
func (s *Store) JobChecked(ctx context.Context, id int64, t time.Time) error {
	if err := s.rdb.ZAdd(ctx, s.keys.HealthJobChecks(), redis.Z{Score: float64(t.UnixMilli()), Member: strconv.FormatInt(id, 10)}).Err(); err != nil {
		return fmt.Errorf("record check of job %d: %w", id, err)
	}
	return nil
}

// GroupRepositoriesApplied returns the fingerprint of the repositories last
// set on the GitHub runner group of group ("" when unknown or expired).
func (s *Store) GroupRepositoriesApplied(ctx context.Context, group string) (string, error) {
	v, err := s.rdb.Get(ctx, s.keys.HealthGitHubGroupRepos(group)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read repositories of runner group %s: %w", group, err)
	}
	return v, nil
}

// SetGroupRepositoriesApplied remembers for ttl the fingerprint of the
// repositories set on the GitHub runner group of group; after ttl they are
// set again (which also undoes changes made by hand at GitHub).
func (s *Store) SetGroupRepositoriesApplied(ctx context.Context, group, fingerprint string, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.keys.HealthGitHubGroupRepos(group), fingerprint, ttl).Err(); err != nil {
		return fmt.Errorf("store repositories of runner group %s: %w", group, err)
	}
	return nil
}

// ReasonStuckDeleting: a runner deleting for long without its deleted result
// gets its delete again.
const ReasonStuckDeleting = "stuck_deleting"

// RedeleteStale emits the delete command of a deleting runner again when
// nothing happened to its record (updated_at) since before cutoff: the first
// command, or its result, was lost (trimmed, dead-lettered without a failed
// result). Emitted at most once per period, since it stamps updated_at. A
// runner whose failed delete has a retry scheduled is left to that retry
// (its deletes back off).
func (s *Store) RedeleteStale(ctx context.Context, r Runner, cutoff time.Time) (bool, error) {
	if s.opt.Commands == nil {
		return false, ErrNoCommands
	}
	cmd, err := s.opt.Commands.Delete(ctx, r, ReasonStuckDeleting)
	if err != nil {
		return false, fmt.Errorf("prepare delete of runner %s: %w", r.Name, err)
	}
	args := append(s.header(s.opt.Now()), r.Name, ms(cutoff), cmd.Data, cmd.Traceparent, r.Backend)
	n, err := s.run(ctx, scriptRedeleteStale, args...).Int()
	if err != nil {
		return false, fmt.Errorf("delete runner %s again: %w", r.Name, err)
	}
	return n == 1, nil
}
