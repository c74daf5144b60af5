package recent_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/recent"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

func TestPushKeepsTheNewestAndIsCapped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	key := redistest.NewName("{test}:recent")
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	for i := range recent.Max + 5 {
		require.NoError(t, recent.Push(ctx, rdb, key, recent.Entry{Group: "small", Reason: "capacity", Time: t0.Add(time.Duration(i) * time.Second)}))
	}
	n, err := rdb.LLen(ctx, key).Result()
	require.NoError(t, err)
	require.EqualValues(t, recent.Max, n, "the list is capped")

	got, err := recent.List(ctx, rdb, key, 2)
	require.NoError(t, err)
	require.Equal(t, []recent.Entry{
		{Group: "small", Reason: "capacity", Time: t0.Add(time.Duration(recent.Max+4) * time.Second)},
		{Group: "small", Reason: "capacity", Time: t0.Add(time.Duration(recent.Max+3) * time.Second)},
	}, got, "newest first")
}

func TestListOfAMissingKeyIsEmpty(t *testing.T) {
	t.Parallel()
	got, err := recent.List(context.Background(), redistest.Client(t), redistest.NewName("{test}:none"), 10)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestListSkipsWhatItCannotDecode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	key := redistest.NewName("{test}:recent")
	require.NoError(t, rdb.LPush(ctx, key, "not json").Err())
	require.NoError(t, recent.Push(ctx, rdb, key, recent.Entry{Group: "g", Reason: "labels", Time: time.UnixMilli(5).UTC()}))
	got, err := recent.List(ctx, rdb, key, 10)
	require.NoError(t, err)
	require.Equal(t, []recent.Entry{{Group: "g", Reason: "labels", Time: time.UnixMilli(5).UTC()}}, got)
}

func TestCountSince(t *testing.T) {
	t.Parallel()
	now := time.Unix(10_000, 0)
	es := []recent.Entry{
		{Group: "a", Reason: "capacity", Time: now.Add(-time.Minute)},
		{Group: "a", Reason: "capacity", Time: now.Add(-2 * time.Minute)},
		{Group: "a", Reason: "permanent", Time: now.Add(-3 * time.Minute)},
		{Group: "b", Reason: "capacity", Time: now.Add(-4 * time.Minute)},
		{Group: "a", Reason: "capacity", Time: now.Add(-2 * time.Hour)},
	}
	require.Equal(t, map[string]map[string]int{
		"a": {"capacity": 2, "permanent": 1},
		"b": {"capacity": 1},
	}, recent.CountSince(es, now.Add(-time.Hour)))
}
