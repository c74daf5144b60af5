// Package docker runs each runner in one Docker container, named after the
// runner, on a Docker Engine (docs/design.md §5, §6, §9).
//
// The JIT configuration reaches the container through its environment
// (ACTIONS_RUNNER_INPUT_JITCONFIG, which the runner's run.sh reads; the
// official image has no entrypoint and no command, so the backend starts
// /home/runner/run.sh itself). Every container carries the ownership labels
// of libs/backend; List and Delete never touch a container without this
// manager's label. Create is idempotent by container name.
//
// Runners are confined (docs/security.md): never privileged, never the
// Docker socket, a PID and a memory limit by default, and by default on a
// bridge of their own that the backend creates (DockerRunnerNetwork), with
// no traffic between containers.
package docker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
)

// Labels this backend adds to the ownership labels of libs/backend.
const (
	// LabelCreatedAt is when the manager created the container (RFC 3339).
	LabelCreatedAt = "runner-manager.io/created-at"
	// LabelStopTimeout is the grace period, in seconds, Delete gives the
	// runner (from the spec's stop_timeout, which Delete does not receive).
	LabelStopTimeout = "runner-manager.io/stop-timeout"
)

// EnvJITConfig is the environment variable of the JIT configuration.
const EnvJITConfig = "ACTIONS_RUNNER_INPUT_JITCONFIG"

// DefaultStopTimeout is the grace period of a runner whose spec sets none.
const DefaultStopTimeout = 10 * time.Second

// The official runner image: it has no entrypoint and no command; its
// runner, started by RunnerCommand as RunnerUser, reads EnvJITConfig.
const (
	OfficialImage = "ghcr.io/actions/actions-runner"
	RunnerCommand = "/home/runner/run.sh"
	RunnerUser    = "runner"
)

// isOfficialImage tells whether ref names the official image, any tag or digest.
func isOfficialImage(ref string) bool {
	repo := ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	return repo == OfficialImage
}

// Options configure a Backend.
type Options struct {
	// Manager is the manager's name, the value of the ownership label. Required.
	Manager string
	// Client of the Docker Engine; default one from the environment
	// (DOCKER_HOST, ...), or from Host.
	Client client.APIClient
	// Host overrides DOCKER_HOST when Client is nil.
	Host string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock of the created-at label (default time.Now).
	Now func() time.Time
}

// Backend is a backend.Backend on one Docker Engine.
type Backend struct {
	manager string
	cli     client.APIClient
	log     *slog.Logger
	now     func() time.Time

	netMu    sync.Mutex
	netReady bool // the runners' network was found or created
}

var _ backend.Backend = (*Backend)(nil)

// New returns a Backend; it makes no call to the engine.
func New(opts Options) (*Backend, error) {
	if opts.Manager == "" {
		return nil, errors.New("docker backend: no manager name")
	}
	cli := opts.Client
	if cli == nil {
		clientOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
		if opts.Host != "" {
			clientOpts = append(clientOpts, client.WithHost(opts.Host))
		}
		c, err := client.NewClientWithOpts(clientOpts...)
		if err != nil {
			return nil, fmt.Errorf("docker backend: client of %q: %w", cmp.Or(opts.Host, "DOCKER_HOST"), err)
		}
		cli = c
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Backend{manager: opts.Manager, cli: cli, log: opts.Logger, now: opts.Now}, nil
}

// Ping checks that the engine answers.
func (b *Backend) Ping(ctx context.Context) error {
	if _, err := b.cli.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker engine: %w", classify(err))
	}
	return nil
}

// Close releases the client.
func (b *Backend) Close() error { return b.cli.Close() }

// Create starts the runner's container, or returns the existing one (and
// starts it if an earlier attempt created it without starting it).
func (b *Backend) Create(ctx context.Context, r backend.RunnerSpec) (backend.Instance, error) {
	inst, err := b.create(ctx, r, true)
	return inst, scrub(err, r.JITConfig.Value())
}

