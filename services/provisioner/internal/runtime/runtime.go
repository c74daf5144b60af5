// Package runtime is what every provisioner-<type> runs (docs/design.md §1, §5, §6):
// it consumes the command stream {P}:provision:<type> in the consumer group
// provisioner-<type>, registers runners at GitHub by JIT, acts on one
// backend.Backend, publishes each outcome to {P}:results and acknowledges
// the command only after that.
//
// It is internal to the provisioner module: the provisioner-<type> binaries
// run it, and the benchmarks run it through cmd/provisioner-bench (a real
// binary, started by the e2e harness like the others).
//
// Retries. Two layers could multiply; they are kept apart:
//   - Here, a retryable failure (timeout, 5xx, rate limit, unknown error) is
//     returned to the stream runtime, which delivers the command again after
//     a short backoff, up to RetryDeliveries deliveries. On the last one the
//     runtime gives up: it cleans up what it may have made, publishes a
//     failed result of class retryable and acknowledges.
//   - A permanent or capacity failure is answered at once with a failed
//     result and acknowledged.
//   - The scheduler owns the create-retry policy (backoff, attempts, the
//     release of the reservation) on top of failed results.
//   - The DLQ is only for what cannot be handled at all (an undecodable
//     command, a crash loop): after MaxDeliveries the stream runtime moves
//     it there and DeadLetter publishes a failed result with
//     dead_lettered=true, so the scheduler releases the capacity.
package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/recent"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// Defaults of Options.
const (
	DefaultGitHubTimeout   = 30 * time.Second
	DefaultRetryDeliveries = 3
	// DefaultPublishTimeout bounds the publication of one result, on a
	// context that shutdown does not cancel.
	DefaultPublishTimeout = 10 * time.Second
	// DefaultShutdownTimeout leaves libs/service (30 s) the time to stop the
	// HTTP server after the runtime returned.
	DefaultShutdownTimeout = 20 * time.Second
)

// BackendFactory returns the backend that hosts the runners of an instance
// specification: the JSON of a group's backend section in the provisioner's
// own configuration (never a command's), or empty for the backend's default
// location when no group of the type is configured. It is called for every
// command: implementations cache their API clients. An error wrapping backend.ErrPermanent means the
// specification is invalid.
type BackendFactory func(instanceSpec []byte) (backend.Backend, error)

// Options configure a Runtime. Zero fields take the defaults of
// libs/config.
type Options struct {
	// Type of the backend: docker, aws or gcp. Required.
	Type string
	// Config is the provisioner's configuration, the same file as the
	// scheduler's: the groups of Type in it are the only ones whose commands
	// the runtime acts on, and their instance specification, organization,
	// repository and labels are the ones it uses. Required.
	Config *config.Config
	// Backend returns the backend of an instance specification. Required.
	Backend BackendFactory
	// GitHub registers and removes runners. Required.
	GitHub GitHub
	// Redis holds the streams. Required.
	Redis redis.UniversalClient
	// Keys names the streams of the manager. Required.
	Keys keys.Keys
	// Publisher of results; default stream.NewPublisher(Redis, config.DefaultStreamMaxLen).
	Publisher *stream.Publisher
	// Consumer is this replica's stable name in the consumer group; default
	// stream.ConsumerName("") (the host name; Main passes $POD_NAME).
	Consumer string
	// Concurrency bounds the commands handled at once.
	Concurrency int
	// CallTimeout bounds one backend call.
	CallTimeout time.Duration
	// GitHubTimeout bounds one GitHub call.
	GitHubTimeout time.Duration
	// MinIdle before another replica takes over the pending commands of a
	// dead one; default CallTimeout + config.ReclaimMargin. (The stream
	// runtime refreshes the entries being handled, so a live replica is not
	// overtaken.)
	MinIdle time.Duration
	// MaxDeliveries moves a command to the DLQ after that many deliveries.
	MaxDeliveries int64
	// RetryDeliveries is the number of deliveries a command gets for
	// retryable failures before the runtime answers with a failed result;
	// default 3, at most MaxDeliveries-1.
	RetryDeliveries int64
	// Backoff before a failed command is delivered again (the stream
	// runtime's default when nil).
	Backoff func(deliveries int64) time.Duration
	// Block of XREADGROUP (the stream runtime's default when zero).
	Block time.Duration
	// ShutdownTimeout is how long the commands in flight may finish after
	// Run's context is cancelled; default DefaultShutdownTimeout, within
	// libs/service's own shutdown deadline.
	ShutdownTimeout time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Metrics registers the provisioner's metrics; nil for none.
	Metrics prometheus.Registerer
	// StreamMetrics are the stream runtime's metrics (stream.NewMetrics),
	// shared by the consumers of the process; nil for none.
	StreamMetrics *stream.Metrics
	// Now is the clock of results (default time.Now).
	Now func() time.Time
	// TracerProvider of the spans around backend and GitHub calls; default
	// the global one (libs/telemetry.SetupTracing).
	TracerProvider trace.TracerProvider
}

