package scenarios

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
)

// noSecretsAnywhere checks that neither the GitHub token, the webhook secret
// nor the API token reached a service's log, Redis (every key and stream
// entry), or a service's /metrics.
func noSecretsAnywhere(t *testing.T, sys *harness.System) {
	t.Helper()
	secrets := []string{harness.DevGitHubToken, harness.DevWebhookSecret, harness.DevAPIToken}
	check := func(where, text string) {
		for _, s := range secrets {
			require.NotContains(t, text, s, "a secret reached %s", where)
		}
	}

	logs, err := filepath.Glob(filepath.Join(sys.Opts.Dir, "*.log"))
	require.NoError(t, err)
	n := 0
	for _, p := range logs {
		// The fake GitHub is the other side of the wire, not ours; Redis logs no data.
		if strings.HasPrefix(filepath.Base(p), "fakegithub") || strings.HasPrefix(filepath.Base(p), "redis") {
			continue
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		check(filepath.Base(p), string(b))
		n++
	}
	require.Positive(t, n, "service logs were read")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check("Redis", dumpRedis(ctx, t, sys.RedisClient()))

	for _, base := range sys.ServiceURLs() {
		resp, err := http.Get(base + "/metrics")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		check(base+"/metrics", string(b))
	}
}

// dumpRedis returns every key and value of the database as text.
func dumpRedis(ctx context.Context, t *testing.T, rdb *redis.Client) string {
	var b strings.Builder
	iter := rdb.Scan(ctx, 0, "*", 500).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		fmt.Fprintf(&b, "%s\n", key)
		switch rdb.Type(ctx, key).Val() {
		case "string":
			fmt.Fprintln(&b, rdb.Get(ctx, key).Val())
		case "hash":
			fmt.Fprintln(&b, rdb.HGetAll(ctx, key).Val())
		case "set":
			fmt.Fprintln(&b, rdb.SMembers(ctx, key).Val())
		case "zset":
			fmt.Fprintln(&b, rdb.ZRange(ctx, key, 0, -1).Val())
		case "list":
			fmt.Fprintln(&b, rdb.LRange(ctx, key, 0, -1).Val())
		case "stream":
			for _, e := range rdb.XRange(ctx, key, "-", "+").Val() {
				fmt.Fprintln(&b, e.Values)
			}
		}
	}
	require.NoError(t, iter.Err())
	return b.String()
}
