package runtime

import (
	"context"
	"fmt"

	"github.com/runner-manager/runner-manager/libs/backend"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// handleUpdate records a job's metadata on the runner's instance
// (backend.UpdateRunner). It is metadata: no result is published, and a
// failure never holds anything up. A retryable failure is delivered again
// up to RetryDeliveries deliveries; then, or at once for any other failure,
// the update is dropped: acknowledged, logged and counted
// (outcome dropped_<class>).
func (r *Runtime) handleUpdate(ctx context.Context, m stream.Message, cmd *rmv1.ProvisionCommand, u *rmv1.UpdateRunner) error {
	ctx = withRunner(ctx, u.GetName(), u.GetGroup())
	log := r.log.With("entry", m.ID, "command_id", cmd.GetCommandId(), "operation", opUpdate,
		"runner", u.GetName(), "group", u.GetGroup(), "job_id", u.GetJobId(), "deliveries", m.Deliveries)
	err := r.update(ctx, u)
	if err == nil {
		log.Info("runner metadata updated", "repository", u.GetRepository())
		r.metrics.command(opUpdate, outcomeUpdated)
		return nil
	}
	if ctx.Err() != nil {
		log.Info("command interrupted by shutdown, left pending", "error", err.Error())
		r.metrics.command(opUpdate, outcomeInterrupted)
		return fmt.Errorf("%s interrupted: %w", opUpdate, err)
	}
	if ref, ok := asRefusal(err); ok {
		r.metrics.refused.WithLabelValues(ref.reason).Inc()
	}
	class := classify(err)
	if class == rmv1.FailureClass_FAILURE_CLASS_RETRYABLE && m.Deliveries < r.opts.RetryDeliveries {
		log.Warn("runner metadata update failed, will be delivered again", "class", className(class), "error", err.Error())
		r.metrics.command(opUpdate, outcomeRetry)
		return err
	}
	log.Warn("runner metadata update dropped (metadata only: the job runs on)", "class", className(class), "error", err.Error())
	r.metrics.command(opUpdate, outcomeDropped+className(class))
	return nil
}

// update checks the command against the configuration like a delete (the
// runner's group, or its recorded location) and calls the backend. It
// waits for a create of the same name handled at the same time (a job can
// start before the created result), so that the instance exists.
func (r *Runtime) update(ctx context.Context, u *rmv1.UpdateRunner) error {
	if err := checkName(u.GetName()); err != nil {
		return fmt.Errorf("update runner: %w", err)
	}
	unlock := r.names.lock(u.GetName())
	defer unlock()
	b, err := r.locate(u.GetGroup(), u.GetBackendType(), "", "", u.GetLocation())
	if err != nil {
		return fmt.Errorf("update runner %s: %w", u.GetName(), err)
	}
	md := backend.RunnerMetadata{
		JobID: u.GetJobId(), RunID: u.GetRunId(), Repository: u.GetRepository(),
		Workflow: u.GetWorkflow(), State: u.GetState(),
	}
	if md.State == "" {
		md.State = backend.StateBusy
	}
	_, err = callBackend(ctx, r, opUpdate, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, b.UpdateRunner(ctx, u.GetName(), md)
	})
	if err != nil {
		return fmt.Errorf("update runner %s: %w", u.GetName(), err)
	}
	return nil
}
