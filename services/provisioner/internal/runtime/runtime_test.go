package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/testutil/logbuf"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime/runtimetest"
)

const (
	backendType = config.BackendDocker
	org         = "acme"
	waitFor     = 20 * time.Second
)

// bundle is one test's provisioner: a real Redis, the in-memory backend, the
// fake GitHub, and the runtime consuming in the background.
type bundle struct {
	rdb  *redis.Client
	keys keys.Keys
	gh   *runtimetest.GitHub
	mem  *memory.Backend
	reg  *prometheus.Registry
	logs *logbuf.Buffer
	pub  *stream.Publisher
	seq  int
	// stop cancels the runtime and waits for Run to return (also at cleanup).
	stop func()
	// cfg is the provisioner's configuration (testConfig).
	cfg *config.Config
}

// testConfig is the provisioner's configuration in these tests: group linux
// of organization acme, and group repo of its repository app, both on the
// backend type of the tests, and group cloud on another type.
func testConfig() *config.Config {
	return &config.Config{Name: "rt", RunnerGroups: []config.RunnerGroup{
		{Name: "linux", Organization: org, MaxRunners: 10, Labels: []string{"self-hosted", "linux"},
			Backend: config.Backend{Type: backendType, Docker: &config.DockerSpec{Image: "x"}}},
		{Name: "repo", Organization: org, Repository: "app", MaxRunners: 10, Labels: []string{"self-hosted", "linux"},
			Backend: config.Backend{Type: backendType, Docker: &config.DockerSpec{Image: "y"}}},
		{Name: "cloud", Organization: org, MaxRunners: 10, Labels: []string{"self-hosted", "linux"},
			Backend: config.Backend{Type: config.BackendGCP, GCP: &config.GCPSpec{Project: "p", Zones: []string{"z"}, MachineType: "m"}}},
	}}
}

func setup(t *testing.T, mutate ...func(*runtime.Options)) *bundle {
	t.Helper()
	b := &bundle{
		rdb:  redistest.Client(t),
		keys: keys.New(redistest.NewName("rt")),
		gh:   runtimetest.NewGitHub(),
		mem:  memory.New(memory.Options{Manager: "rt"}),
		reg:  prometheus.NewRegistry(),
		logs: &logbuf.Buffer{},
		cfg:  testConfig(),
	}
	b.pub = stream.NewPublisher(b.rdb, 1000)
	opts := runtime.Options{
		Type:            backendType,
		Config:          b.cfg,
		Backend:         func([]byte) (backend.Backend, error) { return b.mem, nil },
		GitHub:          b.gh,
		Redis:           b.rdb,
		Keys:            b.keys,
		Publisher:       b.pub,
		Consumer:        "test",
		Concurrency:     4,
		CallTimeout:     5 * time.Second,
		MinIdle:         10 * time.Second,
		MaxDeliveries:   4,
		RetryDeliveries: 3,
		Backoff:         func(int64) time.Duration { return 10 * time.Millisecond },
		Block:           50 * time.Millisecond,
		Logger:          slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:         b.reg,
	}
	for _, f := range mutate {
		f(&opts)
	}
	rt, err := runtime.New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(b.stop)
	require.Eventually(t, func() bool { return rt.Ready(context.Background()) == nil }, waitFor, 10*time.Millisecond,
		"the consumer group was never created")
	return b
}

// spec is the spec of a runner of group linux as the scheduler sends it.
func (b *bundle) spec(name string) *rmv1.RunnerSpec {
	return &rmv1.RunnerSpec{
		Name: name, Group: "linux", BackendType: backendType, Labels: []string{"self-hosted", "linux"},
		Organization: org,
	}
}

// send publishes a command and returns its id.
func (b *bundle) send(t *testing.T, cmd *rmv1.ProvisionCommand) string {
	t.Helper()
	b.seq++
	cmd.CommandId = fmt.Sprintf("cmd-%d", b.seq)
	cmd.IssuedAt = timestamppb.Now()
	_, err := b.pub.Publish(context.Background(), b.keys.Provision(backendType), stream.TypeCommand, cmd)
	require.NoError(t, err)
	return cmd.CommandId
}

