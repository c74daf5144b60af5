package memory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/backendtest"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
)

func TestSuite(t *testing.T) {
	store := memory.NewStore()
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backend.Backend {
			return memory.New(memory.Options{Manager: "suite-manager", Store: store})
		},
		Spec: func(t *testing.T, name string) backend.RunnerSpec {
			return backend.RunnerSpec{InstanceSpec: []byte(`{}`)}
		},
		JITConfig: func(t *testing.T, name string) string {
			r, ok := store.Get(name)
			if !ok {
				t.Fatalf("no instance %s", name)
			}
			return r.Spec.JITConfig.Value()
		},
		Metadata: func(t *testing.T, name string) map[string]string {
			r, ok := store.Get(name)
			if !ok {
				t.Fatalf("no instance %s", name)
			}
			return r.Metadata
		},
		Foreign: func(t *testing.T) backendtest.Foreign {
			other := memory.New(memory.Options{Manager: "another-manager", Store: store})
			name := "foreign-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
			if _, err := other.Create(context.Background(), backend.RunnerSpec{Name: name, Group: "g"}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = other.Delete(context.Background(), name) })
			return backendtest.Foreign{Name: name, Exists: func(t *testing.T) bool {
				_, ok := store.Get(name)
				return ok
			}}
		},
	})
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want rmv1.FailureClass
	}{
		{"capacity", fmt.Errorf("zone exhausted: %w", backend.ErrCapacity), rmv1.FailureClass_FAILURE_CLASS_CAPACITY},
		{"permanent", fmt.Errorf("bad image: %w", backend.ErrPermanent), rmv1.FailureClass_FAILURE_CLASS_PERMANENT},
		{"retryable", fmt.Errorf("503: %w", backend.ErrRetryable), rmv1.FailureClass_FAILURE_CLASS_RETRYABLE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := memory.New(memory.Options{})
			b.FailNext(memory.OpCreate, 1, tt.err)
			_, err := b.Create(context.Background(), backend.RunnerSpec{Name: "r1", Group: "g"})
			if !errors.Is(err, tt.err) {
				t.Fatalf("Create: %v, want %v", err, tt.err)
			}
			if got := backend.Classify(err); got != tt.want {
				t.Errorf("Classify = %v, want %v", got, tt.want)
			}
			if n := len(b.Instances()); n != 0 {
				t.Fatalf("%d instances after a failed create", n)
			}
			// Only the next call fails.
			if _, err := b.Create(context.Background(), backend.RunnerSpec{Name: "r1", Group: "g"}); err != nil {
				t.Fatalf("second Create: %v", err)
			}
			if n := len(b.Instances()); n != 1 {
				t.Fatalf("%d instances, want 1", n)
			}
			if got := b.Store().Calls(memory.OpCreate); got != 2 {
				t.Errorf("Calls(create) = %d, want 2", got)
			}
		})
	}
}

func TestDelayHonoursContext(t *testing.T) {
	t.Parallel()
	b := memory.New(memory.Options{Delay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Create(ctx, backend.RunnerSpec{Name: "r1"})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, backend.ErrRetryable) {
		t.Fatalf("Create with a cancelled context: %v, want retryable and context.Canceled", err)
	}
}

func TestHookBlocksACall(t *testing.T) {
	t.Parallel()
	b := memory.New(memory.Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	b.SetHook(func(ctx context.Context, op memory.Op, name string) error {
		if op == memory.OpCreate {
			close(entered)
			<-release
		}
		return nil
	})
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := b.Create(context.Background(), backend.RunnerSpec{Name: "r1"}); err != nil {
			t.Errorf("Create: %v", err)
		}
	})
	<-entered
	if n := len(b.Instances()); n != 0 {
		t.Errorf("%d instances while create is blocked, want 0", n)
	}
	close(release)
	wg.Wait()
	if n := len(b.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
}

func TestReopenSeesInstances(t *testing.T) {
	t.Parallel()
	b := memory.New(memory.Options{Manager: "m"})
	if _, err := b.Create(context.Background(), backend.RunnerSpec{Name: "r1"}); err != nil {
		t.Fatal(err)
	}
	l, err := b.Reopen().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := backendtest.Names(l); len(got) != 1 || got[0] != "r1" {
		t.Fatalf("List after Reopen = %v, want [r1]", got)
	}
}
