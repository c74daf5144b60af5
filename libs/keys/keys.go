// Package keys names every Redis stream and key of one manager (docs/design.md §3).
// Every key carries the hash tag {P}, P being the manager's name, so that one
// Lua script may touch any of them and two managers can share a Redis.
package keys

import "strconv"

// Keys builds the key names of the manager P.
type Keys struct{ p string }

// New returns the key names of the manager called name.
func New(name string) Keys { return Keys{p: "{" + name + "}"} }

// Prefix is "{P}".
func (k Keys) Prefix() string { return k.p }

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

// Lease is the leader lease of one periodic task.
func (k Keys) Lease(task string) string { return k.p + ":lease:" + task }

// Groups
const (
	GroupScheduler = "scheduler"
)

// ProvisionerGroup is the consumer group of provisioner-<type>.
func ProvisionerGroup(backendType string) string { return "provisioner-" + backendType }