func (b *bundle) create(t *testing.T, name string) string {
	t.Helper()
	return b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{
		Create: &rmv1.CreateRunner{Spec: b.spec(name), Attempt: 1},
	}})
}

func (b *bundle) delete(t *testing.T, name string, runnerID int64) string {
	t.Helper()
	return b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{
		Delete: &rmv1.DeleteRunner{Name: name, Group: "linux", BackendType: backendType, Organization: org,
			GithubRunnerId: runnerID, Reason: "job_completed"},
	}})
}

// results returns every result published so far.
func (b *bundle) results(t *testing.T) []*rmv1.ProvisionResult {
	t.Helper()
	entries, err := b.rdb.XRange(context.Background(), b.keys.Results(), "-", "+").Result()
	require.NoError(t, err)
	var out []*rmv1.ProvisionResult
	for _, e := range entries {
		require.Equal(t, stream.TypeResult, e.Values[stream.FieldType])
		data, _ := e.Values[stream.FieldData].(string)
		res := &rmv1.ProvisionResult{}
		require.NoError(t, stream.Message{Type: stream.TypeResult, Data: []byte(data)}.Unmarshal(res))
		out = append(out, res)
	}
	return out
}

// result waits for the result of the command id, and for the command to be
// acknowledged.
func (b *bundle) result(t *testing.T, id string) *rmv1.ProvisionResult {
	t.Helper()
	var got *rmv1.ProvisionResult
	require.Eventually(t, func() bool {
		for _, r := range b.results(t) {
			if r.GetCommandId() == id {
				got = r
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond, "no result for command %s", id)
	b.waitAcked(t)
	return got
}

// waitAcked waits until no command is pending in the provisioner's group.
func (b *bundle) waitAcked(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		p, err := b.rdb.XPending(context.Background(), b.keys.Provision(backendType), keys.ProvisionerGroup(backendType)).Result()
		return err == nil && p.Count == 0
	}, waitFor, 10*time.Millisecond, "commands still pending")
}

func (b *bundle) counter(command, outcome string) float64 {
	mfs, _ := b.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "runner_manager_provisioner_commands_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["command"] == command && labels["outcome"] == outcome && labels["backend"] == backendType {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.create(t, "rt-linux-1")
	res := b.result(t, id)

	created := res.GetCreated()
	require.NotNil(t, created, "result: %v", res)
	require.Equal(t, "rt-linux-1", res.GetRunnerName())
	require.Equal(t, "linux", res.GetGroup())
	require.Equal(t, backendType, res.GetBackendType())
	require.EqualValues(t, 1, res.GetAttempt())
	require.NotNil(t, res.GetFinishedAt())

	insts := b.mem.Instances()
	require.Len(t, insts, 1)
	require.Equal(t, insts[0].Instance.ID, created.GetInstanceId())
	regs := b.gh.Runners()
	require.Len(t, regs, 1)
	require.Equal(t, regs[0].ID, created.GetGithubRunnerId())
	require.Equal(t, github.OrgScope(org), regs[0].Scope)
	require.Equal(t, []string{"self-hosted", "linux"}, regs[0].Labels)
	require.NotZero(t, regs[0].GroupID, "the runner group id was not resolved")
	// The instance got the JIT configuration GitHub generated for it.
	require.Equal(t, b.gh.JITConfigs(), []string{insts[0].Spec.JITConfig.Value()})
	require.Equal(t, []byte(`{"image":"x"}`), insts[0].Spec.InstanceSpec)
	require.EqualValues(t, 1, b.counter("create", "created"))
}

func TestCreateResolvesTheGroupOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.gh.StrictGroups()
	b.gh.AddGroup(org, "linux", 42)
	for i := range 3 {
		require.NotNil(t, b.result(t, b.create(t, fmt.Sprintf("rt-linux-%d", i))).GetCreated())
	}
	for _, r := range b.gh.Runners() {
		require.EqualValues(t, 42, r.GroupID)
	}
	require.Equal(t, 1, b.gh.Calls(runtimetest.MethodGetRunnerGroupByName))
}