// Runtime handles the commands of one backend type.
type Runtime struct {
	opts    Options
	budget  time.Duration
	log     *slog.Logger
	pub     *stream.Publisher
	metrics *metrics
	tracer  trace.Tracer

	consumer *stream.Consumer

	names nameLocks

	// The groups of the configuration on this backend type, by name and in
	// configuration order.
	groupCfg  map[string]*groupConfig
	groupList []*groupConfig

	groupsMu sync.Mutex
	groups   map[string]int64 // "org/group" -> runner group id

	downloads downloadCache
}

// New checks opts, applies the defaults and returns a Runtime.
func New(opts Options) (*Runtime, error) {
	switch {
	case opts.Type == "":
		return nil, errors.New("provisioner runtime: no backend type")
	case opts.Config == nil:
		return nil, errors.New("provisioner runtime: no configuration")
	case opts.Backend == nil:
		return nil, errors.New("provisioner runtime: no backend")
	case opts.GitHub == nil:
		return nil, errors.New("provisioner runtime: no GitHub client")
	case opts.Redis == nil:
		return nil, errors.New("provisioner runtime: no Redis client")
	case opts.Keys == (keys.Keys{}):
		return nil, errors.New("provisioner runtime: no keys")
	}
	if opts.Publisher == nil {
		opts.Publisher = stream.NewPublisher(opts.Redis, config.DefaultStreamMaxLen)
	}
	opts.Consumer = cmp.Or(opts.Consumer, stream.ConsumerName(""))
	opts.Concurrency = cmp.Or(opts.Concurrency, config.DefaultConcurrency)
	opts.CallTimeout = cmp.Or(opts.CallTimeout, config.DefaultCallTimeout)
	opts.GitHubTimeout = cmp.Or(opts.GitHubTimeout, DefaultGitHubTimeout)
	opts.MinIdle = cmp.Or(opts.MinIdle, opts.CallTimeout+config.ReclaimMargin)
	opts.MaxDeliveries = cmp.Or(opts.MaxDeliveries, config.DefaultMaxDeliveries)
	opts.RetryDeliveries = cmp.Or(opts.RetryDeliveries, DefaultRetryDeliveries)
	opts.ShutdownTimeout = cmp.Or(opts.ShutdownTimeout, DefaultShutdownTimeout)
	if opts.MaxDeliveries > 1 {
		opts.RetryDeliveries = min(opts.RetryDeliveries, opts.MaxDeliveries-1)
	}
	opts.RetryDeliveries = max(opts.RetryDeliveries, 1)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	groupCfg, groupList, err := loadGroups(opts.Config, opts.Type)
	if err != nil {
		return nil, fmt.Errorf("provisioner runtime: %w", err)
	}
	m, err := newMetrics(opts.Type, opts.Metrics)
	if err != nil {
		return nil, err
	}
	r := &Runtime{
		opts: opts,
		// The slowest create: a listing and a creation on the backend, and
		// five GitHub calls (runner downloads, group, JIT, stale lookup and
		// removal, JIT again).
		budget:  2*opts.CallTimeout + 6*opts.GitHubTimeout,
		log:     opts.Logger.With("backend", opts.Type),
		pub:     opts.Publisher,
		metrics: m,
		tracer:  defaultTracerProvider(opts.TracerProvider).Tracer(tracerName),
		groups:  map[string]int64{},

		groupCfg:  groupCfg,
		groupList: groupList,
	}
	r.consumer = stream.NewConsumer(opts.Redis, stream.ConsumerConfig{
		Stream:          opts.Keys.Provision(opts.Type),
		Group:           keys.ProvisionerGroup(opts.Type),
		Consumer:        opts.Consumer,
		Concurrency:     opts.Concurrency,
		MinIdle:         opts.MinIdle,
		MaxDeliveries:   opts.MaxDeliveries,
		DLQ:             opts.Keys.DLQ(),
		MaxLen:          opts.Publisher.MaxLen(),
		Block:           opts.Block,
		ShutdownTimeout: opts.ShutdownTimeout,
		Backoff:         opts.Backoff,
		OnDeadLetter:    r.DeadLetter,
		Logger:          r.log,
		Metrics:         opts.StreamMetrics,
	}, r.Handle)
	return r, nil
}

