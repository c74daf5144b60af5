package dispatch_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/recent"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/dispatch"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/metrics"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

type hbundle struct {
	rdb   *redis.Client
	cfg   *config.Config
	keys  keys.Keys
	store *state.Store
	h     *dispatch.Handlers
	m     *metrics.Metrics
	logs  *logbuf.Buffer
	now   time.Time
}

func hsetup(t *testing.T, maxRunners int) *hbundle {
	t.Helper()
	b := &hbundle{rdb: redistest.Client(t), cfg: testConfig(redistest.NewName("h"), maxRunners, 0), logs: &logbuf.Buffer{}, now: time.UnixMilli(1_800_000_000_000)}
	b.keys = keys.New(b.cfg.Name)
	builder := command.New(b.cfg, nil)
	b.store = state.New(b.rdb, b.keys, state.Options{Commands: builder, Now: func() time.Time { return b.now }})
	builder.SetGroupIDs(b.store)
	b.m = metrics.New(nil)
	b.h = dispatch.New(b.cfg, b.store, slog.New(slog.NewJSONHandler(b.logs, nil)), b.m)
	return b
}

func message(t *testing.T, typ string, m proto.Message) stream.Message {
	t.Helper()
	data, err := proto.Marshal(m)
	require.NoError(t, err)
	return stream.Message{Stream: "test", ID: "1-1", Type: typ, Data: data, Deliveries: 1}
}

func (b *hbundle) event(t *testing.T, ev *rmv1.WorkflowJobEvent) {
	t.Helper()
	require.NoError(t, b.h.Event(context.Background(), message(t, stream.TypeWorkflowJob, ev)))
}

func (b *hbundle) result(t *testing.T, r *rmv1.ProvisionResult) {
	t.Helper()
	require.NoError(t, b.h.Result(context.Background(), message(t, stream.TypeResult, r)))
}

// commands decodes every command of the docker stream.
func (b *hbundle) commands(t *testing.T) []*rmv1.ProvisionCommand {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), b.keys.Provision("docker"), "-", "+").Result()
	require.NoError(t, err)
	out := make([]*rmv1.ProvisionCommand, 0, len(msgs))
	for _, m := range msgs {
		require.Equal(t, stream.TypeCommand, m.Values[stream.FieldType])
		var c rmv1.ProvisionCommand
		require.NoError(t, proto.Unmarshal([]byte(m.Values[stream.FieldData].(string)), &c))
		out = append(out, &c)
	}
	return out
}

func queued(job int64, labels ...string) *rmv1.WorkflowJobEvent {
	return &rmv1.WorkflowJobEvent{Action: "queued", JobId: job, Labels: labels, Owner: "ACME", Repository: "app"}
}

func TestQueuedEmitsACompleteCreateCommand(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 3)
	require.NoError(t, b.store.SetGitHubGroupID(context.Background(), "pool", 42))
	b.event(t, queued(7, "Linux"))
	b.event(t, queued(7, "Linux")) // duplicate

	cmds := b.commands(t)
	require.Len(t, cmds, 1, "a duplicate queued made a second runner")
	c := cmds[0].GetCreate()
	require.NotNil(t, c)
	require.NotEmpty(t, cmds[0].GetCommandId())
	require.EqualValues(t, 1, c.GetAttempt())
	spec := c.GetSpec()
	require.True(t, strings.HasPrefix(spec.GetName(), b.cfg.Name+"-pool-"), spec.GetName())
	require.Len(t, spec.GetName(), len(b.cfg.Name+"-pool-")+config.RunnerSuffixLen)
	require.Equal(t, "pool", spec.GetGroup())
	require.Equal(t, "docker", spec.GetBackendType())
	require.Equal(t, []string{"self-hosted", "linux"}, spec.GetLabels())
	require.Equal(t, "acme", spec.GetOrganization())
	require.EqualValues(t, 42, spec.GetRunnerGroupId())
	require.EqualValues(t, 7, spec.GetJobId())
	require.Empty(t, spec.GetInstanceSpec(), "the provisioner has the instance specification in its configuration")
	hash, err := config.SpecHash(b.cfg.Group("pool"))
	require.NoError(t, err)
	require.Equal(t, hash, c.GetSpecHash())

	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Commands.WithLabelValues("create", "queued")))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Events.WithLabelValues("queued", "applied")))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Events.WithLabelValues("queued", "ignored")))
	require.Equal(t, 1, testutil.CollectAndCount(b.m.QueuedToCreate), "queued-to-create observed")
}

