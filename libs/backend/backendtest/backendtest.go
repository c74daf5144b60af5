// Package backendtest is the one test suite every backend.Backend must pass
// (docs/design.md §9): Docker against the real engine, AWS and GCP against their
// wire-level fakes, and the in-memory backend.
//
// Usage, in a backend's _test.go:
//
//	func TestSuite(t *testing.T) {
//		backendtest.Run(t, backendtest.Harness{
//			Open:      func(t *testing.T) backend.Backend { ... },
//			Spec:      func(t *testing.T, name string) backend.RunnerSpec { ... },
//			JITConfig: func(t *testing.T, name string) string { ... },
//			Foreign:   func(t *testing.T) backendtest.Foreign { ... },
//		})
//	}
package backendtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
)

// Harness adapts one backend to the suite.
type Harness struct {
	// Open returns a Backend of one manager. Every call within one test
	// returns a new value over the same underlying instances, as a restarted
	// provisioner (or another replica) would see them. Required.
	Open func(t *testing.T) backend.Backend
	// Spec returns a valid RunnerSpec for the runner name (InstanceSpec
	// filled in). The suite overwrites Name and JITConfig, and sets Group and
	// Labels when they are empty. Required.
	Spec func(t *testing.T, name string) backend.RunnerSpec
	// JITConfig reads back, from the backend itself (container environment,
	// user data, metadata), the JIT configuration the instance of name was
	// given. Required.
	JITConfig func(t *testing.T, name string) string
	// Foreign creates an instance that does not belong to the manager of Open
	// (another manager's, or one without the ownership label), and removes it
	// at cleanup. Optional: without it the suite only checks that List returns
	// what it created.
	Foreign func(t *testing.T) Foreign
	// InvalidSpec returns a spec that the backend refuses permanently (an
	// unknown image, a bad machine type). Optional: without it the suite does
	// not check the failure path.
	InvalidSpec func(t *testing.T, name string) backend.RunnerSpec
	// Metadata reads back, from the backend itself (EC2 tags, GCE labels),
	// the job metadata of the instance of name, by backend.Meta* key (other
	// keys may be there too). Nil declares that the backend keeps the
	// metadata in the runner's record (Docker): its UpdateRunner must then
	// return backend.ErrMetadataInRecord.
	Metadata func(t *testing.T, name string) map[string]string
	// MetadataValue is how the backend writes a metadata value (its cloud's
	// rules for tag or label values); default unchanged.
	MetadataValue func(v string) string
	// NewName returns a fresh runner name; default "rmt-" + 8 hex digits.
	NewName func() string
	// Concurrency is the number of runners created at once in the concurrency
	// test (default 6); each name is created twice concurrently.
	Concurrency int
	// CallTimeout bounds every backend call of the suite (default 2m).
	CallTimeout time.Duration
}

// Foreign is an instance that is not the manager's.
type Foreign struct {
	// Name the instance would have if it were a runner of the manager.
	Name string
	// Exists reports whether it still exists; optional. The suite checks that
	// Delete(Name) by the manager leaves it alone.
	Exists func(t *testing.T) bool
}

// Group is the group of the suite's runners when Spec leaves it empty.
const Group = "suite"

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	if h.Open == nil || h.Spec == nil || h.JITConfig == nil {
		t.Fatal("backendtest: Harness needs Open, Spec and JITConfig")
	}
	if h.NewName == nil {
		h.NewName = func() string { return "rmt-" + randHex(4) }
	}
	if h.Concurrency <= 0 {
		h.Concurrency = 6
	}
	if h.MetadataValue == nil {
		h.MetadataValue = func(v string) string { return v }
	}
	if h.CallTimeout <= 0 {
		h.CallTimeout = 2 * time.Minute
	}
	s := &suite{h: h}
	t.Run("CreateReturnsTheInstance", s.createReturnsTheInstance)
	t.Run("CreateTwiceMakesOneInstance", s.createTwice)
	t.Run("DeleteTwice", s.deleteTwice)
	t.Run("DeleteUnknownIsNil", s.deleteUnknown)
	t.Run("ListShowsOnlyOurInstances", s.listOnlyOurs)
	t.Run("ListAfterRestart", s.listAfterRestart)
	t.Run("ConcurrentCreates", s.concurrentCreates)
	t.Run("JITConfigReachesOnlyTheInstance", s.jitConfig)
	t.Run("InvalidNamesRefusedPermanently", s.invalidNames)
	if h.Metadata != nil {
		t.Run("UpdateRunnerSetsTheMetadata", s.updateRunner)
		t.Run("UpdateRunnerOfUnknownRunner", s.updateUnknown)
	} else {
		t.Run("UpdateRunnerKeepsMetadataInTheRecord", s.updateInRecord)
	}
	if h.InvalidSpec != nil {
		t.Run("InvalidSpecFailsPermanently", s.invalidSpec)
	}
}