// create makes and starts the container; retry allows one more attempt
// when the runners' network disappeared.
func (b *Backend) create(ctx context.Context, r backend.RunnerSpec, retry bool) (backend.Instance, error) {
	if err := backend.CheckRunnerName(r.Name); err != nil {
		return backend.Instance{}, fmt.Errorf("create container: %w", err)
	}
	cfg, host, err := b.containerConfig(r)
	if err != nil {
		return backend.Instance{}, fmt.Errorf("create container %s: %w", r.Name, err)
	}
	if string(host.NetworkMode) == b.runnerNetwork() {
		if err := b.ensureNetwork(ctx); err != nil {
			return backend.Instance{}, fmt.Errorf("create container %s: %w", r.Name, err)
		}
	}
	inst, err := b.createContainer(ctx, r.Name, cfg, host)
	if err != nil {
		return backend.Instance{}, fmt.Errorf("create container %s: %w", r.Name, err)
	}
	if !b.owns(inst.Config.Labels) {
		return backend.Instance{}, fmt.Errorf("create container %s: the name is taken by a container this manager does not own: %w", r.Name, backend.ErrPermanent)
	}
	if inst.State != nil && inst.State.Status == "created" {
		if err := b.cli.ContainerStart(ctx, inst.ID, container.StartOptions{}); err != nil {
			if retry && cerrdefs.IsNotFound(err) && string(host.NetworkMode) == b.runnerNetwork() && isNetworkMissing(err) {
				// The runners' network was removed by hand since this
				// backend made it (older engines check it only at start):
				// make it again, and the container on it.
				b.remove(context.WithoutCancel(ctx), inst.ID)
				b.netMu.Lock()
				b.netReady = false
				b.netMu.Unlock()
				return b.create(ctx, r, false)
			}
			err = classify(err)
			if errors.Is(err, backend.ErrPermanent) {
				// A container that cannot start (bad command, bad mount)
				// would stay forever: remove it.
				b.remove(context.WithoutCancel(ctx), inst.ID)
			}
			return backend.Instance{}, fmt.Errorf("create container %s: start: %w", r.Name, err)
		}
		if inst, err = b.cli.ContainerInspect(ctx, inst.ID); err != nil {
			return backend.Instance{}, fmt.Errorf("create container %s: inspect: %w", r.Name, classify(err))
		}
	}
	return b.instance(inst.ID, inst.Name, inst.Config.Labels, stateOf(inst), parseTime(inst.Created)), nil
}

// conflictRetries bounds the waits for a container whose name is taken
// but which the engine does not show yet (created concurrently).
const (
	conflictRetries = 50
	conflictWait    = 100 * time.Millisecond
)

// createContainer creates the container, pulling its image when missing,
// and returns it; a container of that name already there is returned.
func (b *Backend) createContainer(ctx context.Context, name string, cfg *container.Config, host *container.HostConfig) (container.InspectResponse, error) {
	var netCfg *network.NetworkingConfig
	pulled, netRetried := false, false
	for attempt := 0; ; attempt++ {
		resp, err := b.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, name)
		switch {
		case err == nil:
			inst, err := b.cli.ContainerInspect(ctx, resp.ID)
			if err != nil {
				return inst, fmt.Errorf("inspect: %w", classify(err))
			}
			return inst, nil
		case cerrdefs.IsConflict(err):
			// Made by an earlier delivery, or by a concurrent one that the
			// engine may not show yet: idempotent.
			inst, err := b.cli.ContainerInspect(ctx, name)
			if err == nil {
				return inst, nil
			}
			if !cerrdefs.IsNotFound(err) {
				return inst, fmt.Errorf("inspect: %w", classify(err))
			}
			if attempt >= conflictRetries {
				return inst, fmt.Errorf("the name is taken but no container has it: %w", backend.ErrRetryable)
			}
			if err := sleep(ctx, conflictWait); err != nil {
				return inst, err
			}
		case cerrdefs.IsNotFound(err) && !netRetried && string(host.NetworkMode) == b.runnerNetwork() && isNetworkMissing(err):
			// Removed by hand since this backend made it: make it again.
			netRetried = true
			b.netMu.Lock()
			b.netReady = false
			b.netMu.Unlock()
			if err := b.ensureNetwork(ctx); err != nil {
				return container.InspectResponse{}, err
			}
		case cerrdefs.IsNotFound(err) && !pulled && isImageMissing(err):
			if err := b.pull(ctx, cfg.Image); err != nil {
				return container.InspectResponse{}, err
			}
			pulled = true
		default:
			return container.InspectResponse{}, classify(err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", backend.ErrRetryable, ctx.Err())
	case <-t.C:
		return nil
	}
}

func isNetworkMissing(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "network") && strings.Contains(msg, "not found")
}

