package runtime_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/recent"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime/runtimetest"
)

// specRecorder is a BackendFactory over the bundle's memory backend that
// records the instance specifications it is asked for.
type specRecorder struct {
	mu    sync.Mutex
	specs []string
}

func (s *specRecorder) factory(b *bundle) runtime.BackendFactory {
	return func(spec []byte) (backend.Backend, error) {
		s.mu.Lock()
		s.specs = append(s.specs, string(spec))
		s.mu.Unlock()
		return b.mem, nil
	}
}

func (s *specRecorder) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.specs...)
}

// setupRecorded is setup with a specRecorder as the backend factory.
func setupRecorded(t *testing.T) (*bundle, *specRecorder) {
	t.Helper()
	rec := &specRecorder{}
	var b *bundle
	b = setup(t, func(o *runtime.Options) {
		o.Backend = func(s []byte) (backend.Backend, error) { return rec.factory(b)(s) }
	})
	return b, rec
}

func (b *bundle) refused(reason string) float64 {
	mfs, _ := b.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "runner_manager_provisioner_commands_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["reason"] == reason && labels["backend"] == backendType {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// The instance specification of group linux in testConfig.
const linuxSpec = `{"image":"x"}`

// A create command that disagrees with the provisioner's configuration is
// refused before any GitHub or backend call: a failed result of class
// permanent, the refusal counted and logged.
func TestForgedCreatesAreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		forge  func(c *rmv1.CreateRunner)
		reason string
	}{
		{"docker root on the host", func(c *rmv1.CreateRunner) {
			c.Spec.InstanceSpec = []byte(`{"image":"evil","host":"tcp://198.51.100.7:2375","volumes":["/:/host"],"command":["sh","-c","chroot /host"]}`)
		}, "instance_spec"},
		{"the configured image with a volume added", func(c *rmv1.CreateRunner) {
			c.Spec.InstanceSpec = []byte(`{"image":"x","volumes":["/:/host"]}`)
		}, "instance_spec"},
		{"undecodable instance spec", func(c *rmv1.CreateRunner) { c.Spec.InstanceSpec = []byte(`{"image":`) }, "instance_spec"},
		{"foreign organization", func(c *rmv1.CreateRunner) { c.Spec.Organization = "evil-org" }, "organization"},
		{"no organization", func(c *rmv1.CreateRunner) { c.Spec.Organization = "" }, "organization"},
		{"another repository", func(c *rmv1.CreateRunner) { c.Spec.Repository = "secrets" }, "repository"},
		{"other labels", func(c *rmv1.CreateRunner) { c.Spec.Labels = []string{"self-hosted", "linux", "gpu"} }, "labels"},
		{"unknown group", func(c *rmv1.CreateRunner) { c.Spec.Group = "admin" }, "unknown_group"},
		{"no group", func(c *rmv1.CreateRunner) { c.Spec.Group = "" }, "unknown_group"},
		{"a group of another backend type", func(c *rmv1.CreateRunner) { c.Spec.Group = "cloud" }, "backend_type"},
		{"another backend type claimed", func(c *rmv1.CreateRunner) { c.Spec.BackendType = config.BackendGCP }, "backend_type"},
		{"shell in the name", func(c *rmv1.CreateRunner) { c.Spec.Name = "x; rm -rf /" }, "invalid_name"},
		{"path in the name", func(c *rmv1.CreateRunner) { c.Spec.Name = "../x" }, "invalid_name"},
		{"name too long", func(c *rmv1.CreateRunner) { c.Spec.Name = "rt-linux-" + strings.Repeat("a", 55) }, "invalid_name"},
		{"no name", func(c *rmv1.CreateRunner) { c.Spec.Name = "" }, "invalid_name"},
		{"another runner group id of a repository runner", func(c *rmv1.CreateRunner) {
			c.Spec.Group, c.Spec.Repository, c.Spec.RunnerGroupId = "repo", "app", 7
		}, "runner_group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, rec := setupRecorded(t)
			c := &rmv1.CreateRunner{Spec: b.spec("rt-linux-1"), Attempt: 1}
			tt.forge(c)
			res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: c}}))
			failed := res.GetFailed()
			require.NotNil(t, failed, "result: %v", res)
			require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_PERMANENT, failed.GetClass(), "reason: %s", failed.GetReason())
			require.Equal(t, "create", failed.GetOperation())
			require.Contains(t, failed.GetReason(), "refused ("+tt.reason+")")
			require.NotContains(t, failed.GetReason(), "198.51.100.7")
			require.EqualValues(t, 1, b.refused(tt.reason))
			// The status page's record of recent refusals: group, reason, time.
			refusals, err := recent.List(context.Background(), b.rdb, b.keys.RecentRefusals(), 10)
			require.NoError(t, err)
			require.Len(t, refusals, 1)
			require.Equal(t, tt.reason, refusals[0].Reason)
			require.Equal(t, c.Spec.Group, refusals[0].Group)
			require.WithinDuration(t, time.Now(), refusals[0].Time, time.Minute)
			require.EqualValues(t, 1, b.counter("create", "failed_permanent"))
			// No GitHub call, no backend call.
			require.Zero(t, b.gh.Calls(runtimetest.MethodGenerateJITConfig), "JIT registration")
			require.Zero(t, b.gh.Calls(runtimetest.MethodGetRunnerGroupByName), "runner group lookup")
			require.Zero(t, b.mem.Store().Calls(memory.OpCreate))
			require.Zero(t, b.mem.Store().Calls(memory.OpList))
			require.Empty(t, rec.seen(), "the backend factory was asked for a backend")
			require.Empty(t, b.mem.Instances())
			require.Empty(t, b.gh.Runners())
			require.Contains(t, b.logs.String(), `"level":"WARN","msg":"command refused`)
		})
	}
}