type suite struct{ h Harness }

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.CallTimeout)
	t.Cleanup(cancel)
	return ctx
}

// spec returns the spec of a new runner with a unique JIT config.
func (s *suite) spec(t *testing.T, name string) backend.RunnerSpec {
	t.Helper()
	r := s.h.Spec(t, name)
	r.Name = name
	if r.Group == "" {
		r.Group = Group
	}
	if len(r.Labels) == 0 {
		r.Labels = []string{"self-hosted", "suite"}
	}
	r.JITConfig = config.Secret("jit-" + randHex(16))
	return r
}

// create creates the runner and deletes it at cleanup, whatever the test did.
func (s *suite) create(t *testing.T, b backend.Backend, r backend.RunnerSpec) backend.Instance {
	t.Helper()
	s.cleanup(t, b, r.Name)
	inst, err := b.Create(s.ctx(t), r)
	if err != nil {
		t.Fatalf("Create(%s): %v", r.Name, err)
	}
	return inst
}

func (s *suite) cleanup(t *testing.T, b backend.Backend, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.h.CallTimeout)
		defer cancel()
		if err := b.Delete(ctx, name); err != nil {
			t.Errorf("cleanup: Delete(%s): %v", name, err)
		}
	})
}

func (s *suite) list(t *testing.T, b backend.Backend) []backend.Instance {
	t.Helper()
	l, err := b.List(s.ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return l
}

// byName returns the listed instances called name.
func byName(l []backend.Instance, name string) []backend.Instance {
	var out []backend.Instance
	for _, i := range l {
		if i.Name == name {
			out = append(out, i)
		}
	}
	return out
}

func checkInstance(t *testing.T, what string, got backend.Instance, r backend.RunnerSpec) {
	t.Helper()
	if got.Name != r.Name {
		t.Errorf("%s: Name = %q, want %q", what, got.Name, r.Name)
	}
	if got.ID == "" {
		t.Errorf("%s: empty ID", what)
	}
	if got.Group != r.Group {
		t.Errorf("%s: Group = %q, want %q", what, got.Group, r.Group)
	}
	if got.CreatedAt.IsZero() {
		t.Errorf("%s: zero CreatedAt", what)
	}
	if got.State == "" {
		t.Errorf("%s: empty State", what)
	}
}

func (s *suite) createReturnsTheInstance(t *testing.T) {
	b := s.h.Open(t)
	r := s.spec(t, s.h.NewName())
	start := time.Now()
	inst := s.create(t, b, r)
	checkInstance(t, "Create", inst, r)
	if inst.CreatedAt.Before(start.Add(-time.Minute)) || inst.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("Create: CreatedAt = %v, not around %v", inst.CreatedAt, start)
	}
	got := byName(s.list(t, b), r.Name)
	if len(got) != 1 {
		t.Fatalf("List: %d instances named %s, want 1", len(got), r.Name)
	}
	checkInstance(t, "List", got[0], r)
	if got[0].ID != inst.ID {
		t.Errorf("List: ID = %q, Create returned %q", got[0].ID, inst.ID)
	}
}

