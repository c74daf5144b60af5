package state

import (
	"context"

	"github.com/runner-manager/runner-manager/libs/recent"
)

// The capped lists of recent events for the status page (libs/recent).

// PushCreateFailure records a failed create result the scheduler handled
// ({P}:recent:create_failures).
func (s *Store) PushCreateFailure(ctx context.Context, e recent.Entry) error {
	return recent.Push(ctx, s.rdb, s.keys.RecentCreateFailures(), e)
}

// RecentCreateFailures returns the failed creates handled lately, newest first.
func (s *Store) RecentCreateFailures(ctx context.Context) ([]recent.Entry, error) {
	return recent.List(ctx, s.rdb, s.keys.RecentCreateFailures(), recent.Max)
}

// RecentRefusals returns the commands the provisioners refused lately
// ({P}:recent:refused, written by the provisioners), newest first.
func (s *Store) RecentRefusals(ctx context.Context) ([]recent.Entry, error) {
	return recent.List(ctx, s.rdb, s.keys.RecentRefusals(), recent.Max)
}