// An organization runner group id that is not the one of the configured
// group at GitHub is refused with no JIT registration; the right one is
// accepted.
func TestCreateRunnerGroupIDIsChecked(t *testing.T) {
	t.Parallel()
	b, _ := setupRecorded(t)
	b.gh.StrictGroups()
	b.gh.AddGroup(org, "linux", 42)
	b.gh.AddGroup(org, "privileged", 43)

	forged := b.spec("rt-linux-1")
	forged.RunnerGroupId = 43
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{Spec: forged, Attempt: 1}}}))
	require.NotNil(t, res.GetFailed(), "result: %v", res)
	require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_PERMANENT, res.GetFailed().GetClass())
	require.Contains(t, res.GetFailed().GetReason(), "refused (runner_group)")
	require.EqualValues(t, 1, b.refused("runner_group"))
	require.Zero(t, b.gh.Calls(runtimetest.MethodGenerateJITConfig))
	require.Zero(t, b.mem.Store().Calls(memory.OpCreate))

	good := b.spec("rt-linux-2")
	good.RunnerGroupId = 42
	res = b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{Spec: good, Attempt: 1}}}))
	require.NotNil(t, res.GetCreated(), "result: %v", res)
	regs := b.gh.Runners()
	require.Len(t, regs, 1)
	require.EqualValues(t, 42, regs[0].GroupID)
}

// What the runner is comes from the configuration: the instance spec, the
// labels and the organization of the group, whatever the command carries
// (an old scheduler's matching instance_spec included).
func TestCreateUsesTheConfiguration(t *testing.T) {
	t.Parallel()
	b, rec := setupRecorded(t)
	spec := b.spec("rt-linux-1")
	// An old scheduler: the same specification, spelled differently.
	spec.InstanceSpec = []byte(`{ "image" : "x", "unknown_to_this_version": true }`)
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{Create: &rmv1.CreateRunner{Spec: spec, Attempt: 1}}}))
	require.NotNil(t, res.GetCreated(), "result: %v", res)
	insts := b.mem.Instances()
	require.Len(t, insts, 1)
	require.Equal(t, linuxSpec, string(insts[0].Spec.InstanceSpec))
	require.Equal(t, []string{linuxSpec}, rec.seen())
}