func (s *suite) createTwice(t *testing.T) {
	b := s.h.Open(t)
	r := s.spec(t, s.h.NewName())
	first := s.create(t, b, r)
	// A redelivered command: same name, and a new JIT config (the provisioner
	// asked GitHub again). Still one instance.
	again := r
	again.JITConfig = config.Secret("jit-" + randHex(16))
	second, err := b.Create(s.ctx(t), again)
	if err != nil {
		t.Fatalf("second Create(%s): %v", r.Name, err)
	}
	if second.ID != first.ID {
		t.Errorf("second Create: ID = %q, first was %q", second.ID, first.ID)
	}
	// Through another Backend value too (a restarted replica).
	third, err := s.h.Open(t).Create(s.ctx(t), again)
	if err != nil {
		t.Fatalf("Create(%s) after restart: %v", r.Name, err)
	}
	if third.ID != first.ID {
		t.Errorf("Create after restart: ID = %q, first was %q", third.ID, first.ID)
	}
	if n := len(byName(s.list(t, b), r.Name)); n != 1 {
		t.Errorf("List: %d instances named %s, want 1", n, r.Name)
	}
}

func (s *suite) deleteTwice(t *testing.T) {
	b := s.h.Open(t)
	r := s.spec(t, s.h.NewName())
	s.create(t, b, r)
	for i := range 2 {
		if err := b.Delete(s.ctx(t), r.Name); err != nil {
			t.Fatalf("Delete #%d (%s): %v", i+1, r.Name, err)
		}
		if n := len(byName(s.list(t, b), r.Name)); n != 0 {
			t.Fatalf("List after Delete #%d: %d instances named %s, want 0", i+1, n, r.Name)
		}
	}
	// A create after a delete makes a new instance (a name is never reused
	// by the scheduler, but the backend must not keep a tombstone).
	inst := s.create(t, b, r)
	checkInstance(t, "Create after Delete", inst, r)
}

func (s *suite) deleteUnknown(t *testing.T) {
	b := s.h.Open(t)
	if err := b.Delete(s.ctx(t), s.h.NewName()); err != nil {
		t.Fatalf("Delete of an unknown runner: %v, want nil", err)
	}
}

func (s *suite) listOnlyOurs(t *testing.T) {
	b := s.h.Open(t)
	var names []string
	for range 2 {
		r := s.spec(t, s.h.NewName())
		s.create(t, b, r)
		names = append(names, r.Name)
	}
	var foreign Foreign
	if s.h.Foreign != nil {
		foreign = s.h.Foreign(t)
	}
	l := s.list(t, b)
	for _, n := range names {
		if got := len(byName(l, n)); got != 1 {
			t.Errorf("List: %d instances named %s, want 1", got, n)
		}
	}
	if foreign.Name == "" {
		return
	}
	if got := byName(l, foreign.Name); len(got) != 0 {
		t.Errorf("List shows the foreign instance %s: %+v", foreign.Name, got)
	}
	// The manager never deletes what is not its own, even by name.
	if err := b.Delete(s.ctx(t), foreign.Name); err != nil {
		t.Errorf("Delete of a foreign instance: %v, want nil (left alone)", err)
	}
	if foreign.Exists != nil && !foreign.Exists(t) {
		t.Errorf("Delete(%s) removed an instance of another manager", foreign.Name)
	}
}

func (s *suite) listAfterRestart(t *testing.T) {
	b := s.h.Open(t)
	r := s.spec(t, s.h.NewName())
	inst := s.create(t, b, r)
	restarted := s.h.Open(t)
	got := byName(s.list(t, restarted), r.Name)
	if len(got) != 1 {
		t.Fatalf("List after restart: %d instances named %s, want 1", len(got), r.Name)
	}
	checkInstance(t, "List after restart", got[0], r)
	if got[0].ID != inst.ID {
		t.Errorf("List after restart: ID = %q, Create returned %q", got[0].ID, inst.ID)
	}
	if err := restarted.Delete(s.ctx(t), r.Name); err != nil {
		t.Fatalf("Delete after restart: %v", err)
	}
	if n := len(byName(s.list(t, b), r.Name)); n != 0 {
		t.Errorf("List: %d instances named %s after Delete by the restarted backend, want 0", n, r.Name)
	}
}

