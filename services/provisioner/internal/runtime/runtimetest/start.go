package runtimetest

import (
	"context"
	"testing"
	"time"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/backend/memory"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
)

// Start runs an in-process provisioner until the test ends, and returns once
// its consumer group exists. opts needs Redis, Keys and Config (the
// configuration with the groups whose commands it acts on, as the scheduler
// under test has it); the other zero fields get test values: Type "docker",
// an in-memory backend (memory.New) when Backend is nil, a new fake GitHub
// when GitHub is nil, consumer "test", a 50ms XREADGROUP block and a 10ms
// retry backoff.
//
//	rt := runtimetest.Start(t, runtime.Options{Redis: rdb, Keys: k, Config: cfg, Backend: func([]byte) (backend.Backend, error) { return mem, nil }})
func Start(t testing.TB, opts runtime.Options) *runtime.Runtime {
	t.Helper()
	if opts.Config == nil {
		t.Fatal("runtimetest.Start: no Config: the provisioner acts only on the groups of its configuration")
	}
	if opts.Type == "" {
		opts.Type = "docker"
	}
	if opts.Backend == nil {
		mem := memory.New(memory.Options{Manager: opts.Keys.Prefix()})
		opts.Backend = func([]byte) (backend.Backend, error) { return mem, nil }
	}
	if opts.GitHub == nil {
		opts.GitHub = NewGitHub()
	}
	if opts.Consumer == "" {
		opts.Consumer = "test"
	}
	if opts.Block == 0 {
		opts.Block = 50 * time.Millisecond
	}
	if opts.Backoff == nil {
		opts.Backoff = func(int64) time.Duration { return 10 * time.Millisecond }
	}
	rt, err := runtime.New(opts)
	if err != nil {
		t.Fatalf("provisioner runtime: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("provisioner runtime: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for rt.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("provisioner runtime: the consumer group of %s was never created", opts.Keys.Provision(opts.Type))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return rt
}
