// Package keys names every Redis stream and key of one manager (docs/design.md §3).
// Every key carries the hash tag {P}, P being the manager's name, so that one
// Lua script may touch any of them and two managers can share a Redis.
package keys

import (
	"strconv"
	"strings"
)

// Keys builds the key names of the manager P.
type Keys struct{ p string }

// New returns the key names of the manager called name.
func New(name string) Keys { return Keys{p: "{" + name + "}"} }

// Prefix is "{P}".
func (k Keys) Prefix() string { return k.p }

// All is the SCAN pattern of every key of the manager: "{P}:*" (P is not
// escaped: manager names have no glob characters).
func (k Keys) All() string { return k.p + ":*" }

// Local returns what follows "{P}:" in key, false when key is not one of the
// manager's (for tools that classify keys; see also Split).
func (k Keys) Local(key string) (string, bool) { return strings.CutPrefix(key, k.p+":") }

// Events is the stream of accepted workflow_job deliveries (group "scheduler").
func (k Keys) Events() string { return k.p + ":events" }

// Provision is the command stream of one backend type (group "provisioner-<type>").
func (k Keys) Provision(backendType string) string { return k.p + ":provision:" + backendType }

// Results is the stream of provisioning outcomes (group "scheduler").
func (k Keys) Results() string { return k.p + ":results" }

// DLQ is the stream of messages given up after too many deliveries.
func (k Keys) DLQ() string { return k.p + ":dlq" }

// DLQRetries counts the automatic retries of one dead-lettered message, by
// the hex SHA-256 of its origin stream, type and data (a message dead-lettered
// again after a retry has a new DLQ id but the same fingerprint).
func (k Keys) DLQRetries(fingerprint string) string { return k.p + ":dlq:retries:" + fingerprint }

// Delivery is the replay guard of one X-GitHub-Delivery.
func (k Keys) Delivery(guid string) string { return k.p + ":delivery:" + guid }

// Body is the replay guard of one signed webhook body, by the hex SHA-256 of
// the raw body: GitHub signs the body, not X-GitHub-Delivery.
func (k Keys) Body(sha256hex string) string { return k.p + ":body:" + sha256hex }

// Runner is the record of one runner.
func (k Keys) Runner(name string) string { return k.p + ":runner:" + name }

// GroupRunners is the set of runners counted against a group's limit.
func (k Keys) GroupRunners(group string) string { return k.p + ":group:" + group + ":runners" }

// GroupDemand is the set of job ids waiting for a runner of the group.
func (k Keys) GroupDemand(group string) string { return k.p + ":group:" + group + ":demand" }

// GroupFree is the sorted set of a group's runners that can still take a job
// (pending, started, idle), scored by creation time in milliseconds.
func (k Keys) GroupFree(group string) string { return k.p + ":group:" + group + ":free" }

// GroupBackoff, while it exists, holds back the top-ups of a group after a
// create failed for good (no hot loop on a permanent failure).
func (k Keys) GroupBackoff(group string) string { return k.p + ":group:" + group + ":backoff" }

// GroupCreateFailures counts a group's consecutive rounds of creates that
// failed for good; it sets the length of the next GroupBackoff (doubling
// from scheduler.create_retry_backoff, bounded) and is deleted by the
// group's first successful create.
func (k Keys) GroupCreateFailures(group string) string {
	return k.p + ":group:" + group + ":create_failures"
}

// GroupMode holds the operator's mode of a group: "paused" or "draining";
// absent when the group is active. The scripts that reserve runners read it
// with the limit check, so no create slips through a pause or a drain.
func (k Keys) GroupMode(group string) string { return k.p + ":group:" + group + ":mode" }

// Retry is the sorted set of commands to emit again ("create:<runner>",
// "delete:<runner>"), scored by the time they are due in milliseconds.
func (k Keys) Retry() string { return k.p + ":retry" }

// GitHubGroup holds the GitHub runner group id of a configured group.
func (k Keys) GitHubGroup(group string) string { return k.p + ":ghgroup:" + group }