func (s *suite) concurrentCreates(t *testing.T) {
	b := s.h.Open(t)
	specs := make([]backend.RunnerSpec, s.h.Concurrency)
	for i := range specs {
		specs[i] = s.spec(t, s.h.NewName())
		s.cleanup(t, b, specs[i].Name)
	}
	type res struct {
		name string
		inst backend.Instance
		err  error
	}
	results := make(chan res, 2*len(specs))
	var wg sync.WaitGroup
	for _, r := range specs {
		for range 2 { // each name twice at once: a redelivery racing a slow call
			wg.Go(func() {
				inst, err := b.Create(s.ctx(t), r)
				results <- res{r.Name, inst, err}
			})
		}
	}
	wg.Wait()
	close(results)
	ids := map[string]string{}
	for r := range results {
		if r.err != nil {
			t.Errorf("concurrent Create(%s): %v", r.name, r.err)
			continue
		}
		if prev, ok := ids[r.name]; ok && prev != r.inst.ID {
			t.Errorf("concurrent Create(%s): IDs %q and %q, want one instance", r.name, prev, r.inst.ID)
		}
		ids[r.name] = r.inst.ID
	}
	l := s.list(t, b)
	for _, r := range specs {
		got := byName(l, r.Name)
		if len(got) != 1 {
			t.Errorf("List: %d instances named %s, want 1", len(got), r.Name)
			continue
		}
		if want := ids[r.Name]; want != "" && got[0].ID != want {
			t.Errorf("List: %s has ID %q, Create returned %q", r.Name, got[0].ID, want)
		}
	}
}

func (s *suite) jitConfig(t *testing.T) {
	b := s.h.Open(t)
	r := s.spec(t, s.h.NewName())
	secret := r.JITConfig.Value()
	inst := s.create(t, b, r)
	if got := s.h.JITConfig(t, r.Name); got != secret {
		t.Errorf("the instance got JIT config %q, want the one of the spec", redact(got, secret))
	}
	checkNoSecret(t, "Create's Instance", fmt.Sprintf("%#v", inst), secret)
	for _, i := range s.list(t, b) {
		checkNoSecret(t, "List's Instance", fmt.Sprintf("%#v", i), secret)
	}
}

func (s *suite) invalidSpec(t *testing.T) {
	b := s.h.Open(t)
	name := s.h.NewName()
	r := s.h.InvalidSpec(t, name)
	r.Name = name
	if r.Group == "" {
		r.Group = Group
	}
	r.JITConfig = config.Secret("jit-" + randHex(16))
	s.cleanup(t, b, name)
	inst, err := b.Create(s.ctx(t), r)
	if err == nil {
		t.Fatalf("Create with an invalid spec succeeded: %+v", inst)
	}
	if c := backend.Classify(err); c != rmv1.FailureClass_FAILURE_CLASS_PERMANENT {
		t.Errorf("Create with an invalid spec: class %v, want permanent (err: %v)", c, err)
	}
	checkNoSecret(t, "the error", err.Error(), r.JITConfig.Value())
	checkNoSecret(t, "the error", fmt.Sprintf("%+v %#v", err, err), r.JITConfig.Value())
	if !errors.Is(err, backend.ErrPermanent) {
		t.Errorf("the error does not wrap backend.ErrPermanent: %v", err)
	}
	// Nothing is left behind that List would show as a running runner of ours
	// in a state other than a failed one; at least Delete must clean it up.
	if err := b.Delete(s.ctx(t), name); err != nil {
		t.Errorf("Delete after a failed Create: %v", err)
	}
	if n := len(byName(s.list(t, b), name)); n != 0 {
		t.Errorf("List after a failed Create and Delete: %d instances named %s, want 0", n, name)
	}
}

// InvalidNames are runner names every backend refuses before they reach its
// API (a container or instance name, a tag, a startup script).
var InvalidNames = []string{
	"x; rm -rf /", "../x", "x/../../y", strings.Repeat("a", 64), "Upper", "1starts-with-a-digit",
	"ends-with-", "$(reboot)", "a b", "a\nb", "",
}

func (s *suite) invalidNames(t *testing.T) {
	b := s.h.Open(t)
	for _, name := range InvalidNames {
		r := s.spec(t, s.h.NewName())
		r.Name = name
		inst, err := b.Create(s.ctx(t), r)
		if err == nil {
			t.Errorf("Create(%q) succeeded: %+v", name, inst)
			_ = b.Delete(s.ctx(t), name)
		} else if !errors.Is(err, backend.ErrPermanent) {
			t.Errorf("Create(%q): %v, want an error wrapping backend.ErrPermanent", name, err)
		} else {
			checkNoSecret(t, "the error", err.Error(), r.JITConfig.Value())
		}
		if err := b.Delete(s.ctx(t), name); !errors.Is(err, backend.ErrPermanent) {
			t.Errorf("Delete(%q): %v, want an error wrapping backend.ErrPermanent", name, err)
		}
	}
	for _, inst := range s.list(t, b) {
		if slices.Contains(InvalidNames, inst.Name) {
			t.Errorf("List shows an instance of an invalid name: %+v", inst)
		}
	}
}

