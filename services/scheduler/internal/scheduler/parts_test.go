package scheduler

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// A part that fails stops the others, and Run returns its error named after
// it; a part stopped by the cancellation is no error.
func TestRunPartsStopsAllOnTheFirstFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	stopped := make(chan struct{})
	err := runParts(context.Background(), []part{
		{"waiter", func(ctx context.Context) error {
			<-ctx.Done()
			close(stopped)
			return ctx.Err()
		}},
		{"breaker", func(context.Context) error { return boom }},
	})
	require.ErrorIs(t, err, boom)
	require.EqualError(t, err, "breaker: boom")
	<-stopped
}

func TestRunPartsCancelledIsClean(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, runParts(ctx, []part{
		{"a", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{"b", func(ctx context.Context) error { <-ctx.Done(); return nil }},
	}))
}
