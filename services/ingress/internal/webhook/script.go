package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DeliveryTTL is how long a delivery id is remembered: GitHub redelivers a
// webhook for up to 3 days (DESIGN §3, §6).
const DeliveryTTL = 72 * time.Hour

// publishScript records a delivery and appends its event in one step, so a
// delivery is either accepted and published, or neither (DESIGN §6).
//
//	KEYS[1]   {P}:delivery:<guid>  the replay guard (a string with a TTL)
//	KEYS[2]   {P}:events           the stream
//	ARGV[1]   TTL of the guard in seconds (259200)
//	ARGV[2]   N of XADD ... MAXLEN ~ N
//	ARGV[3..] the entry's field/value pairs, as stream.Values returns them
//
// Returns the new entry's id, or nil when the delivery was already accepted.
// Should XADD fail (for instance a write refused under maxmemory), the guard
// is removed again and the error returned, so that GitHub's redelivery of the
// delivery is not taken for a replay.
var publishScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return false
end
local id = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
if type(id) == 'table' and id.err then
  redis.call('DEL', KEYS[1])
end
return id
`)

var deliveryTTLSeconds = strconv.FormatInt(int64(DeliveryTTL/time.Second), 10)

// errDuplicate: the delivery was accepted before.
var errDuplicate = errors.New("delivery already accepted")

// publish runs publishScript and returns the new entry id, errDuplicate, or
// the Redis error.
func publish(ctx context.Context, rdb redis.Scripter, deliveryKey, events string, maxLen int64, values []any) (string, error) {
	args := make([]any, 0, 2+len(values))
	args = append(args, deliveryTTLSeconds, maxLen)
	args = append(args, values...)
	res, err := publishScript.Run(ctx, rdb, []string{deliveryKey, events}, args...).Result()
	if errors.Is(err, redis.Nil) {
		return "", errDuplicate
	}
	if err != nil {
		return "", fmt.Errorf("publish to %s: %w", events, err)
	}
	id, ok := res.(string)
	if !ok {
		return "", fmt.Errorf("publish to %s: unexpected reply %T", events, res)
	}
	return id, nil
}