// Metadata is the job metadata of the suite's UpdateRunner cases: a
// repository and a workflow that no cloud takes as they are (upper case,
// '/', '.', spaces, '&', a workflow longer than any tag or label value).
func Metadata(jobID int64) backend.RunnerMetadata {
	return backend.RunnerMetadata{
		JobID: jobID, RunID: 9_000_000_000 + jobID, Repository: "Octo-Org/Hello.World",
		Workflow: "CI / Build & Test " + strings.Repeat("x", 300), State: backend.StateBusy,
	}
}

func (s *suite) checkMetadata(t *testing.T, name string, md backend.RunnerMetadata) {
	t.Helper()
	got := s.h.Metadata(t, name)
	for k, v := range md.Values() {
		if want := s.h.MetadataValue(v); got[k] != want {
			t.Errorf("metadata %s = %q, want %q", k, got[k], want)
		}
	}
}

func (s *suite) updateRunner(t *testing.T) {
	b := s.h.Open(t)
	r := s.spec(t, s.h.NewName())
	inst := s.create(t, b, r)
	md := Metadata(42)
	for i := range 2 { // a redelivered command: the same metadata again
		if err := b.UpdateRunner(s.ctx(t), r.Name, md); err != nil {
			t.Fatalf("UpdateRunner #%d (%s): %v", i+1, r.Name, err)
		}
		s.checkMetadata(t, r.Name, md)
	}
	// The ownership labels stay: the runner is still listed as ours.
	got := byName(s.list(t, b), r.Name)
	if len(got) != 1 {
		t.Fatalf("List after UpdateRunner: %d instances named %s, want 1", len(got), r.Name)
	}
	checkInstance(t, "List after UpdateRunner", got[0], r)
	if got[0].ID != inst.ID {
		t.Errorf("List after UpdateRunner: ID = %q, Create returned %q", got[0].ID, inst.ID)
	}
	// Another job's metadata, through a restarted backend, replaces it.
	next := Metadata(43)
	next.Repository, next.Workflow = "octo-org/other", "release"
	if err := s.h.Open(t).UpdateRunner(s.ctx(t), r.Name, next); err != nil {
		t.Fatalf("UpdateRunner after restart: %v", err)
	}
	s.checkMetadata(t, r.Name, next)
	for _, name := range InvalidNames {
		if err := b.UpdateRunner(s.ctx(t), name, md); !errors.Is(err, backend.ErrPermanent) {
			t.Errorf("UpdateRunner(%q): %v, want an error wrapping backend.ErrPermanent", name, err)
		}
	}
}

func (s *suite) updateUnknown(t *testing.T) {
	b := s.h.Open(t)
	err := b.UpdateRunner(s.ctx(t), s.h.NewName(), Metadata(1))
	if !errors.Is(err, backend.ErrPermanent) {
		t.Errorf("UpdateRunner of an unknown runner: %v, want an error wrapping backend.ErrPermanent", err)
	}
}

func (s *suite) updateInRecord(t *testing.T) {
	b := s.h.Open(t)
	r := s.spec(t, s.h.NewName())
	s.create(t, b, r)
	err := b.UpdateRunner(s.ctx(t), r.Name, Metadata(42))
	if !errors.Is(err, backend.ErrMetadataInRecord) || !errors.Is(err, backend.ErrPermanent) {
		t.Errorf("UpdateRunner of a backend that keeps metadata in the record: %v, want backend.ErrMetadataInRecord", err)
	}
}

func checkNoSecret(t *testing.T, where, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Errorf("the JIT config appears in %s", where)
	}
}

func redact(got, secret string) string {
	if got == secret {
		return "[the secret]"
	}
	if len(got) > 12 {
		return got[:12] + "..."
	}
	return got
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Names returns the names of the instances, sorted; handy in assertions.
func Names(l []backend.Instance) []string {
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = x.Name
	}
	slices.Sort(out)
	return out
}