func TestCreateRepositoryRunnerJoinsTheDefaultGroup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spec := b.spec("rt-repo-1")
	spec.Group, spec.Repository = "repo", "app"
	id := b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{Spec: spec, Attempt: 1}}})
	require.NotNil(t, b.result(t, id).GetCreated())
	regs := b.gh.Runners()
	require.Len(t, regs, 1)
	require.Equal(t, github.RepoScope(org, "app"), regs[0].Scope)
	require.EqualValues(t, 1, regs[0].GroupID)
	require.Zero(t, b.gh.Calls(runtimetest.MethodGetRunnerGroupByName))
}

// A create delivered again after a crash finds what the first delivery made.
func TestCreateDeliveredAgain(t *testing.T) {
	t.Parallel()
	t.Run("registered and started: reused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
		require.NotNil(t, first)
		// The same command again (the first delivery crashed after acting,
		// before its acknowledgement).
		again := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
		require.NotNil(t, again)
		require.Equal(t, first.GetInstanceId(), again.GetInstanceId())
		require.Equal(t, first.GetGithubRunnerId(), again.GetGithubRunnerId())
		require.Len(t, b.mem.Instances(), 1)
		require.Len(t, b.gh.Runners(), 1)
		require.Equal(t, 1, b.mem.Store().Calls(memory.OpCreate), "the instance was created twice")
	})
	t.Run("registered, never started: registered again", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		stale := b.gh.Register(github.OrgScope(org), "rt-linux-1")
		created := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
		require.NotNil(t, created)
		regs := b.gh.Runners()
		require.Len(t, regs, 1, "two registrations")
		require.NotEqual(t, stale.ID, regs[0].ID, "the stale registration was kept")
		require.Equal(t, regs[0].ID, created.GetGithubRunnerId())
		insts := b.mem.Instances()
		require.Len(t, insts, 1)
		jits := b.gh.JITConfigs()
		require.Equal(t, jits[len(jits)-1], insts[0].Spec.JITConfig.Value(), "the instance has a stale JIT config")
	})
	t.Run("transient backend failure: retried, one registration", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.mem.FailNext(memory.OpCreate, 1, fmt.Errorf("503: %w", backend.ErrRetryable))
		created := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
		require.NotNil(t, created)
		require.Equal(t, 2, b.mem.Store().Calls(memory.OpCreate))
		regs := b.gh.Runners()
		require.Len(t, regs, 1)
		require.Equal(t, regs[0].ID, created.GetGithubRunnerId())
		require.Len(t, b.mem.Instances(), 1)
		require.EqualValues(t, 1, b.counter("create", "retry"))
	})
	t.Run("two deliveries at once: one instance, one registration", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ids := []string{b.create(t, "rt-linux-1"), b.create(t, "rt-linux-1")}
		var instanceIDs []string
		for _, id := range ids {
			res := b.result(t, id)
			// The loser of the race may see the name taken while the winner
			// has not started the instance yet; it is then retried.
			require.NotNil(t, res.GetCreated(), "result: %v", res)
			instanceIDs = append(instanceIDs, res.GetCreated().GetInstanceId())
		}
		require.Len(t, b.mem.Instances(), 1)
		require.Len(t, b.gh.Runners(), 1)
		require.Equal(t, instanceIDs[0], instanceIDs[1])
	})
}

func TestCreateFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		inject      func(b *bundle)
		class       rmv1.FailureClass
		createCalls int
	}{
		{
			name: "backend capacity: answered at once",
			inject: func(b *bundle) {
				b.mem.FailNext(memory.OpCreate, 1, fmt.Errorf("zone exhausted: %w", backend.ErrCapacity))
			},
			class:       rmv1.FailureClass_FAILURE_CLASS_CAPACITY,
			createCalls: 1,
		},
		{
			name: "backend permanent: answered at once",
			inject: func(b *bundle) {
				b.mem.FailNext(memory.OpCreate, 1, fmt.Errorf("no such image: %w", backend.ErrPermanent))
			},
			class:       rmv1.FailureClass_FAILURE_CLASS_PERMANENT,
			createCalls: 1,
		},
		{
			name:        "backend retryable: given up after RetryDeliveries",
			inject:      func(b *bundle) { b.mem.FailNext(memory.OpCreate, 10, fmt.Errorf("503: %w", backend.ErrRetryable)) },
			class:       rmv1.FailureClass_FAILURE_CLASS_RETRYABLE,
			createCalls: 3,
		},
		{
			name: "github permanent",
			inject: func(b *bundle) {
				b.gh.FailNext(runtimetest.MethodGenerateJITConfig, fmt.Errorf("403: %w", github.ErrPermanent))
			},
			class: rmv1.FailureClass_FAILURE_CLASS_PERMANENT,
		},
		{
			name: "github rate limited: given up after RetryDeliveries",
			inject: func(b *bundle) {
				for range 3 {
					b.gh.FailNext(runtimetest.MethodGenerateJITConfig, fmt.Errorf("403: %w", github.ErrRateLimited))
				}
			},
			class: rmv1.FailureClass_FAILURE_CLASS_RETRYABLE,
		},
		{
			name:   "unknown runner group",
			inject: func(b *bundle) { b.gh.StrictGroups() },
			class:  rmv1.FailureClass_FAILURE_CLASS_PERMANENT,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			tt.inject(b)
			res := b.result(t, b.create(t, "rt-linux-1"))
			failed := res.GetFailed()
			require.NotNil(t, failed, "result: %v", res)
			require.Equal(t, tt.class, failed.GetClass(), "reason: %s", failed.GetReason())
			require.Equal(t, "create", failed.GetOperation())
			require.False(t, failed.GetDeadLettered())
			require.NotEmpty(t, failed.GetReason())
			require.Equal(t, "rt-linux-1", res.GetRunnerName())
			require.Equal(t, tt.createCalls, b.mem.Store().Calls(memory.OpCreate))
			// Nothing is left behind: no instance, no registration.
			require.Empty(t, b.mem.Instances())
			require.Empty(t, b.gh.Runners())
			// Nothing went to the DLQ: the scheduler decides what comes next.
			n, err := b.rdb.XLen(context.Background(), b.keys.DLQ()).Result()
			require.NoError(t, err)
			require.Zero(t, n)
		})
	}
}

func TestDeleteTwice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
	require.NotNil(t, created)

	// The first by runner id, the second (a repeated command) by name.
	for i, runnerID := range []int64{created.GetGithubRunnerId(), 0} {
		res := b.result(t, b.delete(t, "rt-linux-1", runnerID))
		require.NotNil(t, res.GetDeleted(), "delete #%d: %v", i+1, res)
		require.Equal(t, "rt-linux-1", res.GetRunnerName())
		require.Empty(t, b.mem.Instances())
		require.Empty(t, b.gh.Runners())
	}
	require.EqualValues(t, 2, b.counter("delete", "deleted"))
}

func TestDeleteFindsTheRegistrationByName(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-1")).GetCreated())
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-2")).GetCreated())
	require.NotNil(t, b.result(t, b.delete(t, "rt-linux-1", 0)).GetDeleted())
	regs := b.gh.Runners()
	require.Len(t, regs, 1)
	require.Equal(t, "rt-linux-2", regs[0].Name)
	insts := b.mem.Instances()
	require.Len(t, insts, 1)
	require.Equal(t, "rt-linux-2", insts[0].Instance.Name)
}

// A runner whose job completed was unregistered by GitHub: the delete removes
// the instance and makes no GitHub call, even when the registration lingers
// (the health checks remove that one).
func TestDeleteOfRegistrationGoneCallsNoGitHub(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
	require.NotNil(t, created)
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{
		Delete: &rmv1.DeleteRunner{Name: "rt-linux-1", Group: "linux", BackendType: backendType, Organization: org,
			GithubRunnerId: created.GetGithubRunnerId(), Reason: "job_completed", RegistrationGone: true},
	}}))
	require.NotNil(t, res.GetDeleted(), "result: %v", res)
	require.Empty(t, b.mem.Instances())
	require.Zero(t, b.gh.Calls(runtimetest.MethodDeleteRunner))
	require.Zero(t, b.gh.Calls(runtimetest.MethodGetRunnerByName))
	require.Len(t, b.gh.Runners(), 1, "the lingering registration is left to the health checks")
}

