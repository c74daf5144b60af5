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
// webhook for up to 3 days (docs/design.md §3, §6).
const DeliveryTTL = 72 * time.Hour

// publishScript records a delivery and appends its event in one step, so a
// delivery is either accepted and published, or neither (docs/design.md §6).
//
//	KEYS[1]   {P}:delivery:<guid>    the replay guard of the delivery id
//	KEYS[2]   {P}:body:<sha256 hex>  the replay guard of the signed body
//	KEYS[3]   {P}:events             the stream
//	ARGV[1]   TTL of the guards in seconds (259200)
//	ARGV[2]   N of XADD ... MAXLEN ~ N
//	ARGV[3]   the delivery id (the value of the body guard: which delivery
//	          brought the body first)
//	ARGV[4..] the entry's field/value pairs, as stream.Values returns them
//
// Returns the new entry's id; 1 when the delivery id was already accepted
// (GitHub's redelivery); 2 when the same body was already accepted under
// another delivery id (a replay: X-GitHub-Delivery is not signed). A
// duplicate writes nothing. Should XADD fail (for instance a write refused
// under maxmemory), both guards are removed again and the error returned, so
// that GitHub's redelivery of the delivery is not taken for a replay.
var publishScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[1])
local id = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
if type(id) == 'table' and id.err then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return id
`)

var deliveryTTLSeconds = strconv.FormatInt(int64(DeliveryTTL/time.Second), 10)

var (
	// errDuplicate: the delivery was accepted before.
	errDuplicate = errors.New("delivery already accepted")
	// errDuplicateBody: the same signed body was accepted before under
	// another delivery id.
	errDuplicateBody = errors.New("body already accepted under another delivery")
)

// guard names the replay guards of one delivery.
type guard struct {
	delivery string // {P}:delivery:<guid>
	body     string // {P}:body:<sha256 hex>
	guid     string // X-GitHub-Delivery
}

// publish runs publishScript and returns the new entry id, errDuplicate,
// errDuplicateBody, or the Redis error.
func publish(ctx context.Context, rdb redis.Scripter, g guard, events string, maxLen int64, values []any) (string, error) {
	args := make([]any, 0, 3+len(values))
	args = append(args, deliveryTTLSeconds, maxLen, g.guid)
	args = append(args, values...)
	res, err := publishScript.Run(ctx, rdb, []string{g.delivery, g.body, events}, args...).Result()
	if err != nil {
		return "", fmt.Errorf("publish to %s: %w", events, err)
	}
	switch v := res.(type) {
	case string:
		return v, nil
	case int64:
		switch v {
		case 1:
			return "", errDuplicate
		case 2:
			return "", errDuplicateBody
		}
	}
	return "", fmt.Errorf("publish to %s: unexpected reply %v", events, res)
}