func TestUnmatchedJobsAreCountedAndLoggedOncePerLabelSet(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 3)
	b.event(t, queued(1, "gpu"))
	b.event(t, queued(2, "GPU"))
	b.event(t, queued(3, "windows"))
	b.event(t, &rmv1.WorkflowJobEvent{Action: "queued", JobId: 4, Labels: []string{"linux"}, Owner: "other-org", Repository: "x"})

	require.Equal(t, 4.0, testutil.ToFloat64(b.m.UnmatchedJobs))
	require.Equal(t, 3, strings.Count(b.logs.String(), "no runner group matches"), b.logs.String())
	require.Empty(t, b.commands(t))
	n, err := b.rdb.Exists(context.Background(), b.keys.Job(1), b.keys.GroupDemand("pool")).Result()
	require.NoError(t, err)
	require.Zero(t, n, "an unmatched job left state")
}

func TestEventsOutOfOrder(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 3)
	b.event(t, queued(1, "linux"))
	name := b.commands(t)[0].GetCreate().GetSpec().GetName()
	done := &rmv1.WorkflowJobEvent{Action: "completed", JobId: 1, Labels: []string{"linux"}, Owner: "acme", Repository: "app", RunnerName: name}
	b.event(t, done)
	ip := proto.Clone(done).(*rmv1.WorkflowJobEvent)
	ip.Action = "in_progress"
	b.event(t, ip) // late: ignored
	b.event(t, done)

	cmds := b.commands(t)
	require.Len(t, cmds, 2)
	require.Equal(t, name, cmds[1].GetDelete().GetName())
	require.Equal(t, state.ReasonJobCompleted, cmds[1].GetDelete().GetReason())
	require.Equal(t, "acme", cmds[1].GetDelete().GetOrganization())
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Events.WithLabelValues("in_progress", "ignored")))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Events.WithLabelValues("completed", "ignored")))
	j, ok, err := b.store.Job(context.Background(), 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, state.JobCompleted, j.Status)

	// A completed job whose labels no longer match still gets its runner
	// deleted: the group comes from the runner's record.
	b.event(t, queued(2, "linux"))
	name2 := b.commands(t)[2].GetCreate().GetSpec().GetName()
	b.event(t, &rmv1.WorkflowJobEvent{Action: "completed", JobId: 2, Labels: []string{"renamed"}, Owner: "acme", Repository: "app", RunnerName: name2})
	require.Equal(t, name2, b.commands(t)[3].GetDelete().GetName())
}

func failedResult(name string, attempt int32, class rmv1.FailureClass, op string, dead bool) *rmv1.ProvisionResult {
	return &rmv1.ProvisionResult{
		RunnerName: name, Group: "pool", BackendType: "docker", Attempt: attempt,
		Outcome: &rmv1.ProvisionResult_Failed{Failed: &rmv1.Failed{Class: class, Reason: "boom", Operation: op, DeadLettered: dead}},
	}
}

