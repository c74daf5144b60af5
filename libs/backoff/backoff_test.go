package backoff_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backoff"
)

func TestGrowthAndBound(t *testing.T) {
	t.Parallel()
	e := backoff.Exponential{Base: time.Second, Max: time.Minute}
	for attempt, want := range map[int]time.Duration{
		-3: time.Second, 0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		6: 32 * time.Second, 7: time.Minute, 100: time.Minute, 1 << 30: time.Minute,
	} {
		require.Equal(t, want, e.Delay(attempt), "attempt %d", attempt)
	}
}

// A bound that is not a power of two of Base is reached exactly, and a
// large Base is never doubled past the bound into an overflow.
func TestBoundIsExact(t *testing.T) {
	t.Parallel()
	e := backoff.Exponential{Base: 3 * time.Second, Max: 10 * time.Second}
	require.Equal(t, []time.Duration{3 * time.Second, 6 * time.Second, 10 * time.Second, 10 * time.Second},
		[]time.Duration{e.Delay(1), e.Delay(2), e.Delay(3), e.Delay(4)})
	huge := backoff.Exponential{Base: time.Duration(1) << 61, Max: time.Duration(1<<63 - 1)}
	require.Positive(t, huge.Delay(10))
}

// Without a bound the delay still stops growing before it overflows.
func TestUnbounded(t *testing.T) {
	t.Parallel()
	e := backoff.Exponential{Base: time.Millisecond}
	require.Equal(t, 1024*time.Millisecond, e.Delay(11))
	require.Positive(t, e.Delay(1000))
}

func TestJitterRange(t *testing.T) {
	t.Parallel()
	e := backoff.Exponential{Base: time.Second, Max: 8 * time.Second, Jitter: 0.5}
	seen := map[bool]bool{}
	for range 2000 {
		d := e.Delay(4) // 8s before jitter
		require.GreaterOrEqual(t, d, 4*time.Second)
		require.LessOrEqual(t, d, 8*time.Second)
		seen[d < 6*time.Second] = true
	}
	require.Len(t, seen, 2, "the jitter covers both halves of its range")

	full := backoff.Exponential{Base: time.Second, Jitter: 3} // more than 1 counts as 1
	for range 200 {
		d := full.Delay(1)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, time.Second)
	}
}

func TestSequenceAndReset(t *testing.T) {
	t.Parallel()
	s := backoff.Exponential{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}.Sequence()
	var got []time.Duration
	for range 4 {
		got = append(got, s.Next())
	}
	require.Equal(t, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond}, got)
	require.Equal(t, 4, s.Attempts())
	s.Reset()
	require.Equal(t, 0, s.Attempts())
	require.Equal(t, 10*time.Millisecond, s.Next())
}