// Run consumes commands until ctx is cancelled, then lets the commands in
// flight finish (within the stream runtime's shutdown timeout).
func (r *Runtime) Run(ctx context.Context) error {
	r.log.Info("consuming commands", "stream", r.opts.Keys.Provision(r.opts.Type),
		"group", keys.ProvisionerGroup(r.opts.Type), "consumer", r.opts.Consumer,
		"concurrency", r.opts.Concurrency, "call_timeout", r.opts.CallTimeout.String(),
		"min_idle", r.opts.MinIdle.String())
	return r.consumer.Run(ctx)
}

// Ready reports whether Redis answers and the consumer group exists.
func (r *Runtime) Ready(ctx context.Context) error { return r.consumer.Ready(ctx) }

// Handle handles one command: the stream.Handler of the runtime. It returns
// nil when the command is done and its result published (acknowledge), and
// an error when it must be delivered again: a retryable failure on an early
// delivery, an undecodable command (which ends in the DLQ), or a shutdown.
func (r *Runtime) Handle(ctx context.Context, m stream.Message) error {
	if m.Type != stream.TypeCommand {
		r.metrics.command("unknown", outcomePoison)
		return fmt.Errorf("entry %s: message type %q is not a command", m.ID, m.Type)
	}
	var cmd rmv1.ProvisionCommand
	if err := m.Unmarshal(&cmd); err != nil {
		r.metrics.command("unknown", outcomePoison)
		return err
	}
	switch c := cmd.Command.(type) {
	case *rmv1.ProvisionCommand_Create:
		return r.handleCreate(ctx, m, &cmd, c.Create)
	case *rmv1.ProvisionCommand_Delete:
		return r.handleDelete(ctx, m, &cmd, c.Delete)
	case *rmv1.ProvisionCommand_List:
		return r.handleList(ctx, m, &cmd, c.List)
	case *rmv1.ProvisionCommand_Update:
		return r.handleUpdate(ctx, m, &cmd, c.Update)
	default:
		r.metrics.command("unknown", outcomePoison)
		return fmt.Errorf("command %s (entry %s): no create, delete, list or update in it", cmd.GetCommandId(), m.ID)
	}
}

// DeadLetter is called by the stream runtime before a command goes to the
// DLQ: it publishes a failed result with dead_lettered=true, so that the
// scheduler releases what it reserved for the command.
func (r *Runtime) DeadLetter(ctx context.Context, m stream.Message, reason string) error {
	res := &rmv1.ProvisionResult{BackendType: r.opts.Type}
	failed := &rmv1.Failed{
		Class:        rmv1.FailureClass_FAILURE_CLASS_RETRYABLE,
		Reason:       truncate("dead-lettered after "+fmt.Sprint(m.Deliveries)+" deliveries: "+reason, maxReason),
		DeadLettered: true,
	}
	var cmd rmv1.ProvisionCommand
	if m.Type != stream.TypeCommand || m.Unmarshal(&cmd) != nil {
		// Nothing can be said about it but that it is gone.
		failed.Class = rmv1.FailureClass_FAILURE_CLASS_PERMANENT
		failed.Operation = "unknown"
	} else {
		res.CommandId = cmd.GetCommandId()
		switch c := cmd.Command.(type) {
		case *rmv1.ProvisionCommand_Create:
			failed.Operation = opCreate
			res.RunnerName, res.Group = c.Create.GetSpec().GetName(), c.Create.GetSpec().GetGroup()
			res.Attempt = c.Create.GetAttempt()
		case *rmv1.ProvisionCommand_Delete:
			failed.Operation = opDelete
			res.RunnerName, res.Group = c.Delete.GetName(), c.Delete.GetGroup()
		case *rmv1.ProvisionCommand_List:
			failed.Operation = opList
		case *rmv1.ProvisionCommand_Update:
			// Metadata: nobody waits for its result.
			r.log.Warn("runner metadata update dead-lettered", "entry", m.ID, "command_id", res.CommandId,
				"runner", c.Update.GetName(), "deliveries", m.Deliveries, "reason", reason)
			r.metrics.command(opUpdate, outcomeDeadLettered)
			return nil
		default:
			failed.Class = rmv1.FailureClass_FAILURE_CLASS_PERMANENT
			failed.Operation = "unknown"
		}
	}
	res.Outcome = &rmv1.ProvisionResult_Failed{Failed: failed}
	r.log.Error("command dead-lettered", "entry", m.ID, "command_id", res.CommandId,
		"operation", failed.Operation, "runner", res.RunnerName, "deliveries", m.Deliveries, "reason", reason)
	r.metrics.command(failed.Operation, outcomeDeadLettered)
	return r.publish(ctx, res)
}

// Operations, in results, logs and metrics.
const (
	opCreate = "create"
	opDelete = "delete"
	opList   = "list"
	opUpdate = "update"
)