func TestFailedCreate(t *testing.T) {
	t.Parallel()
	retryable, capacity, permanent := rmv1.FailureClass_FAILURE_CLASS_RETRYABLE, rmv1.FailureClass_FAILURE_CLASS_CAPACITY, rmv1.FailureClass_FAILURE_CLASS_PERMANENT
	for _, tc := range []struct {
		name    string
		attempt int32
		class   rmv1.FailureClass
		dead    bool
		retry   bool
	}{
		{"retryable first attempt", 1, retryable, false, true},
		{"capacity", 2, capacity, false, true},
		{"retries exhausted", 5, retryable, false, false},
		{"permanent", 1, permanent, false, false},
		{"dead lettered", 1, retryable, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := hsetup(t, 3)
			ctx := context.Background()
			b.event(t, queued(1, "linux"))
			name := b.commands(t)[0].GetCreate().GetSpec().GetName()
			// Bring the runner to the attempt under test.
			require.NoError(t, b.rdb.HSet(ctx, b.keys.Runner(name), "attempt", tc.attempt).Err())

			b.result(t, failedResult(name, tc.attempt, tc.class, "create", tc.dead))
			// The status page's record of recent create failures.
			failures, err := recent.List(ctx, b.rdb, b.keys.RecentCreateFailures(), 10)
			require.NoError(t, err)
			class := map[rmv1.FailureClass]string{retryable: "retryable", capacity: "capacity", permanent: "permanent"}[tc.class]
			require.Equal(t, []recent.Entry{{Group: "pool", Reason: class, Time: b.now.UTC()}}, failures)
			backoff := dispatch.RetryBackoff(b.cfg.Scheduler.CreateRetryBackoff, int(tc.attempt))
			if tc.retry {
				score, err := b.rdb.ZScore(ctx, b.keys.Retry(), "create:"+name).Result()
				require.NoError(t, err)
				require.EqualValues(t, b.now.Add(backoff).UnixMilli(), score)
				require.Equal(t, state.Pending, runnerState(t, b, name))
				require.Equal(t, 1.0, testutil.ToFloat64(b.m.CreateRetries.WithLabelValues("pool")))

				// The loop re-emits it when due, with the next attempt.
				ok, err := b.store.RetryCreate(ctx, name)
				require.NoError(t, err)
				require.True(t, ok)
				cmds := b.commands(t)
				require.EqualValues(t, tc.attempt+1, cmds[len(cmds)-1].GetCreate().GetAttempt())
				return
			}
			// Released: its instance may exist, so it is deleted
			// (registration first, then instance), and counts against
			// max_runners until the deleted result.
			require.Equal(t, state.Deleting, runnerState(t, b, name))
			cmds := b.commands(t)
			require.Len(t, cmds, 2)
			require.Equal(t, name, cmds[1].GetDelete().GetName())
			require.Equal(t, state.ReasonCreateFailed, cmds[1].GetDelete().GetReason())
			ttl, err := b.rdb.PTTL(ctx, b.keys.GroupBackoff("pool")).Result()
			require.NoError(t, err)
			require.InDelta(t, backoff.Seconds(), ttl.Seconds(), 1)
			require.EqualValues(t, 1, b.rdb.ZCard(ctx, b.keys.GroupDemand("pool")).Val(), "the demand stays")
			// No hot loop: another queued job reserves nothing during the backoff.
			b.event(t, queued(2, "linux"))
			require.Len(t, b.commands(t), 2)
		})
	}
}

func runnerState(t *testing.T, b *hbundle, name string) state.State {
	t.Helper()
	r, ok, err := b.store.Runner(context.Background(), name)
	require.NoError(t, err)
	require.True(t, ok)
	return r.State
}