// runnerNetwork is the name of the runners' own bridge.
func (b *Backend) runnerNetwork() string { return config.DockerRunnerNetwork(b.manager) }

// BridgeName is the Linux interface of the runners' bridge of manager
// (at most 15 characters), for the host's firewall rules (DOCKER-USER -i).
func BridgeName(manager string) string {
	sum := sha256.Sum256([]byte(manager))
	return "rmr-" + hex.EncodeToString(sum[:4])
}

// ensureNetwork finds or creates the runners' bridge, once per Backend
// (concurrent callers wait for the first). A network of that name made by
// another replica at the same time is a success. The bridge carries the
// ownership label; containers on it cannot reach each other.
func (b *Backend) ensureNetwork(ctx context.Context) error {
	b.netMu.Lock()
	defer b.netMu.Unlock()
	if b.netReady {
		return nil
	}
	name := b.runnerNetwork()
	_, err := b.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", name, classify(err))
	}
	if err != nil {
		_, err = b.cli.NetworkCreate(ctx, name, network.CreateOptions{
			Driver: "bridge",
			Labels: map[string]string{backend.LabelManager: b.manager},
			Options: map[string]string{
				"com.docker.network.bridge.enable_icc": "false",
				"com.docker.network.bridge.name":       BridgeName(b.manager),
			},
		})
		switch {
		case err == nil:
			b.log.Info("created the runners' network", "network", name, "bridge", BridgeName(b.manager))
		case cerrdefs.IsConflict(err):
		default:
			return fmt.Errorf("create network %s: %w", name, classify(err))
		}
	}
	b.netReady = true
	return nil
}

func isImageMissing(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "no such image")
}

// pull pulls the image; a pull that fails for want of the image or of
// credentials is permanent.
func (b *Backend) pull(ctx context.Context, ref string) error {
	b.log.Info("pulling image", "image", ref)
	rc, err := b.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, classifyPull(err))
	}
	defer rc.Close()
	// The progress stream ends with an error message when the pull failed.
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pull image %s: read progress: %w: %w", ref, backend.ErrRetryable, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("pull image %s: %w", ref, classifyPull(errors.New(msg.Error)))
		}
	}
}

// containerConfig builds the container's configuration from the spec.
func (b *Backend) containerConfig(r backend.RunnerSpec) (*container.Config, *container.HostConfig, error) {
	if r.Name == "" {
		return nil, nil, fmt.Errorf("empty runner name: %w", backend.ErrPermanent)
	}
	spec := &config.DockerSpec{}
	if len(r.InstanceSpec) > 0 {
		var err error
		if spec, err = config.DecodeDockerSpec(r.InstanceSpec); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", backend.ErrPermanent, err)
		}
	}
	mem, err := config.ParseMemory(spec.Memory)
	if err != nil {
		return nil, nil, fmt.Errorf("memory: %w: %w", backend.ErrPermanent, err)
	}
	if spec.CPUs < 0 {
		return nil, nil, fmt.Errorf("cpus %v: %w", spec.CPUs, backend.ErrPermanent)
	}
	stop := cmp.Or(spec.StopTimeout, DefaultStopTimeout)
	stopSeconds := int(stop.Round(time.Second) / time.Second)

	for _, vol := range spec.Volumes {
		if src, _, _ := strings.Cut(vol, ":"); config.IsDockerSocketMount(src) {
			return nil, nil, fmt.Errorf("volume %q mounts the Docker socket: %w", vol, backend.ErrPermanent)
		}
	}
	if spec.Memory == "" {
		if mem, err = config.ParseMemory(config.DefaultDockerMemory); err != nil {
			return nil, nil, err
		}
	}
	pids := cmp.Or(spec.PidsLimit, config.DefaultDockerPidsLimit)
	if pids < -1 {
		return nil, nil, fmt.Errorf("pids_limit %d: %w", pids, backend.ErrPermanent)
	}

	env := make([]string, 0, len(spec.Env)+1)
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		if k == EnvJITConfig {
			continue // only the manager sets it
		}
		env = append(env, k+"="+spec.Env[k])
	}
	env = append(env, EnvJITConfig+"="+r.JITConfig.Value())

	labels := map[string]string{
		backend.LabelManager: b.manager,
		backend.LabelGroup:   r.Group,
		backend.LabelRunner:  r.Name,
		LabelCreatedAt:       b.now().UTC().Format(time.RFC3339Nano),
		LabelStopTimeout:     strconv.Itoa(stopSeconds),
	}
	cfg := &container.Config{
		Hostname:    hostname(r.Name),
		Image:       cmp.Or(spec.Image, config.DefaultDockerImage),
		Env:         env,
		Labels:      labels,
		StopTimeout: &stopSeconds,
	}
	switch {
	case len(spec.Command) > 0:
		cfg.Cmd = spec.Command
	case isOfficialImage(cfg.Image):
		// No entrypoint, no command in the image: start the runner.
		cfg.Cmd = []string{RunnerCommand}
		cfg.User = RunnerUser
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(cmp.Or(spec.Network, b.runnerNetwork())),
		Privileged:    false, // never, whatever the spec says
		Binds:         slices.Clone(spec.Volumes),
		AutoRemove:    false, // the manager removes, after reading what it needs
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources: container.Resources{
			NanoCPUs:  int64(spec.CPUs * 1e9),
			Memory:    mem,
			PidsLimit: &pids,
		},
		Init: boolPtr(true), // reap the job's processes, forward SIGTERM
	}
	if sec := spec.Security; sec != nil {
		if sec.NoNewPrivileges {
			host.SecurityOpt = []string{"no-new-privileges"}
		}
		host.CapDrop = slices.Clone(sec.CapDrop)
	}
	return cfg, host, nil
}