// Tombstone marks a runner name whose delete a provisioner handled, so that
// a create command of that name delivered late (taken over from a crashed
// replica) starts nothing. Runner names are never reused.
func (k Keys) Tombstone(name string) string { return k.p + ":tombstone:" + name }

// Job is a job's last known status.
func (k Keys) Job(id int64) string { return k.p + ":job:" + strconv.FormatInt(id, 10) }

// Usage is the usage aggregate's bucket that starts at start (Unix seconds,
// a multiple of the bucket length): a hash of runner-seconds, job counts and
// wait and boot histograms per group, repository and workflow
// (services/scheduler/internal/usage).
func (k Keys) Usage(start int64) string { return k.p + ":usage:" + strconv.FormatInt(start, 10) }

// RecentRefusals is the capped list of the commands provisioners refused
// lately (libs/recent: group, reason, time; newest first), for the status page.
func (k Keys) RecentRefusals() string { return k.p + ":recent:refused" }

// RecentCreateFailures is the capped list of the failed create results the
// scheduler handled lately (libs/recent: group, failure class, time; newest
// first), for the status page.
func (k Keys) RecentCreateFailures() string { return k.p + ":recent:create_failures" }

// Lease is the leader lease of one periodic task.
func (k Keys) Lease(task string) string { return k.p + ":lease:" + task }

// HealthOrphan, while it exists, records that the delete of the orphan
// instance name was emitted (its guard period).
func (k Keys) HealthOrphan(name string) string { return k.p + ":health:orphan:" + name }

// HealthListed, while it exists, records that a list command of backend was
// emitted (the spacing of list commands).
func (k Keys) HealthListed(backend string) string { return k.p + ":health:listed:" + backend }

// HealthList holds what the list command commandID covered, for its inventory.
func (k Keys) HealthList(commandID string) string { return k.p + ":health:list:" + commandID }

// HealthGitHubOrphans is the sorted set of the registrations of scope found
// at GitHub without a record ("<id>:<name>"), scored by when first seen (ms).
func (k Keys) HealthGitHubOrphans(scope string) string { return k.p + ":health:ghorphans:" + scope }

// HealthAbsent is the hash of the runners with a record that were absent
// from the listings of scope at GitHub -> consecutive listings absent from.
func (k Keys) HealthAbsent(scope string) string { return k.p + ":health:absent:" + scope }

// HealthJobChecks is the sorted set of job ids scored by when their status
// was last asked at GitHub (ms).
func (k Keys) HealthJobChecks() string { return k.p + ":health:jobchecks" }

// HealthGitHubGroupRepos holds the fingerprint of the repositories last set
// on the GitHub runner group of group.
func (k Keys) HealthGitHubGroupRepos(group string) string {
	return k.p + ":health:ghgroup-repos:" + group
}

// RecoveryCheckpoint holds the recovery's checkpoint of the webhook
// deliveries of the hook called hook ("": the app's hook).
func (k Keys) RecoveryCheckpoint(hook string) string {
	if hook == "" {
		return k.p + ":recovery:checkpoint"
	}
	return k.p + ":recovery:checkpoint:" + hook
}

// RecoveryGUID counts the redeliveries the recovery asked for one delivery GUID.
func (k Keys) RecoveryGUID(guid string) string { return k.p + ":recovery:guid:" + guid }

// Split returns what the key name f builds comes before and after its
// argument: the shape of a family of keys, for the Lua scripts that build a
// name from a value they read (a runner's group) and for parsing SCAN
// results. f must use its argument once.
func Split(f func(string) string) (before, after string) {
	const mark = "\x00"
	before, after, _ = strings.Cut(f(mark), mark)
	return before, after
}

// SplitID is Split for the key families named by an integer id.
func SplitID(f func(int64) string) (before, after string) {
	const mark = -9_007_199_254_740_991 // no id is negative
	s := strconv.FormatInt(mark, 10)
	before, after, _ = strings.Cut(f(mark), s)
	return before, after
}

// Groups
const (
	GroupScheduler = "scheduler"
)

// ProvisionerGroup is the consumer group of provisioner-<type>.
func ProvisionerGroup(backendType string) string { return "provisioner-" + backendType }