func TestCreatedDeletedAndFailedDeleteResults(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 1)
	ctx := context.Background()
	b.event(t, queued(1, "linux"))
	b.event(t, queued(2, "linux")) // waits: max_runners 1
	name := b.commands(t)[0].GetCreate().GetSpec().GetName()

	b.result(t, &rmv1.ProvisionResult{RunnerName: name, Group: "pool", BackendType: "docker",
		Outcome: &rmv1.ProvisionResult_Created{Created: &rmv1.Created{InstanceId: "ctr-1", GithubRunnerId: 9,
			Location: map[string]string{"host": "unix:///d.sock"}}}})
	require.Equal(t, state.Started, runnerState(t, b, name))
	rec, _, err := b.store.Runner(ctx, name)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"host": "unix:///d.sock"}, rec.Location)
	require.Equal(t, b.cfg.Group("pool").Organization, rec.Organization)

	// Admin-style delete, then the provisioner fails it: retried with backoff.
	_, err = b.store.RequestDelete(ctx, name, []state.State{state.Started}, state.ReasonAdmin)
	require.NoError(t, err)
	del := b.commands(t)[1].GetDelete()
	require.Equal(t, "ctr-1", del.GetInstanceId())
	require.EqualValues(t, 9, del.GetGithubRunnerId())
	require.Equal(t, map[string]string{"host": "unix:///d.sock"}, del.GetLocation(), "deleted where it was made")
	b.result(t, failedResult(name, 0, rmv1.FailureClass_FAILURE_CLASS_RETRYABLE, "delete", false))
	score, err := b.rdb.ZScore(ctx, b.keys.Retry(), "delete:"+name).Result()
	require.NoError(t, err)
	require.EqualValues(t, b.now.Add(dispatch.DeleteBackoff(1)).UnixMilli(), score)
	require.Equal(t, state.Deleting, runnerState(t, b, name))
	// Failing again (permanent): the next retry waits longer, and it counts.
	b.result(t, failedResult(name, 0, rmv1.FailureClass_FAILURE_CLASS_PERMANENT, "delete", false))
	score, err = b.rdb.ZScore(ctx, b.keys.Retry(), "delete:"+name).Result()
	require.NoError(t, err)
	require.EqualValues(t, b.now.Add(dispatch.DeleteBackoff(2)).UnixMilli(), score)
	require.Equal(t, 20*time.Second, dispatch.DeleteBackoff(2))
	require.EqualValues(t, 1, testutil.ToFloat64(b.m.DeleteFailures.WithLabelValues("pool", "permanent")))
	require.EqualValues(t, 1, testutil.ToFloat64(b.m.DeleteFailures.WithLabelValues("pool", "retryable")))
	rec, _, err = b.store.Runner(ctx, name)
	require.NoError(t, err)
	require.Equal(t, 2, rec.DeleteFailures)
	require.Equal(t, "boom", rec.DeleteError)

	// Deleted: record gone, and job 2 gets the capacity in the same script.
	b.result(t, &rmv1.ProvisionResult{RunnerName: name, Group: "pool", BackendType: "docker",
		Outcome: &rmv1.ProvisionResult_Deleted{Deleted: &rmv1.Deleted{}}})
	_, ok, err := b.store.Runner(ctx, name)
	require.NoError(t, err)
	require.False(t, ok)
	cmds := b.commands(t)
	require.Len(t, cmds, 3)
	require.NotNil(t, cmds[2].GetCreate())
	require.Zero(t, b.rdb.ZScore(ctx, b.keys.Retry(), "delete:"+name).Val(), "retry entry left behind")

	// A created result for a runner without record: deleted, never leaked.
	b.result(t, &rmv1.ProvisionResult{RunnerName: name, Group: "pool", BackendType: "docker",
		Outcome: &rmv1.ProvisionResult_Created{Created: &rmv1.Created{InstanceId: "ctr-1"}}})
	cmds = b.commands(t)
	require.Len(t, cmds, 4)
	require.Equal(t, name, cmds[3].GetDelete().GetName())
	require.Equal(t, "ctr-1", cmds[3].GetDelete().GetInstanceId())
	require.Equal(t, state.ReasonLateCreate, cmds[3].GetDelete().GetReason())
}

func TestRetryBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{0, 10 * time.Second}, {1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {20, dispatch.MaxRetryBackoff}} {
		require.Equal(t, tc.want, dispatch.RetryBackoff(10*time.Second, tc.attempt), "attempt %d", tc.attempt)
	}
}

// GitHub may run a job on a runner of another group whose labels are a
// superset: that group lost a free runner and is topped up at once.
func TestInProgressOnAnotherGroupsRunnerTopsItUp(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 3)
	big := b.cfg.RunnerGroups[0]
	big.Name, big.Labels, big.MinRunners = "big", []string{"linux", "large"}, 1
	b.cfg.RunnerGroups = append(b.cfg.RunnerGroups, big)
	ctx := context.Background()
	g, _ := command.Group(b.cfg, "big")
	res, err := b.store.TopUp(ctx, g)
	require.NoError(t, err)
	bigRunner := res.Reserved[0]

	b.event(t, queued(1, "linux")) // matches pool (fewer extra labels)
	b.event(t, &rmv1.WorkflowJobEvent{Action: "in_progress", JobId: 1, Labels: []string{"linux"}, Owner: "acme", Repository: "app", RunnerName: bigRunner})

	require.Equal(t, state.Busy, runnerState(t, b, bigRunner))
	st, err := b.store.GroupStatus(ctx, "big")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Total, "big is back to min_runners free")
	require.EqualValues(t, 1, st.Free)
	pool, err := b.store.GroupStatus(ctx, "pool")
	require.NoError(t, err)
	require.Zero(t, pool.Demand)
}

