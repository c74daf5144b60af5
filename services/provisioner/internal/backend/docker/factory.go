package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
)

// Factory hands out the Backend of each Docker Engine the instance
// specifications name (their "host", DOCKER_HOST when empty), one client per
// engine. Its Backend method is a runtime.BackendFactory.
type Factory struct {
	manager string
	log     *slog.Logger

	mu       sync.Mutex
	backends map[string]*Backend // by host, "" for DOCKER_HOST
}

// NewFactory returns the Factory of the manager called manager.
func NewFactory(manager string, log *slog.Logger) *Factory {
	return &Factory{manager: manager, log: cmp.Or(log, slog.Default()), backends: map[string]*Backend{}}
}

// Backend returns the backend of an instance specification (the JSON of a
// DockerSpec; empty for the default engine).
func (f *Factory) Backend(instanceSpec []byte) (backend.Backend, error) {
	host := ""
	if len(instanceSpec) > 0 {
		spec, err := config.DecodeDockerSpec(instanceSpec)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", backend.ErrPermanent, err)
		}
		host = spec.Host
	}
	return f.backend(host)
}

func (f *Factory) backend(host string) (*Backend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.backends[host]; ok {
		return b, nil
	}
	b, err := New(Options{Manager: f.manager, Host: host, Logger: f.log})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", backend.ErrPermanent, err)
	}
	f.backends[host] = b
	return b, nil
}

// Ping checks that the default engine and every engine in use answer.
func (f *Factory) Ping(ctx context.Context) error {
	if _, err := f.backend(""); err != nil {
		return err
	}
	f.mu.Lock()
	backends := make([]*Backend, 0, len(f.backends))
	for _, b := range f.backends {
		backends = append(backends, b)
	}
	f.mu.Unlock()
	var errs []error
	for _, b := range backends {
		errs = append(errs, b.Ping(ctx))
	}
	return errors.Join(errs...)
}

// Close closes every client.
func (f *Factory) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for host, b := range f.backends {
		errs = append(errs, b.Close())
		delete(f.backends, host)
	}
	return errors.Join(errs...)
}
