package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// manualClock is the runtime's clock in these tests.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// vmBundle is a provisioner of a VM backend type (the in-memory backend
// records what the runtime hands the real one).
type vmBundle struct {
	typ     string
	gh      *runtimetest.GitHub
	mem     *memory.Backend
	clock   *manualClock
	pub     *stream.Publisher
	keys    keys.Keys
	seq     int
	results func(t *testing.T) []*rmv1.ProvisionResult
}

const pinnedSHA = "ba46ba7ce3a4d7236b16fbe44419fb453bc08f866b24f04d549ec89f1722a29e"

// vmConfig has, on backend typ, group x64 (organization acme), arm (arm64,
// organization acme), pinned (runner_version 2.321.0) and other
// (organization other).
func vmConfig(typ string) *config.Config {
	group := func(name, orgName, arch string, b config.RunnerBootstrap) config.RunnerGroup {
		g := config.RunnerGroup{Name: name, Organization: orgName, MaxRunners: 10, Labels: []string{"self-hosted", name}}
		if typ == config.BackendAWS {
			g.Backend = config.Backend{Type: typ, AWS: &config.AWSSpec{Region: "r", AMI: "ami-1", InstanceTypes: []string{"t"},
				Subnets: []string{"s"}, Architecture: arch, Bootstrap: b}}
		} else {
			g.Backend = config.Backend{Type: typ, GCP: &config.GCPSpec{Project: "p", Zones: []string{"z"}, MachineType: "m",
				Image: "i", Architecture: arch, Bootstrap: b}}
		}
		return g
	}
	return &config.Config{Name: "rt", RunnerGroups: []config.RunnerGroup{
		group("x64", org, "", config.RunnerBootstrap{}),
		group("arm", org, config.ArchARM64, config.RunnerBootstrap{}),
		group("pinned", org, "", config.RunnerBootstrap{RunnerVersion: "2.321.0", RunnerSHA256: pinnedSHA}),
		group("other", "other", config.ArchX64, config.RunnerBootstrap{}),
	}}
}

func setupVM(t *testing.T, typ string) *vmBundle {
	t.Helper()
	rdb := redistest.Client(t)
	b := &vmBundle{
		typ:   typ,
		gh:    runtimetest.NewGitHub(),
		mem:   memory.New(memory.Options{Manager: "rt"}),
		clock: &manualClock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)},
		keys:  keys.New(redistest.NewName("rtvm")),
	}
	b.pub = stream.NewPublisher(rdb, 1000)
	b.results = func(t *testing.T) []*rmv1.ProvisionResult {
		entries, err := rdb.XRange(context.Background(), b.keys.Results(), "-", "+").Result()
		require.NoError(t, err)
		var out []*rmv1.ProvisionResult
		for _, e := range entries {
			data, _ := e.Values[stream.FieldData].(string)
			res := &rmv1.ProvisionResult{}
			require.NoError(t, stream.Message{Type: stream.TypeResult, Data: []byte(data)}.Unmarshal(res))
			out = append(out, res)
		}
		return out
	}
	rt, err := runtime.New(runtime.Options{
		Type:            typ,
		Config:          vmConfig(typ),
		Backend:         func([]byte) (backend.Backend, error) { return b.mem, nil },
		GitHub:          b.gh,
		Redis:           rdb,
		Keys:            b.keys,
		Publisher:       b.pub,
		Consumer:        "test",
		Concurrency:     2,
		CallTimeout:     5 * time.Second,
		MinIdle:         10 * time.Second,
		MaxDeliveries:   4,
		RetryDeliveries: 3,
		Backoff:         func(int64) time.Duration { return 10 * time.Millisecond },
		Block:           50 * time.Millisecond,
		Logger:          slog.New(slog.NewJSONHandler(&logbuf.Buffer{}, nil)),
		Metrics:         prometheus.NewRegistry(),
		Now:             b.clock.Now,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool { return rt.Ready(context.Background()) == nil }, waitFor, 10*time.Millisecond)
	return b
}

