package scenarios

import (
	"context"

	"github.com/redis/go-redis/v9"
)

func groupsOf(ctx context.Context, rdb *redis.Client, stream string) []redis.XInfoGroup {
	gs, err := rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return nil
	}
	return gs
}