// The spec hash: equal is created, different waits (retryable, never acted
// on), absent (an old scheduler) is accepted when the fields agree.
func TestSpecHash(t *testing.T) {
	t.Parallel()
	b, _ := setupRecorded(t)
	want, err := config.SpecHash(b.cfg.Group("linux"))
	require.NoError(t, err)

	for i, hash := range []string{want, ""} {
		name := []string{"rt-linux-1", "rt-linux-2"}[i]
		res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{
			Create: &rmv1.CreateRunner{Spec: b.spec(name), Attempt: 1, SpecHash: hash}}}))
		require.NotNil(t, res.GetCreated(), "hash %q: result: %v", hash, res)
	}
	require.Len(t, b.mem.Instances(), 2)

	// The scheduler runs a newer configuration: the labels changed.
	newer := *b.cfg.Group("linux")
	newer.Labels = []string{"self-hosted", "linux", "big"}
	other, err := config.SpecHash(&newer)
	require.NoError(t, err)
	spec := b.spec("rt-linux-3")
	spec.Labels = newer.Labels
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{
		Create: &rmv1.CreateRunner{Spec: spec, Attempt: 1, SpecHash: other}}}))
	failed := res.GetFailed()
	require.NotNil(t, failed, "result: %v", res)
	require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_RETRYABLE, failed.GetClass(), "reason: %s", failed.GetReason())
	require.Contains(t, failed.GetReason(), "configuration differs from the scheduler's")
	// Refused at each of the RetryDeliveries deliveries, then answered.
	require.EqualValues(t, 3, b.refused("spec_hash_mismatch"))
	require.EqualValues(t, 1, b.counter("create", "failed_retryable"))
	require.Len(t, b.mem.Instances(), 2, "created with the command's spec")
	require.Equal(t, 2, b.gh.Calls(runtimetest.MethodGenerateJITConfig))
}

// A delete finds the runner where the configuration of its group says,
// never where the command says; a delete for another organization or an
// unknown group is refused.
func TestDeleteUsesTheConfiguredLocation(t *testing.T) {
	t.Parallel()
	b, rec := setupRecorded(t)
	created := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
	require.NotNil(t, created)

	send := func(d *rmv1.DeleteRunner) *rmv1.ProvisionResult {
		t.Helper()
		return b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{Delete: d}}))
	}
	for _, tt := range []struct {
		reason string
		d      *rmv1.DeleteRunner
	}{
		{"organization", &rmv1.DeleteRunner{Name: "rt-linux-1", Group: "linux", Organization: "evil-org"}},
		{"repository", &rmv1.DeleteRunner{Name: "rt-linux-1", Group: "linux", Organization: org, Repository: "app"}},
		{"unknown_group", &rmv1.DeleteRunner{Name: "rt-linux-1", Group: "removed", Organization: org}},
		{"backend_type", &rmv1.DeleteRunner{Name: "rt-linux-1", Group: "cloud", Organization: org}},
		{"invalid_name", &rmv1.DeleteRunner{Name: "../../etc", Group: "linux", Organization: org}},
	} {
		res := send(tt.d)
		require.NotNil(t, res.GetFailed(), "%s: result: %v", tt.reason, res)
		require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_PERMANENT, res.GetFailed().GetClass(), tt.reason)
		require.Contains(t, res.GetFailed().GetReason(), "refused ("+tt.reason+")")
		require.EqualValues(t, 1, b.refused(tt.reason), tt.reason)
	}
	require.Zero(t, b.mem.Store().Calls(memory.OpDelete))
	require.Zero(t, b.gh.Calls(runtimetest.MethodDeleteRunner))
	require.Zero(t, b.gh.Calls(runtimetest.MethodGetRunnerByName))
	require.Len(t, b.mem.Instances(), 1)

	res := send(&rmv1.DeleteRunner{Name: "rt-linux-1", Group: "linux", Organization: org, BackendType: backendType,
		GithubRunnerId: created.GetGithubRunnerId(),
		InstanceSpec:   []byte(`{"host":"tcp://198.51.100.7:2375"}`)})
	require.NotNil(t, res.GetDeleted(), "result: %v", res)
	require.Empty(t, b.mem.Instances())
	require.Empty(t, b.gh.Runners())
	for _, s := range rec.seen() {
		require.Equal(t, linuxSpec, s, "a backend of another specification than the group's")
	}
}

