package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/keys"
)

// Mode is an operator's mode of a group (POST /api/v1/groups/{name}/pause,
// drain, resume). It lives in Redis ({P}:group:<g>:mode, absent when
// active), so it survives restarts and every replica reads the same: the
// scripts that reserve runners read it together with the limit check.
type Mode string

// The modes of a group.
const (
	// ModeActive: the group is served as configured.
	ModeActive Mode = "active"
	// ModePaused: no new runner (queued jobs wait, counted as demand;
	// min_runners is not topped up); the runners it has are kept.
	ModePaused Mode = "paused"
	// ModeDraining: no new runner, its pending, started and idle runners
	// are deleted (reason drained), busy ones when their job completes.
	ModeDraining Mode = "draining"
)

// Modes lists every mode (the label values of runner_manager_group_mode).
func Modes() []Mode { return []Mode{ModeActive, ModePaused, ModeDraining} }

// Valid tells whether m is a known mode.
func (m Mode) Valid() bool { return m == ModeActive || m == ModePaused || m == ModeDraining }

// parseMode reads the value of a mode key ("" or unknown: active, so that a
// stray value never blocks a group).
func parseMode(v string) Mode {
	if m := Mode(v); m == ModePaused || m == ModeDraining {
		return m
	}
	return ModeActive
}

// GroupMode returns the mode of group.
func (s *Store) GroupMode(ctx context.Context, group string) (Mode, error) {
	v, err := s.rdb.Get(ctx, s.keys.GroupMode(group)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return ModeActive, fmt.Errorf("read mode of group %s: %w", group, err)
	}
	return parseMode(v), nil
}

// SetGroupMode sets the mode of group and returns the one it had. Active
// deletes the key. It changes no runner: a drain's deletes are DeleteFree,
// a resume's creates a TopUp.
func (s *Store) SetGroupMode(ctx context.Context, group string, m Mode) (Mode, error) {
	if !m.Valid() {
		return "", fmt.Errorf("set mode of group %s: unknown mode %q", group, m)
	}
	k := s.keys.GroupMode(group)
	var prev string
	var err error
	if m == ModeActive {
		prev, err = s.rdb.GetDel(ctx, k).Result()
	} else {
		prev, err = s.rdb.SetArgs(ctx, k, string(m), redis.SetArgs{Get: true}).Result()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("set mode of group %s to %s: %w", group, m, err)
	}
	return parseMode(prev), nil
}

// ForgetModes deletes the mode keys of the groups keep refuses (groups no
// longer configured) and returns those groups. It SCANs, so it is for the
// reconcile loop's occasional pass.
func (s *Store) ForgetModes(ctx context.Context, keep func(group string) bool) ([]string, error) {
	var gone []string
	before, after := keys.Split(s.keys.GroupMode)
	iter := s.rdb.Scan(ctx, 0, escapeGlob(before)+"*"+escapeGlob(after), 256).Iterator()
	for iter.Next(ctx) {
		g, ok := groupOf(iter.Val(), before, after)
		if !ok || keep(g) {
			continue
		}
		if err := s.rdb.Del(ctx, s.keys.GroupMode(g)).Err(); err != nil {
			return gone, fmt.Errorf("forget mode of group %s: %w", g, err)
		}
		gone = append(gone, g)
	}
	if err := iter.Err(); err != nil {
		return gone, fmt.Errorf("list group modes: %w", err)
	}
	return gone, nil
}

// DeleteFree moves every pending, started and idle runner of group to
// deleting with a delete command for reason (compare and set, each in its
// script: a runner that became busy meanwhile is left alone, and the
// provisioner removes the registration first, so one that takes a job after
// answers busy). It returns the runners moved, with their state before.
func (s *Store) DeleteFree(ctx context.Context, group, reason string) ([]Runner, error) {
	runners, err := s.Runners(ctx, group)
	if err != nil {
		return nil, err
	}
	from := []State{Pending, Started, Idle}
	var moved []Runner
	var errs []error
	for _, r := range runners {
		if !r.State.Free() {
			continue
		}
		prev, err := s.RequestDelete(ctx, r.Name, from, reason)
		switch {
		case errors.Is(err, ErrState) || errors.Is(err, ErrNotFound):
		case err != nil:
			errs = append(errs, err)
		default:
			r.State = prev
			moved = append(moved, r)
		}
	}
	return moved, errors.Join(errs...)
}