// create sends the create of a runner of group (as the scheduler does, one
// attempt) and waits for its result.
func (b *vmBundle) create(t *testing.T, group, orgName string) *rmv1.ProvisionResult {
	t.Helper()
	b.seq++
	cmd := &rmv1.ProvisionCommand{CommandId: fmt.Sprintf("cmd-%d", b.seq), IssuedAt: timestamppb.Now(),
		Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{Attempt: 1, Spec: &rmv1.RunnerSpec{
			Name: fmt.Sprintf("rt-%s-%d", group, b.seq), Group: group, BackendType: b.typ,
			Labels: []string{"self-hosted", group}, Organization: orgName,
		}}}}
	_, err := b.pub.Publish(context.Background(), b.keys.Provision(b.typ), stream.TypeCommand, cmd)
	require.NoError(t, err)
	var got *rmv1.ProvisionResult
	require.Eventually(t, func() bool {
		for _, r := range b.results(t) {
			if r.GetCommandId() == cmd.CommandId {
				got = r
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond, "no result for %s", cmd.CommandId)
	return got
}

// runnerOf returns the package the backend was given for the runner.
func (b *vmBundle) runnerOf(t *testing.T, res *rmv1.ProvisionResult) *backend.RunnerPackage {
	t.Helper()
	rec, ok := b.mem.Store().Get(res.GetRunnerName())
	require.True(t, ok, "no instance for %s", res.GetRunnerName())
	return rec.Spec.Runner
}

func TestVMCreateInstallsTheRunnerOfTheDownloadsAPI(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{config.BackendAWS, config.BackendGCP} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			b := setupVM(t, typ)
			res := b.create(t, "x64", org)
			require.NotNil(t, res.GetCreated(), "result: %v", res)
			require.Equal(t, &backend.RunnerPackage{Version: runtimetest.RunnerVersion, URL: runtimetest.RunnerURL("linux", "x64"),
				SHA256: runtimetest.RunnerChecksum("linux", "x64")}, b.runnerOf(t, res))
			res = b.create(t, "arm", org)
			require.NotNil(t, res.GetCreated(), "result: %v", res)
			require.Equal(t, &backend.RunnerPackage{Version: runtimetest.RunnerVersion, URL: runtimetest.RunnerURL("linux", "arm64"),
				SHA256: runtimetest.RunnerChecksum("linux", "arm64")}, b.runnerOf(t, res))
			// One organization, one call: the second create used the cache.
			require.Equal(t, 1, b.gh.Calls(runtimetest.MethodListRunnerApps))
		})
	}
}

func TestVMCreateWithAPinnedVersionCallsNoDownloadsAPI(t *testing.T) {
	t.Parallel()
	b := setupVM(t, config.BackendAWS)
	res := b.create(t, "pinned", org)
	require.NotNil(t, res.GetCreated(), "result: %v", res)
	require.Nil(t, b.runnerOf(t, res), "a pinned version installs its own archive")
	require.Zero(t, b.gh.Calls(runtimetest.MethodListRunnerApps))
}

func TestRunnerDownloadsCachedAnHourPerScope(t *testing.T) {
	t.Parallel()
	b := setupVM(t, config.BackendGCP)
	require.NotNil(t, b.create(t, "x64", org).GetCreated())
	b.clock.Advance(59 * time.Minute)
	require.NotNil(t, b.create(t, "x64", org).GetCreated())
	require.Equal(t, 1, b.gh.Calls(runtimetest.MethodListRunnerApps), "asked again within the hour")
	// Another organization is another scope.
	require.NotNil(t, b.create(t, "other", "other").GetCreated())
	require.Equal(t, 2, b.gh.Calls(runtimetest.MethodListRunnerApps))
	// After the hour: asked again, and a new version is taken.
	b.clock.Advance(2 * time.Minute)
	newer := github.RunnerApplication{OS: "linux", Architecture: "x64", Filename: "actions-runner-linux-x64-2.331.0.tar.gz",
		DownloadURL:    "https://github.com/actions/runner/releases/download/v2.331.0/actions-runner-linux-x64-2.331.0.tar.gz",
		SHA256Checksum: pinnedSHA}
	b.gh.SetRunnerApplications([]github.RunnerApplication{newer})
	res := b.create(t, "x64", org)
	require.NotNil(t, res.GetCreated(), "result: %v", res)
	require.Equal(t, 3, b.gh.Calls(runtimetest.MethodListRunnerApps))
	require.Equal(t, &backend.RunnerPackage{Version: "2.331.0", URL: newer.DownloadURL, SHA256: pinnedSHA}, b.runnerOf(t, res))
}

func TestRunnerDownloadsFailureIsRetryable(t *testing.T) {
	t.Parallel()
	b := setupVM(t, config.BackendAWS)
	// Even a permanent API error: without a pin there is no runner to
	// install until GitHub answers.
	// install until GitHub answers. Every delivery of the command fails.
	for range 10 {
		b.gh.FailNext(runtimetest.MethodListRunnerApps, github.ErrPermanent)
	}
	res := b.create(t, "x64", org)
	require.NotNil(t, res.GetFailed(), "result: %v", res)
	require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_RETRYABLE, res.GetFailed().GetClass())
	require.Contains(t, res.GetFailed().GetReason(), "runner package")
	require.Zero(t, b.gh.Calls(runtimetest.MethodGenerateJITConfig), "registered a runner with nothing to install")
	require.Empty(t, b.mem.Instances())

	// A package without a checksum is no package.
	b = setupVM(t, config.BackendAWS)
	b.gh.SetRunnerApplications([]github.RunnerApplication{{OS: "linux", Architecture: "x64", Filename: "actions-runner-linux-x64-2.331.0.tar.gz",
		DownloadURL: "https://github.com/actions/runner/releases/download/v2.331.0/actions-runner-linux-x64-2.331.0.tar.gz"}})
	res = b.create(t, "x64", org)
	require.NotNil(t, res.GetFailed(), "result: %v", res)
	require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_RETRYABLE, res.GetFailed().GetClass())
	require.Contains(t, res.GetFailed().GetReason(), "no SHA-256 checksum")
	require.Empty(t, b.mem.Instances())
}