// A listing covers the locations of the configured groups of the
// provisioner's type, whatever the command names.
func TestListUsesTheConfiguredLocations(t *testing.T) {
	t.Parallel()
	b, rec := setupRecorded(t)
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_List{List: &rmv1.ListInstances{
		InstanceSpecs: [][]byte{[]byte(`{"host":"tcp://198.51.100.7:2375"}`)},
	}}}))
	require.NotNil(t, res.GetInventory(), "result: %v", res)
	require.Equal(t, []string{linuxSpec, `{"image":"y"}`}, rec.seen())
}

// A provisioner needs its configuration.
func TestNewNeedsAConfiguration(t *testing.T) {
	t.Parallel()
	_, err := runtime.New(runtime.Options{Type: backendType, Backend: func([]byte) (backend.Backend, error) { return nil, nil },
		GitHub: runtimetest.NewGitHub(), Redis: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Keys: keys.New("rt")})
	require.ErrorContains(t, err, "no configuration")
}

// A created runner reports its location, which the scheduler keeps with its
// record for the delete, and the spec hash of the configuration it was made
// from, with which the scheduler tells a runner of an older spec.
func TestCreatedCarriesTheLocationAndSpecHash(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
	require.NotNil(t, created)
	require.Equal(t, map[string]string{"host": ""}, created.GetLocation())
	hash, err := config.SpecHash(&b.cfg.RunnerGroups[0])
	require.NoError(t, err)
	require.Equal(t, hash, created.GetSpecHash())
}

// The runner of a group no longer configured is deleted at the location its
// record kept, when that location and its organization are ones this
// provisioner's configuration uses; a forged location or organization is
// refused before any GitHub or backend call.
func TestDeleteOfARemovedGroup(t *testing.T) {
	t.Parallel()
	b, rec := setupRecorded(t)
	created := b.result(t, b.create(t, "rt-old-1")).GetCreated()
	require.NotNil(t, created)
	send := func(d *rmv1.DeleteRunner) *rmv1.ProvisionResult {
		t.Helper()
		return b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{Delete: d}}))
	}
	for _, tt := range []struct {
		reason string
		d      *rmv1.DeleteRunner
	}{
		{"location", &rmv1.DeleteRunner{Name: "rt-old-1", Group: "removed", Organization: org,
			Location: map[string]string{"host": "tcp://198.51.100.7:2375"}}},
		{"location", &rmv1.DeleteRunner{Name: "rt-old-1", Group: "removed", Organization: org,
			Location: map[string]string{"endpoint": "http://198.51.100.7"}}},
		{"location", &rmv1.DeleteRunner{Name: "rt-old-1", Group: "linux", Organization: org,
			Location: map[string]string{"host": "tcp://198.51.100.7:2375"}}},
		{"organization", &rmv1.DeleteRunner{Name: "rt-old-1", Group: "removed", Organization: "evil-org",
			Location: map[string]string{"host": ""}}},
		{"unknown_group", &rmv1.DeleteRunner{Name: "rt-old-1", Group: "removed", Organization: org}},
		{"backend_type", &rmv1.DeleteRunner{Name: "rt-old-1", Group: "removed", Organization: org, BackendType: config.BackendGCP,
			Location: map[string]string{"host": ""}}},
	} {
		res := send(tt.d)
		require.NotNil(t, res.GetFailed(), "%s: result: %v", tt.reason, res)
		require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_PERMANENT, res.GetFailed().GetClass(), tt.reason)
		require.Contains(t, res.GetFailed().GetReason(), "refused ("+tt.reason+")")
		require.NotContains(t, res.GetFailed().GetReason(), "198.51.100.7")
	}
	require.EqualValues(t, 3, b.refused("location"))
	require.Zero(t, b.mem.Store().Calls(memory.OpDelete))
	require.Zero(t, b.gh.Calls(runtimetest.MethodDeleteRunner))
	require.Len(t, b.mem.Instances(), 1)
	require.Len(t, b.gh.Runners(), 1)

	res := send(&rmv1.DeleteRunner{Name: "rt-old-1", Group: "removed", Organization: org, BackendType: backendType,
		GithubRunnerId: created.GetGithubRunnerId(), Location: created.GetLocation(), Reason: "group_removed"})
	require.NotNil(t, res.GetDeleted(), "result: %v", res)
	require.Empty(t, b.mem.Instances())
	require.Empty(t, b.gh.Runners())
	for _, s := range rec.seen() {
		require.NotContains(t, s, "198.51.100.7")
	}
}