// hostname is the runner name cut to a DNS label.
func hostname(name string) string {
	if len(name) > 63 {
		return name[:63]
	}
	return name
}

func boolPtr(v bool) *bool { return &v }

// UpdateRunner is refused: Docker cannot change a container's labels after
// its creation. The job metadata of a Docker runner is kept in its record by
// the scheduler, which emits no update for Docker (backend.MetadataInRecord).
func (b *Backend) UpdateRunner(ctx context.Context, name string, _ backend.RunnerMetadata) error {
	if err := backend.CheckRunnerName(name); err != nil {
		return fmt.Errorf("update container: %w", err)
	}
	return fmt.Errorf("update container %s: %w", name, backend.ErrMetadataInRecord)
}

// Delete stops the runner's container (with the grace period of its spec)
// and removes it. Not found, or a container of another owner, is nil.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := backend.CheckRunnerName(name); err != nil {
		return fmt.Errorf("delete container: %w", err)
	}
	victims, err := b.containersOf(ctx, name)
	if err != nil {
		return err
	}
	for _, v := range victims {
		if err := b.stopAndRemove(ctx, name, v); err != nil {
			return err
		}
	}
	return nil
}

// victim is one container to delete.
type victim struct {
	id      string
	running bool
	labels  map[string]string
}

// containersOf finds the containers of runner name: the one named after it,
// and any other that carries this manager's label and the runner's (a leak
// made by hand or by an older version may have another container name).
// Containers of other owners are never returned.
func (b *Backend) containersOf(ctx context.Context, name string) ([]victim, error) {
	var out []victim
	seen := map[string]bool{}
	inst, err := b.cli.ContainerInspect(ctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("delete container %s: inspect: %w", name, classify(err))
	case !b.owns(inst.Config.Labels):
		b.log.Warn("not deleting a container this manager does not own", "container", name)
		seen[inst.ID] = true
	default:
		running := inst.State != nil && (inst.State.Running || inst.State.Paused || inst.State.Restarting)
		out = append(out, victim{id: inst.ID, running: running, labels: inst.Config.Labels})
		seen[inst.ID] = true
	}
	list, err := b.cli.ContainerList(ctx, container.ListOptions{
		All: true,
		Filters: filters.NewArgs(
			filters.Arg("label", backend.LabelManager+"="+b.manager),
			filters.Arg("label", backend.LabelRunner+"="+name),
		),
	})
	if err != nil {
		return nil, fmt.Errorf("delete container %s: list: %w", name, classify(err))
	}
	for _, c := range list {
		if seen[c.ID] || !b.owns(c.Labels) {
			continue
		}
		seen[c.ID] = true
		running := c.State == "running" || c.State == "paused" || c.State == "restarting"
		out = append(out, victim{id: c.ID, running: running, labels: c.Labels})
	}
	return out, nil
}