// maxReason bounds the reason of a failed result.
const maxReason = 500

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// publish appends res to {P}:results on a context that a shutdown does not
// cancel: the work is done, its result must not be lost.
func (r *Runtime) publish(ctx context.Context, res *rmv1.ProvisionResult) error {
	res.FinishedAt = timestamppb.New(r.opts.Now())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultPublishTimeout)
	defer cancel()
	if _, err := r.pub.Publish(ctx, r.opts.Keys.Results(), stream.TypeResult, res); err != nil {
		return fmt.Errorf("result of command %s: %w", res.GetCommandId(), err)
	}
	return nil
}

// settle ends the handling of a command that failed with err: it decides
// between another delivery (a non-nil return) and a failed result
// (published, then nil: acknowledge). giveUp, when set, runs before the
// failed result is published (cleanup of what a create may have made).
func (r *Runtime) settle(ctx context.Context, m stream.Message, res *rmv1.ProvisionResult, op string, err error, giveUp func(context.Context)) error {
	log := r.log.With("entry", m.ID, "command_id", res.GetCommandId(), "operation", op,
		"runner", res.GetRunnerName(), "group", res.GetGroup(), "deliveries", m.Deliveries)
	if ctx.Err() != nil {
		// Shutdown: leave the command pending; another delivery will do it.
		log.Info("command interrupted by shutdown, left pending", "error", err.Error())
		r.metrics.command(op, outcomeInterrupted)
		return fmt.Errorf("%s interrupted: %w", op, err)
	}
	if ref, ok := asRefusal(err); ok {
		// Counted at every delivery: a retryable refusal is refused again
		// until the configurations agree or the retries run out.
		log.Warn("command refused: it disagrees with this provisioner's configuration",
			"refusal", ref.reason, "error", err.Error())
		r.refused(ctx, res.GetGroup(), ref.reason)
	}
	class := classify(err)
	if class == rmv1.FailureClass_FAILURE_CLASS_RETRYABLE && m.Deliveries < r.opts.RetryDeliveries {
		log.Warn("command failed, will be delivered again", "class", className(class), "error", err.Error())
		r.metrics.command(op, outcomeRetry)
		return err
	}
	log.Error("command failed", "class", className(class), "error", err.Error())
	if giveUp != nil {
		giveUp(ctx)
	}
	res.Outcome = &rmv1.ProvisionResult_Failed{Failed: &rmv1.Failed{
		Class:     class,
		Reason:    truncate(err.Error(), maxReason),
		Operation: op,
	}}
	if perr := r.publish(ctx, res); perr != nil {
		return perr
	}
	r.metrics.command(op, "failed_"+className(class))
	return nil
}

// maxRecordedGroup bounds the group name of a recorded refusal: it comes
// from the command, which may be forged.
const maxRecordedGroup = 80

// refused counts a refusal and records it in {P}:recent:refused for the
// scheduler's status page (group, reason, time). A failed record is logged
// and does not fail the command: the metric has already counted it.
func (r *Runtime) refused(ctx context.Context, group, reason string) {
	r.metrics.refused.WithLabelValues(reason).Inc()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultPublishTimeout)
	defer cancel()
	e := recent.Entry{Group: truncate(group, maxRecordedGroup), Reason: reason, Time: r.opts.Now()}
	if err := recent.Push(ctx, r.opts.Redis, r.opts.Keys.RecentRefusals(), e); err != nil {
		r.log.Warn("refusal not recorded for the status page", "error", err)
	}
}

func className(c rmv1.FailureClass) string {
	switch c {
	case rmv1.FailureClass_FAILURE_CLASS_CAPACITY:
		return "capacity"
	case rmv1.FailureClass_FAILURE_CLASS_PERMANENT:
		return "permanent"
	default:
		return "retryable"
	}
}

// backendFor returns the backend of an instance specification.
func (r *Runtime) backendFor(spec []byte) (backend.Backend, error) {
	b, err := r.opts.Backend(spec)
	if err != nil {
		return nil, fmt.Errorf("backend of the instance specification: %w", err)
	}
	return b, nil
}

// callBackend runs one backend call under CallTimeout, in a "backend.<op>"
// span, and measures it.
func callBackend[T any](ctx context.Context, r *Runtime, op string, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	defer cancel()
	ctx, span := r.startSpan(ctx, "backend", op)
	start := time.Now()
	v, err := call(ctx)
	r.metrics.backendCall(op, time.Since(start), err)
	endSpan(span, err)
	return v, err
}

// callGitHub runs one GitHub call under GitHubTimeout, in a "github.<op>"
// span, and measures it.
func callGitHub[T any](ctx context.Context, r *Runtime, op string, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.GitHubTimeout)
	defer cancel()
	ctx, span := r.startSpan(ctx, "github", op)
	start := time.Now()
	v, err := call(ctx)
	r.metrics.githubCall(op, time.Since(start), err)
	endSpan(span, err)
	return v, err
}
