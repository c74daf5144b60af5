package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/runner-manager/runner-manager/libs/backend"
)

var docker = sync.OnceValues(func() (*client.Client, error) {
	// As provisioner-docker does: DOCKER_HOST and the like from the
	// environment, the API version negotiated with the engine.
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
})

// Docker returns the Docker Engine client the harness and the scenarios
// share; it lives as long as the test process.
func Docker() (*client.Client, error) { return docker() }

// managerFilter selects the containers labelled as the manager's, plus the
// extra filters given.
func (s *System) managerFilter(extra ...filters.KeyValuePair) filters.Args {
	return filters.NewArgs(append(extra, filters.Arg("label", backend.LabelManager+"="+s.Opts.Name))...)
}

// Containers lists the ids of the containers carrying the manager's label,
// running or not.
func (s *System) Containers(ctx context.Context) ([]string, error) {
	cs, err := s.containers(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids, nil
}

// ContainerRunners returns, for every container carrying the manager's label,
// its runner label (the runner's name) and its state (running, exited...).
func (s *System) ContainerRunners(ctx context.Context) (map[string]string, error) {
	cs, err := s.containers(ctx)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, c := range cs {
		if name := c.Labels[backend.LabelRunner]; name != "" {
			m[name] = string(c.State)
		}
	}
	return m, nil
}

func (s *System) containers(ctx context.Context) ([]container.Summary, error) {
	d, err := Docker()
	if err != nil {
		return nil, err
	}
	cs, err := d.ContainerList(ctx, container.ListOptions{All: true, Filters: s.managerFilter()})
	if err != nil {
		return nil, fmt.Errorf("list the containers of %s: %w", s.Opts.Name, err)
	}
	return cs, nil
}

// RemoveContainers removes (forcibly) every container carrying the manager's label.
func (s *System) RemoveContainers(ctx context.Context) error {
	ids, err := s.Containers(ctx)
	if err != nil {
		return err
	}
	d, err := Docker()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := d.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
	}
	return nil
}

// ContainerStarts records, from the engine's events, the first start time of
// every container of one manager, by runner name. Start it before the
// containers are created; Stop it before reading.
type ContainerStarts struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	starts map[string]time.Time
	ids    map[string]map[string]bool
	err    error
}

// WatchContainerStarts follows the start events of the manager's containers.
func (s *System) WatchContainerStarts(ctx context.Context) (*ContainerStarts, error) {
	d, err := Docker()
	if err != nil {
		return nil, err
	}
	// The subscription attaches asynchronously: asking for the events since
	// now makes the engine replay any that happen before it does.
	since := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	msgs, errs := d.Events(ctx, events.ListOptions{
		Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: s.managerFilter(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("event", string(events.ActionStart)),
		),
	})
	w := &ContainerStarts{cancel: cancel, done: make(chan struct{}), starts: map[string]time.Time{}, ids: map[string]map[string]bool{}}
	go func() {
		defer close(w.done)
		for {
			select {
			case m := <-msgs:
				w.record(m.Actor.Attributes[backend.LabelRunner], m.Actor.ID, time.Unix(0, m.TimeNano))
			case err := <-errs:
				if ctx.Err() == nil {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
				return
			}
		}
	}()
	return w, nil
}

func (w *ContainerStarts) record(runner, id string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.starts[runner]; !ok {
		w.starts[runner] = at
	}
	if w.ids[runner] == nil {
		w.ids[runner] = map[string]bool{}
	}
	w.ids[runner][id] = true
}

// Stop ends the watch.
func (w *ContainerStarts) Stop() {
	w.cancel()
	<-w.done
}

// Err is the error that ended the watch before Stop, if any: the starts seen
// after it are missing.
func (w *ContainerStarts) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Starts returns the start time of each runner's container.
func (w *ContainerStarts) Starts() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(w.starts))
	for k, v := range w.starts {
		out[k] = v
	}
	return out
}

// Duplicates returns the runners that had more than one container.
func (w *ContainerStarts) Duplicates() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for name, ids := range w.ids {
		if len(ids) > 1 {
			out[name] = len(ids)
		}
	}
	return out
}
