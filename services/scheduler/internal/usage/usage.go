// Package usage is where the runner time goes: runner-seconds busy and idle,
// boot times and job waits per runner group, repository and workflow
// (docs/operations.md "Where the runner time goes").
//
// The write side is the state package's Lua scripts: each transition that
// ends a runner's free time (it takes a job, goes deleting, or its record is
// removed), starts a job or completes one adds to the bucket of its moment in
// the same script, so that an event handled once is counted once whatever the
// number of scheduler replicas. Each script also returns what it added, and
// the replica that ran it observes it into the Prometheus metrics (Recorder).
// This package defines the bucket layout both sides share, and reads the
// buckets back (Aggregate).
//
// # Buckets
//
//	{P}:usage:<start>   hash, one per Bucket (start: Unix seconds), expires
//	                    Retention + Bucket after its start. Fields, each
//	                    "<kind>\t<group>\t<repository>\t<workflow>":
//	                      busy, idle        milliseconds (sums)
//	                      runners           runners whose idle time is in idle
//	                      jobs              jobs that started
//	                      waitn, wait       jobs whose wait is known, their wait (ms)
//	                      wait.<i>          of them, those in histogram bucket i
//	                      bootn, boot       runners whose boot time is known, its sum (ms)
//	                      boot.<i>          of them, those in histogram bucket i
//	                    and "s\t<group>\t<repository>\t<workflow>" (the series
//	                    is known) plus "n" (how many series): past MaxSeries,
//	                    a new series is counted as repository and workflow
//	                    "other" of its group.
//
// Busy is counted when the job completes (completed_at - started_at, from
// GitHub's timestamps), idle when the runner's free time ends
// (created_at .. taking a job, going deleting or its record removed), in the
// bucket of that moment. Idle of a runner that takes a job is the job's
// repository's and workflow's; idle of one that never does has repository
// and workflow "" (the warm pool, surplus and failed creates).
package usage

import (
	"strconv"
	"strings"
	"time"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Bucket layout.
const (
	// Bucket is the length of one bucket.
	Bucket = 5 * time.Minute
	// Retention is the longest window read back; a bucket expires
	// Retention + Bucket after its start.
	Retention = 25 * time.Hour
	// MaxSeries bounds the series (group, repository, workflow) of one
	// bucket; the jobs of further series are counted as "other".
	MaxSeries = 200
	// DefaultTopRepositories is scheduler.usage_top_repositories' default.
	DefaultTopRepositories = config.DefaultUsageTopRepositories
	// Other is the repository (and workflow) of the series folded together.
	Other = "other"
	// MaxWorkflowLen bounds a workflow name kept in a series.
	MaxWorkflowLen = 100
)

// Bounds are the upper bounds, in seconds, of the buckets of the wait and
// boot histograms; a last bucket holds what is longer. The Prometheus
// histograms use the same bounds.
var Bounds = []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600}

// Kind is what an Observation measures.
type Kind string

// Kinds of observations.
const (
	// KindBusy: a job's run, on one of our runners (completed - started).
	KindBusy Kind = "busy"
	// KindIdle: a runner's time from its create command to the end of its
	// free time.
	KindIdle Kind = "idle"
	// KindBoot: a runner's time from its create command to online (idle at
	// GitHub, or taking a job).
	KindBoot Kind = "boot"
	// KindJob: a job started; D is its wait (queued -> in_progress) when
	// WaitKnown.
	KindJob Kind = "job"
)

// Observation is one addition a script made to the aggregate.
type Observation struct {
	Kind       Kind
	Group      string
	Repository string
	Workflow   string
	D          time.Duration
	// WaitKnown: D is the job's wait (KindJob only).
	WaitKnown bool
}

// Series names one row of the aggregate.
type Series struct {
	Group      string `json:"group"`
	Repository string `json:"repository"`
	Workflow   string `json:"workflow"`
}

// Workflow is a workflow name as the aggregate keeps it: tabs and line
// breaks (the field separator) become spaces, bounded to MaxWorkflowLen bytes.
func Workflow(name string) string {
	name = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, name)
	if len(name) > MaxWorkflowLen {
		name = strings.ToValidUTF8(name[:MaxWorkflowLen], "")
	}
	return name
}

// Repository is the "owner/name" of a repository, "" when unknown.
func Repository(owner, name string) string {
	if name == "" {
		return ""
	}
	if owner == "" {
		return name
	}
	return owner + "/" + name
}

// BucketStart is the start (Unix seconds) of the bucket that holds t.
func BucketStart(t time.Time) int64 {
	s := t.Unix()
	b := int64(Bucket / time.Second)
	return s - s%b
}

// BoundIndex is the histogram bucket of d (0-based; len(Bounds) for longer).
func BoundIndex(d time.Duration) int {
	s := d.Seconds()
	for i, b := range Bounds {
		if s <= b {
			return i
		}
	}
	return len(Bounds)
}

// LuaBounds renders Bounds in milliseconds as a Lua table constructor.
func LuaBounds() string {
	parts := make([]string, len(Bounds))
	for i, b := range Bounds {
		parts[i] = strconv.FormatInt(int64(b*1000), 10)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// parseField splits a bucket field into its kind and series.
func parseField(f string) (string, Series, bool) {
	parts := strings.SplitN(f, "\t", 4)
	if len(parts) != 4 {
		return "", Series{}, false
	}
	return parts[0], Series{Group: parts[1], Repository: parts[2], Workflow: parts[3]}, true
}
