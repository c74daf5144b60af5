package aws

import (
	"context"
	"fmt"
	"sync"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
)

// Factory returns the Backend of a group specification's JSON (the
// instance_spec of the provisioning commands), building each one once: a
// Backend holds an EC2 client for the spec's region and endpoint. Its Backend
// method is a runtime.BackendFactory. Safe for concurrent use.
type Factory struct {
	manager string
	opts    []Option

	mu       sync.Mutex
	backends map[string]*Backend
}

// NewFactory returns a Factory for the manager name; opts apply to every Backend.
func NewFactory(manager string, opts ...Option) *Factory {
	return &Factory{manager: manager, opts: opts, backends: map[string]*Backend{}}
}

// Backend returns the Backend of instanceSpec, the JSON of a config.AWSSpec.
// An empty instanceSpec (a list command of a manager without AWS groups)
// gives a backend that lists nothing and refuses the rest. An invalid spec is
// backend.ErrPermanent.
func (f *Factory) Backend(instanceSpec []byte) (backend.Backend, error) {
	if len(instanceSpec) == 0 {
		return unconfigured{}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.backends[string(instanceSpec)]; ok {
		return b, nil
	}
	spec, err := config.DecodeAWSSpec(instanceSpec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, backend.ErrPermanent)
	}
	// LoadDefaultConfig does no I/O when the region is given: credentials
	// resolve at the first call.
	b, err := New(context.Background(), f.manager, *spec, f.opts...)
	if err != nil {
		return nil, err
	}
	f.backends[string(instanceSpec)] = b
	return b, nil
}

// unconfigured is the backend of no specification.
type unconfigured struct{}

func (unconfigured) Create(context.Context, backend.RunnerSpec) (backend.Instance, error) {
	return backend.Instance{}, fmt.Errorf("create instance: no aws instance specification: %w", backend.ErrPermanent)
}

func (unconfigured) Delete(context.Context, string) error {
	return fmt.Errorf("delete instance: no aws instance specification (region unknown): %w", backend.ErrPermanent)
}

func (unconfigured) List(context.Context) ([]backend.Instance, error) { return nil, nil }

// Preload builds the Backend of every aws group of cfg, so that an invalid
// specification stops the provisioner at start rather than failing its
// commands.
func Preload(f *Factory, cfg *config.Config) error {
	for i := range cfg.RunnerGroups {
		g := &cfg.RunnerGroups[i]
		if g.Backend.Type != config.BackendAWS {
			continue
		}
		js, err := g.InstanceSpecJSON()
		if err != nil {
			return err
		}
		if _, err := f.Backend(js); err != nil {
			return fmt.Errorf("runner group %s: %w", g.Name, err)
		}
	}
	return nil
}

func (unconfigured) UpdateRunner(context.Context, string, backend.RunnerMetadata) error {
	return fmt.Errorf("update instance: no aws instance specification: %w", backend.ErrPermanent)
}
