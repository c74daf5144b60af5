// Package recent keeps short, capped records of recent events in Redis (a
// list, newest first, at most Max entries) for the scheduler's status page:
// the commands provisioners refused, the creates that failed. An entry holds
// a group name, a bounded reason or class and a time; never a secret, never
// a command's values.
package recent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Max is the number of entries a list keeps.
const Max = 200

// Entry is one recorded event.
type Entry struct {
	Group string `json:"group"`
	// Reason is a bounded label: a refusal reason, a failure class.
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Push records e (its time in UTC) at the head of the list key and trims the
// list to Max, in one transaction.
func Push(ctx context.Context, rdb redis.Cmdable, key string, e Entry) error {
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode recent entry: %w", err)
	}
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, key, b)
		p.LTrim(ctx, key, 0, Max-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record in %s: %w", key, err)
	}
	return nil
}

// List returns the newest n entries of key, newest first; an entry that does
// not decode is skipped.
func List(ctx context.Context, rdb redis.Cmdable, key string, n int64) ([]Entry, error) {
	raw, err := rdb.LRange(ctx, key, 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	out := make([]Entry, 0, len(raw))
	for _, r := range raw {
		var e Entry
		if json.Unmarshal([]byte(r), &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// CountSince counts the entries at or after since, by group and reason.
func CountSince(es []Entry, since time.Time) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, e := range es {
		if e.Time.Before(since) {
			continue
		}
		if out[e.Group] == nil {
			out[e.Group] = map[string]int{}
		}
		out[e.Group][e.Reason]++
	}
	return out
}
