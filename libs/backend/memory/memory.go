// Package memory is an in-memory backend.Backend for tests: thread-safe,
// idempotent like the real ones, with failure and delay injection.
//
// Several Backend values may share one Store, as several provisioner replicas
// (or one replica before and after a restart) share one cloud; each Backend
// sees only the instances of its own manager, like the ownership label of the
// real backends.
package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runner-manager/runner-manager/libs/backend"
)

// Op names one Backend method, for failure injection.
type Op string

// The operations of a Backend.
const (
	OpCreate Op = "create"
	OpDelete Op = "delete"
	OpList   Op = "list"
	OpUpdate Op = "update"
)

// StateRunning is the state of every instance of this backend.
const StateRunning = "running"

// Record is one instance as the Store keeps it, with the spec it was created
// from (the JIT config included, as a real instance would have it).
type Record struct {
	Manager  string
	Instance backend.Instance
	Spec     backend.RunnerSpec
	// Metadata is what UpdateRunner set, by backend.Meta* key; nil before.
	Metadata map[string]string
	// Updates counts the UpdateRunner calls that reached the instance.
	Updates int
}

// Store is the world the instances live in, shared by Backends.
type Store struct {
	mu        sync.Mutex
	instances map[string]Record // by runner name
	seq       int
	calls     map[Op]int
}

// NewStore returns an empty world.
func NewStore() *Store {
	return &Store{instances: map[string]Record{}, calls: map[Op]int{}}
}

// Options configure a Backend.
type Options struct {
	// Manager is the value of the ownership label: List and Delete see only
	// this manager's instances. Default "runner-manager".
	Manager string
	// Store shared with other Backends; nil for a new one.
	Store *Store
	// Delay is added to every call (honouring ctx), to simulate a slow API.
	Delay time.Duration
	// Now is the clock of CreatedAt (default time.Now).
	Now func() time.Time
}

// Backend is an in-memory backend.Backend.
type Backend struct {
	manager string
	store   *Store
	now     func() time.Time

	mu       sync.Mutex
	delay    time.Duration
	failures map[Op][]error
	hook     func(ctx context.Context, op Op, name string) error
}

var _ backend.Backend = (*Backend)(nil)

// New returns a Backend over opts.Store (or a new Store).
func New(opts Options) *Backend {
	if opts.Manager == "" {
		opts.Manager = "runner-manager"
	}
	if opts.Store == nil {
		opts.Store = NewStore()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Backend{
		manager:  opts.Manager,
		store:    opts.Store,
		now:      opts.Now,
		delay:    opts.Delay,
		failures: map[Op][]error{},
	}
}

// Store returns the world of b, to open another Backend over it.
func (b *Backend) Store() *Store { return b.store }

// Reopen returns a new Backend over the same Store and manager, as after a
// restart of the process; injected failures and hooks are not carried over.
func (b *Backend) Reopen() *Backend {
	return New(Options{Manager: b.manager, Store: b.store, Now: b.now})
}

// FailNext makes the next n calls of op fail with err (wrap one of
// backend.ErrCapacity, ErrPermanent or ErrRetryable to choose its class).
// Failures queue up: FailNext(OpCreate, 1, a); FailNext(OpCreate, 1, b) fails
// the next create with a, then the one after with b.
func (b *Backend) FailNext(op Op, n int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range n {
		b.failures[op] = append(b.failures[op], err)
	}
}

// SetDelay changes the delay added to every call.
func (b *Backend) SetDelay(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.delay = d
}

// SetHook installs fn, called at the start of every call (after the delay and
// before any injected failure); an error it returns is the call's error. Tests
// use it to block a call, count calls or fail selectively. nil removes it.
func (b *Backend) SetHook(fn func(ctx context.Context, op Op, name string) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hook = fn
}

// Calls returns how many times op was called on the Store (by any Backend),
// failed calls included.
func (s *Store) Calls(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Instances returns every instance of the Store, of every manager, sorted by
// name.
func (s *Store) Instances() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.instances))
	for _, r := range s.instances {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Instance.Name, b.Instance.Name) })
	return out
}

