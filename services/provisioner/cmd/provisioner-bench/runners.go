package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/github/fakerunner"
)

// RunnerBackend is a backend.Backend whose instances are fake runners
// (libs/github/fakerunner) running as goroutines of this process: the closest thing
// to a Docker container of the fake-runner image, without the container.
// A runner whose process ended stays listed in state "exited" until Delete,
// as a stopped container does.
type RunnerBackend struct {
	// GitHubURL replaces the URL of the JIT configurations ("" keeps it).
	GitHubURL string
	// Broken lists groups whose creates fail for good (a bad image, a
	// denied quota): Create answers backend.ErrPermanent for them.
	Broken map[string]bool
	// Exited, when set, is called with the reason of each runner process
	// that ended ("success", "stopped", or the error).
	Exited func(reason string)

	mu        sync.Mutex
	seq       int
	instances map[string]*runnerInstance
	wg        sync.WaitGroup
	exits     map[string]int // exit reasons, for the report
}

type runnerInstance struct {
	inst   backend.Instance
	cancel context.CancelFunc
}

var _ backend.Backend = (*RunnerBackend)(nil)

// Create starts the fake runner of r, or returns the existing instance.
func (b *RunnerBackend) Create(_ context.Context, r backend.RunnerSpec) (backend.Instance, error) {
	if r.Name == "" {
		return backend.Instance{}, fmt.Errorf("create instance: empty runner name: %w", backend.ErrPermanent)
	}
	if b.Broken[r.Group] {
		return backend.Instance{}, fmt.Errorf("create instance %s: group %s is broken: %w", r.Name, r.Group, backend.ErrPermanent)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.instances == nil {
		b.instances, b.exits = map[string]*runnerInstance{}, map[string]int{}
	}
	if cur, ok := b.instances[r.Name]; ok {
		return cur.inst, nil
	}
	b.seq++
	ctx, cancel := context.WithCancel(context.Background())
	ri := &runnerInstance{
		inst: backend.Instance{
			Name: r.Name, ID: "proc-" + strconv.Itoa(b.seq), Group: r.Group,
			State: "running", CreatedAt: time.Now().UTC(),
		},
		cancel: cancel,
	}
	b.instances[r.Name] = ri
	cfg := fakerunner.Config{
		JITConfig: r.JITConfig.Value(),
		GitHubURL: b.GitHubURL,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	b.wg.Go(func() {
		err := fakerunner.Run(ctx, cfg)
		b.mu.Lock()
		defer b.mu.Unlock()
		reason := "success"
		if err != nil {
			reason = err.Error()
			if ctx.Err() != nil {
				reason = "stopped"
			}
		}
		b.exits[reason]++
		if b.Exited != nil {
			b.Exited(reason)
		}
		if cur, ok := b.instances[r.Name]; ok && cur == ri {
			cur.inst.State = "exited"
		}
	})
	return ri.inst, nil
}

// Delete stops the runner's goroutine and forgets the instance.
func (b *RunnerBackend) Delete(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.instances[name]; ok {
		cur.cancel()
		delete(b.instances, name)
	}
	return nil
}

// UpdateRunner accepts the job metadata of a live runner and keeps nothing
// (the benchmark measures the fleet, not the tags); no runner is a
// permanent error, as on the real backends.
func (b *RunnerBackend) UpdateRunner(_ context.Context, name string, _ backend.RunnerMetadata) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.instances[name]; !ok {
		return fmt.Errorf("update runner %s: not found: %w", name, backend.ErrPermanent)
	}
	return nil
}

// List returns the instances, sorted by name.
func (b *RunnerBackend) List(context.Context) ([]backend.Instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backend.Instance, 0, len(b.instances))
	for _, ri := range b.instances {
		out = append(out, ri.inst)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Len is the number of instances not deleted.
func (b *RunnerBackend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.instances)
}

// Exits counts how the runners' processes ended, by reason.
func (b *RunnerBackend) Exits() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.exits))
	for k, v := range b.exits {
		out[k] = v
	}
	return out
}

// Close stops every runner and waits for them.
func (b *RunnerBackend) Close() {
	b.mu.Lock()
	for _, ri := range b.instances {
		ri.cancel()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