// A runner that took a job since the scheduler chose it: GitHub refuses to
// remove its registration, and the delete leaves the instance alone and
// answers busy. The registration is asked first, so the job is never killed.
func TestDeleteOfABusyRunnerKeepsItsInstance(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{"scale_down", "time_to_start", "orphan", "admin", "retry"} {
		t.Run(reason, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			require.NotNil(t, b.result(t, b.create(t, "rt-linux-1")).GetCreated())
			b.gh.FailNext(runtimetest.MethodDeleteRunner, fmt.Errorf("busy: %w", github.ErrRunnerBusy))
			res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{
				Delete: &rmv1.DeleteRunner{Name: "rt-linux-1", Group: "linux", BackendType: backendType,
					Organization: org, Reason: reason},
			}}))
			require.NotNil(t, res.GetBusy(), "result: %v", res)
			require.Len(t, b.mem.Instances(), 1, "the instance of a busy runner was deleted")
			require.Len(t, b.gh.Runners(), 1)
			require.EqualValues(t, 1, b.counter("delete", "busy"))
		})
	}
}

// time_to_live is a hard bound and admin_force an operator's order: the
// instance goes even when the runner runs a job.
func TestForcedDeleteOfABusyRunner(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{"time_to_live", "admin_force"} {
		t.Run(reason, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			require.NotNil(t, b.result(t, b.create(t, "rt-linux-1")).GetCreated())
			b.gh.FailNext(runtimetest.MethodDeleteRunner, fmt.Errorf("busy: %w", github.ErrRunnerBusy))
			res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{
				Delete: &rmv1.DeleteRunner{Name: "rt-linux-1", Group: "linux", BackendType: backendType,
					Organization: org, Reason: reason},
			}}))
			require.NotNil(t, res.GetDeleted(), "result: %v", res)
			require.Empty(t, b.mem.Instances())
		})
	}
}

// The registration goes before the instance: a registration delete that
// fails (and is retried by another delivery) has not touched the instance
// yet.
func TestDeleteRemovesTheRegistrationFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *runtime.Options) { o.RetryDeliveries = 1 })
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-1")).GetCreated())
	b.gh.FailNext(runtimetest.MethodDeleteRunner, fmt.Errorf("refused: %w", github.ErrPermanent))
	res := b.result(t, b.delete(t, "rt-linux-1", 0))
	require.NotNil(t, res.GetFailed(), "result: %v", res)
	require.Len(t, b.mem.Instances(), 1, "the instance went before its registration")
	require.NotNil(t, b.result(t, b.delete(t, "rt-linux-1", 0)).GetDeleted())
	require.Empty(t, b.mem.Instances())
	require.Empty(t, b.gh.Runners())
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, n := range []string{"rt-linux-2", "rt-linux-1"} {
		require.NotNil(t, b.result(t, b.create(t, n)).GetCreated())
	}
	// Another manager's instance on the same backend is not listed.
	other := memory.New(memory.Options{Manager: "other", Store: b.mem.Store()})
	_, err := other.Create(context.Background(), backend.RunnerSpec{Name: "other-1", Group: "linux"})
	require.NoError(t, err)

	before := time.Now()
	id := b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_List{List: &rmv1.ListInstances{
		// Ignored: the two groups of the configuration on this backend are
		// listed once each, merged.
		InstanceSpecs: [][]byte{[]byte(`{"image":"z"}`)},
	}}})
	res := b.result(t, id)
	inv := res.GetInventory()
	require.NotNil(t, inv, "result: %v", res)
	var names []string
	for _, i := range inv.GetInstances() {
		names = append(names, i.GetName())
		require.Equal(t, "linux", i.GetGroup())
		require.Equal(t, memory.StateRunning, i.GetState())
		require.NotEmpty(t, i.GetInstanceId())
		require.NotNil(t, i.GetCreatedAt())
	}
	require.Equal(t, []string{"rt-linux-1", "rt-linux-2"}, names)
	require.False(t, inv.GetTakenAt().AsTime().Before(before.Truncate(time.Microsecond)))
	require.False(t, inv.GetTakenAt().AsTime().After(res.GetFinishedAt().AsTime()))
}

