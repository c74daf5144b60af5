package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/stream"
)

// The dead letters ({P}:dlq, written by libs/stream) as the scheduler reads
// and retries them, and the count of their automatic retries
// ({P}:dlq:retries:<fingerprint>).

// DeadLetters returns the newest count dead letters, newest first.
func (s *Store) DeadLetters(ctx context.Context, count int64) ([]stream.DeadLetter, error) {
	return stream.ListDLQ(ctx, s.rdb, s.keys.DLQ(), count)
}

// OldestDeadLetters returns the oldest count dead letters, oldest first.
func (s *Store) OldestDeadLetters(ctx context.Context, count int64) ([]stream.DeadLetter, error) {
	return stream.OldestDLQ(ctx, s.rdb, s.keys.DLQ(), count)
}

// DeadLetterCount returns the length of the dead-letter stream.
func (s *Store) DeadLetterCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.XLen(ctx, s.keys.DLQ()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// RetryDeadLetter puts the dead letter id back on its origin stream, trimmed
// to maxLen (stream.RetryDLQ; stream.ErrNotFound when it is gone).
func (s *Store) RetryDeadLetter(ctx context.Context, id string, maxLen int64) error {
	return stream.RetryDLQ(ctx, s.rdb, s.keys.DLQ(), id, stream.WithMaxLen(maxLen))
}

// DeadLetterRetries returns how many times d was retried automatically
// (within the TTL of its count).
func (s *Store) DeadLetterRetries(ctx context.Context, d stream.DeadLetter) (int, error) {
	n, err := s.rdb.Get(ctx, s.keys.DLQRetries(d.Fingerprint())).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("automatic retries of dead letter %s: %w", d.ID, err)
	}
	return n, nil
}

// CountDeadLetterRetry counts one more automatic retry of d, remembered for ttl.
func (s *Store) CountDeadLetterRetry(ctx context.Context, d stream.DeadLetter, ttl time.Duration) error {
	key := s.keys.DLQRetries(d.Fingerprint())
	pipe := s.rdb.TxPipeline()
	pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("count automatic retry of dead letter %s: %w", d.ID, err)
	}
	return nil
}