// stopAndRemove stops a container with its grace period, then removes it;
// not found is done.
func (b *Backend) stopAndRemove(ctx context.Context, name string, v victim) error {
	if v.running {
		timeout := DefaultStopTimeout
		if s, err := strconv.Atoi(v.labels[LabelStopTimeout]); err == nil && s >= 0 {
			timeout = time.Duration(s) * time.Second
		}
		secs := int(timeout / time.Second)
		err := b.cli.ContainerStop(ctx, v.id, container.StopOptions{Timeout: &secs})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("delete container %s: stop: %w", name, classify(err))
		}
	}
	err := b.cli.ContainerRemove(ctx, v.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: remove: %w", name, classify(err))
	}
	return nil
}

// remove removes a container on a best-effort basis.
func (b *Backend) remove(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		b.log.Warn("remove a container that could not start", "container", id, "error", err.Error())
	}
}

// List returns the containers with this manager's label, running or not.
func (b *Backend) List(ctx context.Context) ([]backend.Instance, error) {
	list, err := b.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", backend.LabelManager+"="+b.manager)),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", classify(err))
	}
	out := make([]backend.Instance, 0, len(list))
	for _, c := range list {
		if !b.owns(c.Labels) { // the engine filtered; belt and braces
			continue
		}
		name := ""
		if len(c.Names) > 0 {
			name = c.Names[0]
		}
		out = append(out, b.instance(c.ID, name, c.Labels, string(c.State), time.Unix(c.Created, 0)))
	}
	slices.SortFunc(out, func(a, b backend.Instance) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (b *Backend) owns(labels map[string]string) bool {
	return labels[backend.LabelManager] == b.manager
}

// instance builds the Instance of a container; containerName is the
// engine's ("/name").
func (b *Backend) instance(id, containerName string, labels map[string]string, state string, created time.Time) backend.Instance {
	name := cmp.Or(labels[backend.LabelRunner], strings.TrimPrefix(containerName, "/"))
	if t, err := time.Parse(time.RFC3339Nano, labels[LabelCreatedAt]); err == nil {
		created = t
	}
	return backend.Instance{
		Name:      name,
		ID:        id,
		Group:     labels[backend.LabelGroup],
		State:     state,
		CreatedAt: created.UTC(),
	}
}

func stateOf(inst container.InspectResponse) string {
	if inst.State == nil {
		return "unknown"
	}
	return string(inst.State.Status)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// classify wraps an engine error with its backend class.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %w", backend.ErrRetryable, err)
	case cerrdefs.IsInvalidArgument(err), cerrdefs.IsNotFound(err), cerrdefs.IsPermissionDenied(err),
		cerrdefs.IsUnauthorized(err), cerrdefs.IsNotImplemented(err), cerrdefs.IsFailedPrecondition(err):
		return fmt.Errorf("%w: %w", backend.ErrPermanent, err)
	case cerrdefs.IsResourceExhausted(err):
		return fmt.Errorf("%w: %w", backend.ErrCapacity, err)
	case isInvalidSpec(err):
		return fmt.Errorf("%w: %w", backend.ErrPermanent, err)
	default:
		return fmt.Errorf("%w: %w", backend.ErrRetryable, err)
	}
}

// isInvalidSpec recognizes the validation errors that older engines answer
// with a 500 rather than a 400.
func isInvalidSpec(err error) bool {
	msg := strings.ToLower(err.Error())
	for _, s := range []string{
		"invalid volume specification", "invalid mount config", "invalid reference format",
		"invalid environment variable", "invalid port", "invalid mode", "invalid isolation",
		"executable file not found", "no such file or directory", "permission denied",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// classifyPull classifies an image pull: an image that does not exist, or
// that the engine may not read, is permanent; a registry that does not
// answer is retryable.
func classifyPull(err error) error {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "manifest unknown"), strings.Contains(msg, "not found"),
		strings.Contains(msg, "pull access denied"), strings.Contains(msg, "unauthorized"),
		strings.Contains(msg, "invalid reference format"):
		return fmt.Errorf("%w: %w", backend.ErrPermanent, err)
	}
	return classify(err)
}

// scrub keeps the secret out of an error whose text would carry it (an
// engine that echoes the environment back), keeping its class.
func scrub(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	class := backend.ErrRetryable
	for _, c := range []error{backend.ErrCapacity, backend.ErrPermanent} {
		if errors.Is(err, c) {
			class = c
		}
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), secret, "[redacted]"), class: class}
}

type scrubbed struct {
	msg   string
	class error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.class }