func TestPoisonGoesToTheDLQWithAFailedResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// An entry whose data is not a ProvisionCommand.
	_, err := b.rdb.XAdd(context.Background(), &redis.XAddArgs{
		Stream: b.keys.Provision(backendType),
		Values: []any{stream.FieldType, stream.TypeCommand, stream.FieldData, "\xff\xff not protobuf", stream.FieldTraceparent, ""},
	}).Result()
	require.NoError(t, err)
	// A create that crashes the handler every time (the hook panics).
	b.mem.SetHook(func(ctx context.Context, op memory.Op, name string) error {
		if op == memory.OpCreate {
			panic("backend bug")
		}
		return nil
	})
	crashing := b.create(t, "rt-linux-1")

	var poison, crashed *rmv1.ProvisionResult
	require.Eventually(t, func() bool {
		for _, r := range b.results(t) {
			switch {
			case r.GetCommandId() == "" && r.GetFailed().GetDeadLettered():
				poison = r
			case r.GetCommandId() == crashing:
				crashed = r
			}
		}
		return poison != nil && crashed != nil
	}, waitFor, 10*time.Millisecond, "no dead-letter results")
	b.waitAcked(t)

	require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_PERMANENT, poison.GetFailed().GetClass())
	require.True(t, crashed.GetFailed().GetDeadLettered(), "result: %v", crashed)
	require.Equal(t, "create", crashed.GetFailed().GetOperation())
	require.Equal(t, "rt-linux-1", crashed.GetRunnerName())
	require.EqualValues(t, 1, crashed.GetAttempt())

	dlq, err := b.rdb.XRange(context.Background(), b.keys.DLQ(), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, dlq, 2)
	require.GreaterOrEqual(t, b.counter("unknown", "poison"), 1.0)
	require.EqualValues(t, 1, b.counter("unknown", "dead_lettered"))
	require.EqualValues(t, 1, b.counter("create", "dead_lettered"))
}

// The JIT configuration reaches the instance and nothing else: no Redis key,
// no stream entry, no log line, whatever happened to the commands.
func TestJITConfigNeverLeaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, b.create(t, fmt.Sprintf("rt-linux-%d", i)))
	}
	for _, id := range ids {
		require.NotNil(t, b.result(t, id).GetCreated())
	}
	// Failures after the JIT configuration was generated.
	b.mem.FailNext(memory.OpCreate, 1, fmt.Errorf("bad image: %w", backend.ErrPermanent))
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-failed")).GetFailed())
	b.mem.FailNext(memory.OpCreate, 1, fmt.Errorf("timeout: %w", backend.ErrRetryable))
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-retried")).GetCreated())
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-0")).GetCreated()) // delivered again
	require.NotNil(t, b.result(t, b.delete(t, "rt-linux-1", 0)).GetDeleted())

	secrets := b.gh.JITConfigs()
	require.GreaterOrEqual(t, len(secrets), 5)
	dump := dumpRedis(t, b.rdb)
	require.NotEmpty(t, dump)
	logs := b.logs.String()
	require.Contains(t, logs, "rt-linux-failed", "the logs are not captured")
	for _, s := range secrets {
		require.NotContains(t, dump, s, "a JIT config is in Redis")
		require.NotContains(t, logs, s, "a JIT config is in the logs")
	}
}