func TestEventWithoutJobIDIsIgnored(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 3)
	b.event(t, queued(0, "linux"))
	require.Empty(t, b.commands(t))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Events.WithLabelValues("queued", "invalid")))
}

// A busy result: the runner chosen for deletion took a job, GitHub refused to
// remove it and the provisioner kept its instance. The runner is busy again,
// holds its capacity, and is deleted when its job completes.
func TestBusyResult(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 2)
	ctx := context.Background()
	b.event(t, queued(1, "linux"))
	name := b.commands(t)[0].GetCreate().GetSpec().GetName()
	b.result(t, &rmv1.ProvisionResult{RunnerName: name, Group: "pool", BackendType: "docker",
		Outcome: &rmv1.ProvisionResult_Created{Created: &rmv1.Created{InstanceId: "ctr-1", GithubRunnerId: 9}}})
	_, err := b.store.RequestDelete(ctx, name, []state.State{state.Started}, state.ReasonScaleDown)
	require.NoError(t, err)
	require.False(t, b.commands(t)[1].GetDelete().GetRegistrationGone(), "a scale-down must ask GitHub first")

	b.result(t, &rmv1.ProvisionResult{RunnerName: name, Group: "pool", BackendType: "docker",
		Outcome: &rmv1.ProvisionResult_Busy{Busy: &rmv1.RunnerBusy{}}})
	require.Equal(t, state.Busy, runnerState(t, b, name))
	require.EqualValues(t, 1, testutil.ToFloat64(b.m.Results.WithLabelValues("busy")))
	require.Len(t, b.commands(t), 2, "a busy runner is not replaced")

	b.event(t, &rmv1.WorkflowJobEvent{Action: "completed", JobId: 1, RunnerName: name, Labels: []string{"linux"}, Owner: "ACME", Repository: "app"})
	cmds := b.commands(t)
	require.Len(t, cmds, 3)
	require.Equal(t, state.ReasonJobCompleted, cmds[2].GetDelete().GetReason())
	require.True(t, cmds[2].GetDelete().GetRegistrationGone())
}

// TestQueuedWorkflowNameAndSpillOver: a group with workflow_name serves only
// that workflow's jobs; a job whose group is full spills over to a matching
// group with spill_over, and its later events release that group's demand.
func TestQueuedWorkflowNameAndSpillOver(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 1)
	release := b.cfg.RunnerGroups[0]
	release.Name, release.WorkflowName, release.MaxRunners = "release", "Release", 5
	spill := b.cfg.RunnerGroups[0]
	spill.Name, spill.Labels, spill.SpillOver, spill.MaxRunners = "spill", []string{"linux", "large"}, true, 5
	b.cfg.RunnerGroups = append(b.cfg.RunnerGroups, release, spill)
	ctx := context.Background()
	status := func(g string) state.GroupStatus {
		st, err := b.store.GroupStatus(ctx, g)
		require.NoError(t, err)
		return st
	}

	ev := queued(1, "linux")
	ev.WorkflowName = "Release"
	b.event(t, ev)
	require.EqualValues(t, 1, status("release").Demand, "the workflow's own group")

	ev = queued(2, "linux")
	ev.WorkflowName = "release" // case-sensitive: not the release group
	b.event(t, ev)
	require.EqualValues(t, 1, status("pool").Demand)
	require.EqualValues(t, 0, status("spill").Demand)

	// pool is full (max 1): the next job spills over.
	b.event(t, queued(3, "linux"))
	require.EqualValues(t, 1, status("pool").Demand)
	require.EqualValues(t, 1, status("spill").Demand)
	require.EqualValues(t, 1, status("spill").Total)

	// Its completion (resolved by labels to pool) releases spill's demand.
	b.event(t, &rmv1.WorkflowJobEvent{Action: "completed", JobId: 3, Labels: []string{"linux"}, Owner: "acme", Repository: "app"})
	require.EqualValues(t, 0, status("spill").Demand)
	require.EqualValues(t, 1, status("pool").Demand)
}

