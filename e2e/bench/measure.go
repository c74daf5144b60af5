package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/e2e/harness"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// IDTime is the time of a stream entry id (its milliseconds part: Redis's
// clock when the entry was added).
func IDTime(id string) (time.Time, error) {
	ms, _, _ := strings.Cut(id, "-")
	v, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("stream entry id %q: %w", id, err)
	}
	return time.UnixMilli(v), nil
}

// Job is one queued workflow job to publish.
type Job struct {
	ID     int64
	Repo   string
	Labels []string
}

// QueuedValues returns the {P}:events entry of a queued event of j, as the
// ingress publishes it.
func QueuedValues(ctx context.Context, j Job, now time.Time) ([]any, error) {
	ev := &rmv1.WorkflowJobEvent{
		DeliveryId:   fmt.Sprintf("bench-%d", j.ID),
		Action:       "queued",
		JobId:        j.ID,
		RunId:        j.ID,
		RunAttempt:   1,
		Labels:       j.Labels,
		Owner:        harness.Org,
		Repository:   j.Repo,
		RepositoryId: 1,
		Status:       "queued",
		JobName:      "build",
		WorkflowName: "ci",
		CreatedAt:    timestamppb.New(now),
		ReceivedAt:   timestamppb.New(now),
	}
	return stream.Values(ctx, stream.TypeWorkflowJob, ev)
}

// PublishBurst appends the queued events of jobs to {P}:events in pipelines
// of 500 entries, as fast as Redis takes them, and returns each job's entry
// id.
func PublishBurst(ctx context.Context, rdb redis.UniversalClient, k keys.Keys, jobs []Job) (map[int64]string, error) {
	ids := make(map[int64]string, len(jobs))
	now := time.Now()
	for start := 0; start < len(jobs); start += 500 {
		part := jobs[start:min(start+500, len(jobs))]
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(part))
		for i, j := range part {
			vals, err := QueuedValues(ctx, j, now)
			if err != nil {
				return nil, err
			}
			cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: k.Events(), Values: vals})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("publish queued events: %w", err)
		}
		for i, j := range part {
			ids[j.ID] = cmds[i].Val()
		}
	}
	return ids, nil
}

// PublishPaced appends one queued event every 1/rate seconds, each with its
// own XADD, and returns each job's entry id.
func PublishPaced(ctx context.Context, rdb redis.UniversalClient, k keys.Keys, jobs []Job, rate float64) (map[int64]string, error) {
	ids := make(map[int64]string, len(jobs))
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i, j := range jobs {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		vals, err := QueuedValues(ctx, j, time.Now())
		if err != nil {
			return nil, err
		}
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.Events(), Values: vals}).Result()
		if err != nil {
			return nil, fmt.Errorf("publish queued event of job %d: %w", j.ID, err)
		}
		ids[j.ID] = id
	}
	return ids, nil
}

// CreateCommands reads a command stream and returns, for each job, the entry
// ids of the create commands reserved on its behalf, and the number of
// create commands in all.
func CreateCommands(ctx context.Context, rdb redis.UniversalClient, streamKey string) (map[int64][]string, int, error) {
	out := map[int64][]string{}
	total := 0
	start := "-"
	for {
		msgs, err := rdb.XRangeN(ctx, streamKey, start, "+", 1000).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", streamKey, err)
		}
		for _, m := range msgs {
			data, _ := m.Values[stream.FieldData].(string)
			var c rmv1.ProvisionCommand
			if err := proto.Unmarshal([]byte(data), &c); err != nil {
				return nil, 0, fmt.Errorf("decode command %s: %w", m.ID, err)
			}
			if cr := c.GetCreate(); cr != nil {
				total++
				out[cr.GetSpec().GetJobId()] = append(out[cr.GetSpec().GetJobId()], m.ID)
			}
		}
		if len(msgs) < 1000 {
			return out, total, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// GroupState is what XINFO GROUPS tells of one consumer group.
type GroupState struct {
	EntriesRead, Pending, Lag int64
}

// ConsumerGroup returns the state of consumer group of streamKey (zero when the
// group does not exist yet).
func ConsumerGroup(ctx context.Context, rdb redis.UniversalClient, streamKey, group string) (GroupState, error) {
	groups, err := rdb.XInfoGroups(ctx, streamKey).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return GroupState{}, nil
		}
		return GroupState{}, fmt.Errorf("XINFO GROUPS %s: %w", streamKey, err)
	}
	for _, g := range groups {
		if g.Name == group {
			return GroupState{EntriesRead: g.EntriesRead, Pending: g.Pending, Lag: g.Lag}, nil
		}
	}
	return GroupState{}, nil
}