// dumpRedis returns the text of every key and stream entry of the Redis.
func dumpRedis(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	var sb strings.Builder
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		sb.WriteString(k + "\n")
		typ, err := rdb.Type(ctx, k).Result()
		require.NoError(t, err)
		switch typ {
		case "stream":
			entries, err := rdb.XRange(ctx, k, "-", "+").Result()
			require.NoError(t, err)
			for _, e := range entries {
				fmt.Fprintf(&sb, "%s %v\n", e.ID, e.Values)
			}
		case "string":
			v, err := rdb.Get(ctx, k).Result()
			require.NoError(t, err)
			sb.WriteString(v + "\n")
		case "hash":
			v, err := rdb.HGetAll(ctx, k).Result()
			require.NoError(t, err)
			fmt.Fprintf(&sb, "%v\n", v)
		case "set":
			v, err := rdb.SMembers(ctx, k).Result()
			require.NoError(t, err)
			fmt.Fprintf(&sb, "%v\n", v)
		case "zset":
			v, err := rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
			require.NoError(t, err)
			fmt.Fprintf(&sb, "%v\n", v)
		case "list":
			v, err := rdb.LRange(ctx, k, 0, -1).Result()
			require.NoError(t, err)
			fmt.Fprintf(&sb, "%v\n", v)
		default:
			t.Fatalf("key %s of unexpected type %s", k, typ)
		}
	}
	require.NoError(t, iter.Err())
	return sb.String()
}

// A permanent JIT failure forgets the cached runner group id (the group may
// have been deleted and created again at GitHub).
func TestRunnerGroupLookedUpAgainAfterAPermanentFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-1")).GetCreated())
	b.gh.FailNext(runtimetest.MethodGenerateJITConfig, fmt.Errorf("404: %w", github.ErrNotFound))
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-2")).GetFailed())
	require.NotNil(t, b.result(t, b.create(t, "rt-linux-3")).GetCreated())
	require.Equal(t, 2, b.gh.Calls(runtimetest.MethodGetRunnerGroupByName))
}

// A command interrupted by a shutdown is neither answered nor acknowledged:
// it stays pending for the next replica.
func TestShutdownLeavesTheCommandPending(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *runtime.Options) { o.ShutdownTimeout = 50 * time.Millisecond })
	entered := make(chan struct{})
	b.mem.SetHook(func(ctx context.Context, op memory.Op, name string) error {
		if op == memory.OpCreate {
			close(entered)
			<-ctx.Done() // a backend call that outlives the shutdown deadline
			return fmt.Errorf("create %s: %w: %w", name, backend.ErrRetryable, ctx.Err())
		}
		return nil
	})
	b.create(t, "rt-linux-1")
	<-entered
	b.stop()

	require.Empty(t, b.results(t), "a result was published for work not done")
	p, err := b.rdb.XPending(context.Background(), b.keys.Provision(backendType), keys.ProvisionerGroup(backendType)).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, p.Count, "the command was acknowledged")
	require.EqualValues(t, 1, b.counter("create", "interrupted"))
}

func TestListFailsAfterRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mem.FailNext(memory.OpList, 10, fmt.Errorf("503: %w", backend.ErrRetryable))
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_List{List: &rmv1.ListInstances{}}}))
	failed := res.GetFailed()
	require.NotNil(t, failed, "result: %v", res)
	require.Equal(t, "list", failed.GetOperation())
	require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_RETRYABLE, failed.GetClass())
	require.Equal(t, 3, b.mem.Store().Calls(memory.OpList))
}

// A create delivered after its runner's delete (a crashed replica's command
// taken over late, when the job was already served by then) starts nothing.
func TestCreateAfterDeleteStartsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NotNil(t, b.result(t, b.delete(t, "rt-linux-late", 0)).GetDeleted())
	b.create(t, "rt-linux-late")
	require.Eventually(t, func() bool { return b.counter("create", "skipped") == 1 }, waitFor, 10*time.Millisecond)
	require.Empty(t, b.mem.Instances(), "no instance for a deleted runner")
	require.Empty(t, b.gh.Runners(), "no registration for a deleted runner")
	ttl := b.rdb.TTL(context.Background(), b.keys.Tombstone("rt-linux-late")).Val()
	require.Greater(t, ttl, time.Hour, "the tombstone outlives any pending command")
}
