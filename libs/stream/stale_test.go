package stream

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

func TestRemoveStaleConsumers(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	str, group := redistest.NewName("{test}:stream"), "g"
	require.NoError(t, rdb.XGroupCreateMkStream(ctx, str, group, "0").Err())
	require.NoError(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: str, Values: []any{FieldType, "t"}}).Err())
	read := func(consumer string) {
		t.Helper()
		err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: consumer, Streams: []string{str, ">"}, Count: 1, Block: -1}).Err()
		if err != nil && err != redis.Nil {
			require.NoError(t, err)
		}
	}
	names := func() []string {
		cs, err := rdb.XInfoConsumers(ctx, str, group).Result()
		require.NoError(t, err)
		var out []string
		for _, x := range cs {
			out = append(out, x.Name)
		}
		return out
	}
	read("holding") // gets the entry: stays, whatever its idle time
	for _, name := range []string{"gone", "me"} {
		require.NoError(t, rdb.XGroupCreateConsumer(ctx, str, group, name).Err())
	}
	require.Len(t, names(), 3)

	c := NewConsumer(rdb, ConsumerConfig{Stream: str, Group: group, Consumer: "me", DLQ: "dlq"}, nil)
	c.staleIdle = 50 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for len(names()) == 3 && time.Now().Before(deadline) {
		c.removeStaleConsumers(ctx)
		time.Sleep(10 * time.Millisecond)
	}
	require.ElementsMatch(t, []string{"holding", "me"}, names())
}