// WaitGroup polls the consumer group every 10 ms until it has read n entries
// and acknowledged all of them, and returns when it saw that.
func WaitGroup(ctx context.Context, rdb redis.UniversalClient, streamKey, group string, n int64, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := ConsumerGroup(ctx, rdb, streamKey, group)
		if err != nil {
			return time.Time{}, err
		}
		if st.EntriesRead >= n && st.Pending == 0 {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("group %s of %s: %d entries read, %d pending after %s (want %d acknowledged)",
				group, streamKey, st.EntriesRead, st.Pending, timeout, n)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Percentile returns the p-th percentile (0 < p ≤ 100, nearest rank) of
// sorted values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Latencies pairs each job's event entry with its first create command and
// returns the sorted delays (ms resolution: both are entry ids), and the
// jobs that got no command.
func Latencies(events map[int64]string, commands map[int64][]string) ([]time.Duration, int, error) {
	out := make([]time.Duration, 0, len(events))
	missing := 0
	for job, evID := range events {
		cmds := commands[job]
		if len(cmds) == 0 {
			missing++
			continue
		}
		t0, err := IDTime(evID)
		if err != nil {
			return nil, 0, err
		}
		t1, err := IDTime(cmds[0])
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t1.Sub(t0))
	}
	slices.Sort(out)
	return out, missing, nil
}

// UsedMemory is used_memory of INFO memory, in bytes.
func UsedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO memory: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO memory: no used_memory")
}

// KeyKind classifies a key of manager k: "runner", "job", "group:<kind>"
// (runners, demand, free...), "stream:<name>", "delivery", or "other".
func KeyKind(k keys.Keys, key string) string {
	rest, ok := k.Local(key)
	if !ok {
		return "other"
	}
	switch {
	case key == k.Events():
		return "stream:events"
	case key == k.Results():
		return "stream:results"
	case strings.HasPrefix(rest, "provision:"):
		return "stream:provision"
	case strings.HasPrefix(rest, "runner:"):
		return "runner"
	case strings.HasPrefix(rest, "job:"):
		return "job"
	case strings.HasPrefix(rest, "delivery:"):
		return "delivery"
	case strings.HasPrefix(rest, "group:"):
		f := strings.Split(rest, ":")
		return "group:" + f[len(f)-1]
	}
	return "other:" + strings.SplitN(rest, ":", 2)[0]
}

// KeyUsage is the memory and count of the keys of one kind.
type KeyUsage struct {
	Keys  int
	Bytes int64
}

// MemoryByKind sums MEMORY USAGE (exact: SAMPLES 0) of every key of the
// manager, by KeyKind.
func MemoryByKind(ctx context.Context, rdb redis.UniversalClient, k keys.Keys) (map[string]KeyUsage, error) {
	out := map[string]KeyUsage{}
	var cursor uint64
	for {
		ks, next, err := rdb.Scan(ctx, cursor, k.All(), 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("SCAN: %w", err)
		}
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(ks))
		for i, key := range ks {
			cmds[i] = pipe.MemoryUsage(ctx, key, 0)
		}
		if len(ks) > 0 {
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("MEMORY USAGE: %w", err)
			}
		}
		for i, key := range ks {
			kind := KeyKind(k, key)
			u := out[kind]
			u.Keys++
			u.Bytes += cmds[i].Val()
			out[kind] = u
		}
		cursor = next
		if cursor == 0 {
			return out, nil
		}
	}
}

// CommandStat is one line of INFO commandstats.
type CommandStat struct {
	Calls, Usec int64
}

// CommandStats returns INFO commandstats by command name ("evalsha", "xadd", ...).
func CommandStats(ctx context.Context, rdb redis.UniversalClient) (map[string]CommandStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO commandstats: %w", err)
	}
	out := map[string]CommandStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		var st CommandStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				st.Calls = n
			case "usec":
				st.Usec = n
			}
		}
		out[name] = st
	}
	return out, nil
}