// A Docker group whose host changed: its runners made on the old host are
// deleted there, as long as a configured group still uses that host.
func TestDeleteAtTheRecordedDockerHost(t *testing.T) {
	t.Parallel()
	rec := &specRecorder{}
	var b *bundle
	b = setup(t, func(o *runtime.Options) {
		o.Config.RunnerGroups[1].Backend.Docker.Host = "unix:///other.sock"
		o.Backend = func(s []byte) (backend.Backend, error) { return rec.factory(b)(s) }
	})
	created := b.result(t, b.create(t, "rt-linux-1")).GetCreated()
	require.NotNil(t, created)
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{Delete: &rmv1.DeleteRunner{
		Name: "rt-linux-1", Group: "linux", Organization: org, GithubRunnerId: created.GetGithubRunnerId(),
		Location: map[string]string{"host": "unix:///other.sock"}}}}))
	require.NotNil(t, res.GetDeleted(), "result: %v", res)
	seen := rec.seen()
	require.Contains(t, seen[len(seen)-1], `"host":"unix:///other.sock"`)
	require.Contains(t, seen[len(seen)-1], `"image":"x"`)
}

// A create for a group this provisioner does not know yet, from a scheduler
// that sends a spec hash (a newer configuration: the group was just added),
// waits (retryable); without a hash it stays permanent.
func TestCreateOfAGroupNotYetConfiguredIsRetryable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spec := b.spec("rt-new-1")
	spec.Group = "new"
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{
		Create: &rmv1.CreateRunner{Spec: spec, Attempt: 1, SpecHash: "abc"}}}))
	require.NotNil(t, res.GetFailed(), "result: %v", res)
	require.Equal(t, rmv1.FailureClass_FAILURE_CLASS_RETRYABLE, res.GetFailed().GetClass())
	require.Contains(t, res.GetFailed().GetReason(), "refused (unknown_group)")
	require.Positive(t, b.refused("unknown_group"))
	require.Zero(t, b.gh.Calls(runtimetest.MethodGenerateJITConfig))
}

// A listing also covers the locations runner records still reference, each
// validated like a delete's: one this provisioner may not act on is refused
// and skipped, the listing goes on.
func TestListCoversRecordedLocations(t *testing.T) {
	t.Parallel()
	b, rec := setupRecorded(t)
	res := b.result(t, b.send(t, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_List{List: &rmv1.ListInstances{
		Locations: []*rmv1.Location{
			{Values: map[string]string{"host": "tcp://198.51.100.7:2375"}},
			{Values: map[string]string{"host": ""}},
		},
	}}}))
	require.NotNil(t, res.GetInventory(), "result: %v", res)
	require.Equal(t, []string{linuxSpec, `{"image":"y"}`}, rec.seen())
	require.EqualValues(t, 1, b.refused("location"))
}