// streamCommands decodes every command of the stream of backend type bt.
func (b *hbundle) streamCommands(t *testing.T, bt string) []*rmv1.ProvisionCommand {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), b.keys.Provision(bt), "-", "+").Result()
	require.NoError(t, err)
	out := make([]*rmv1.ProvisionCommand, 0, len(msgs))
	for _, m := range msgs {
		var c rmv1.ProvisionCommand
		require.NoError(t, proto.Unmarshal([]byte(m.Values[stream.FieldData].(string)), &c))
		out = append(out, &c)
	}
	return out
}

func updates(cmds []*rmv1.ProvisionCommand) []*rmv1.UpdateRunner {
	var out []*rmv1.UpdateRunner
	for _, c := range cmds {
		if u := c.GetUpdate(); u != nil {
			out = append(out, u)
		}
	}
	return out
}

// in_progress of a job on one of our runners emits exactly one UpdateRunner
// (job id, run id, repository, workflow, busy, where the runner is) on the
// runner's backend stream; a redelivered in_progress emits none. A Docker
// runner gets none: its record keeps the metadata.
func TestInProgressEmitsOneUpdateRunner(t *testing.T) {
	t.Parallel()
	b := hsetup(t, 3)
	b.cfg.RunnerGroups = append(b.cfg.RunnerGroups, config.RunnerGroup{
		Name: "vm", Organization: "acme", MaxRunners: 2, Labels: []string{"self-hosted", "vm"},
		Backend: config.Backend{Type: "aws", AWS: &config.AWSSpec{Region: "eu-west-1", AMI: "ami-1"}},
	})
	b.cfg.SetDefaults()
	ctx := context.Background()

	b.event(t, queued(7, "self-hosted", "vm"))
	create := b.streamCommands(t, "aws")
	require.Len(t, create, 1)
	name := create[0].GetCreate().GetSpec().GetName()
	b.result(t, &rmv1.ProvisionResult{CommandId: "c1", RunnerName: name, Group: "vm", BackendType: "aws",
		Outcome: &rmv1.ProvisionResult_Created{Created: &rmv1.Created{InstanceId: "i-0abc", Location: map[string]string{"region": "eu-west-1"}}}})
	started := &rmv1.WorkflowJobEvent{Action: "in_progress", JobId: 7, RunId: 4242, Labels: []string{"self-hosted", "vm"},
		Owner: "ACME", Repository: "app", WorkflowName: "CI / build", RunnerName: name}
	b.event(t, started)
	b.event(t, started) // redelivered

	ups := updates(b.streamCommands(t, "aws"))
	require.Len(t, ups, 1, "one UpdateRunner per job")
	u := ups[0]
	require.Equal(t, name, u.GetName())
	require.Equal(t, "vm", u.GetGroup())
	require.Equal(t, "aws", u.GetBackendType())
	require.Equal(t, "i-0abc", u.GetInstanceId())
	require.Equal(t, map[string]string{"region": "eu-west-1"}, u.GetLocation())
	require.EqualValues(t, 7, u.GetJobId())
	require.EqualValues(t, 4242, u.GetRunId())
	require.Equal(t, "ACME/app", u.GetRepository())
	require.Equal(t, "CI / build", u.GetWorkflow())
	require.Equal(t, "busy", u.GetState())
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Commands.WithLabelValues("update", "job_started")))

	// Docker: no command, the metadata in the record.
	b.event(t, queued(8, "linux"))
	dname := b.commands(t)[0].GetCreate().GetSpec().GetName()
	b.event(t, &rmv1.WorkflowJobEvent{Action: "in_progress", JobId: 8, RunId: 99, Labels: []string{"linux"},
		Owner: "ACME", Repository: "app", WorkflowName: "lint", RunnerName: dname})
	require.Empty(t, updates(b.commands(t)))
	r, ok, err := b.store.Runner(ctx, dname)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, state.Busy, r.State)
	require.EqualValues(t, 8, r.JobID)
	require.EqualValues(t, 99, r.JobRunID)
	require.Equal(t, "ACME/app", r.JobRepository)
	require.Equal(t, "lint", r.JobWorkflow)
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.Commands.WithLabelValues("update", "job_started")))
}