// Get returns the record of the runner name, of any manager.
func (s *Store) Get(name string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.instances[name]
	return r, ok
}

// Instances returns the records of b's manager, sorted by name.
func (b *Backend) Instances() []Record {
	all := b.store.Instances()
	out := all[:0]
	for _, r := range all {
		if r.Manager == b.manager {
			out = append(out, r)
		}
	}
	return out
}

// before runs the delay, the hook and the injected failures of one call.
func (b *Backend) before(ctx context.Context, op Op, name string) error {
	b.store.mu.Lock()
	b.store.calls[op]++
	b.store.mu.Unlock()

	b.mu.Lock()
	delay, hook := b.delay, b.hook
	b.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s %s: %w: %w", op, name, backend.ErrRetryable, ctx.Err())
		case <-t.C:
		}
	}
	if hook != nil {
		if err := hook(ctx, op, name); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.failures[op]; len(q) > 0 {
		err := q[0]
		b.failures[op] = q[1:]
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w: %w", op, name, backend.ErrRetryable, err)
	}
	return nil
}

// Create starts the runner's instance, or returns the existing one.
func (b *Backend) Create(ctx context.Context, r backend.RunnerSpec) (backend.Instance, error) {
	if err := backend.CheckRunnerName(r.Name); err != nil {
		return backend.Instance{}, fmt.Errorf("create instance: %w", err)
	}
	if err := b.before(ctx, OpCreate, r.Name); err != nil {
		return backend.Instance{}, err
	}
	s := b.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.instances[r.Name]; ok {
		if cur.Manager != b.manager {
			return backend.Instance{}, fmt.Errorf("create instance %s: the name is taken by an instance of another manager: %w", r.Name, backend.ErrPermanent)
		}
		return cur.Instance, nil
	}
	s.seq++
	inst := backend.Instance{
		Name:      r.Name,
		ID:        "mem-" + strconv.Itoa(s.seq),
		Group:     r.Group,
		State:     StateRunning,
		CreatedAt: b.now().UTC(),
	}
	r.Labels = slices.Clone(r.Labels)
	r.InstanceSpec = slices.Clone(r.InstanceSpec)
	s.instances[r.Name] = Record{Manager: b.manager, Instance: inst, Spec: r}
	return inst, nil
}

// Delete removes the runner's instance; an unknown name, or an instance of
// another manager, is left alone and nil is returned.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := backend.CheckRunnerName(name); err != nil {
		return fmt.Errorf("delete instance: %w", err)
	}
	if err := b.before(ctx, OpDelete, name); err != nil {
		return err
	}
	s := b.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.instances[name]; ok && cur.Manager == b.manager {
		delete(s.instances, name)
	}
	return nil
}

// List returns the instances of b's manager, sorted by name.
func (b *Backend) List(ctx context.Context) ([]backend.Instance, error) {
	if err := b.before(ctx, OpList, ""); err != nil {
		return nil, err
	}
	recs := b.Instances()
	out := make([]backend.Instance, len(recs))
	for i, r := range recs {
		out[i] = r.Instance
	}
	return out, nil
}

// UpdateRunner records md on the runner's instance (Record.Metadata). An
// unknown name, or an instance of another manager, is a permanent error.
func (b *Backend) UpdateRunner(ctx context.Context, name string, md backend.RunnerMetadata) error {
	if err := backend.CheckRunnerName(name); err != nil {
		return fmt.Errorf("update instance: %w", err)
	}
	if err := b.before(ctx, OpUpdate, name); err != nil {
		return err
	}
	s := b.store
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.instances[name]
	if !ok || cur.Manager != b.manager {
		return fmt.Errorf("update instance %s: not found: %w", name, backend.ErrPermanent)
	}
	cur.Metadata = md.Values()
	cur.Updates++
	s.instances[name] = cur
	return nil
}

// ErrInjected is a convenience error for FailNext when the test does not
// care about the message; wrap it with a class: fmt.Errorf("%w: %w", backend.ErrCapacity, memory.ErrInjected).
var ErrInjected = errors.New("injected failure")
