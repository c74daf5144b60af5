package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/runner-manager/runner-manager/libs/backend"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// TombstoneTTL is how long a deleted runner's name is remembered; longer than
// any create command can stay pending.
const TombstoneTTL = 24 * time.Hour

func (r *Runtime) handleDelete(ctx context.Context, m stream.Message, cmd *rmv1.ProvisionCommand, d *rmv1.DeleteRunner) error {
	res := &rmv1.ProvisionResult{
		CommandId:   cmd.GetCommandId(),
		RunnerName:  d.GetName(),
		Group:       d.GetGroup(),
		BackendType: r.opts.Type,
	}
	ctx = withRunner(ctx, res.GetRunnerName(), res.GetGroup())
	// A name that is no runner's reaches no Redis key and no backend.
	if err := checkName(d.GetName()); err != nil {
		return r.settle(ctx, m, res, opDelete, fmt.Errorf("delete runner: %w", err), nil)
	}
	unlock := r.names.lock(res.GetRunnerName())
	defer unlock()
	// The tombstone first: a create of this name handled from now on, by
	// any replica, starts nothing.
	if d.GetName() != "" {
		if err := r.opts.Redis.Set(ctx, r.opts.Keys.Tombstone(d.GetName()), 1, TombstoneTTL).Err(); err != nil {
			return fmt.Errorf("delete runner %s: mark deleted: %w", d.GetName(), err)
		}
	}
	work, cancel := context.WithTimeout(ctx, r.budget)
	defer cancel()
	if err := r.delete(work, d); err != nil {
		return r.settle(ctx, m, res, opDelete, err, nil)
	}
	res.Outcome = &rmv1.ProvisionResult_Deleted{Deleted: &rmv1.Deleted{}}
	if err := r.publish(ctx, res); err != nil {
		return err
	}
	r.log.Info("runner deleted", "entry", m.ID, "command_id", res.CommandId, "runner", res.RunnerName,
		"group", res.Group, "reason", d.GetReason(), "deliveries", m.Deliveries)
	r.metrics.command(opDelete, outcomeDeleted)
	return nil
}

// delete removes the runner's instance, then its registration at GitHub if
// it is still there. Not found anywhere is done. The instance goes first: a
// registration without an instance is harmless (and found again by name),
// an instance without a registration would run nothing, unseen.
func (r *Runtime) delete(ctx context.Context, d *rmv1.DeleteRunner) error {
	if d.GetName() == "" {
		return fmt.Errorf("delete runner: the command has no runner name: %w", backend.ErrPermanent)
	}
	b, err := r.deleteLocation(d)
	if err != nil {
		return fmt.Errorf("delete runner %s: %w", d.GetName(), err)
	}
	_, err = callBackend(ctx, r, opDelete, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, b.Delete(ctx, d.GetName())
	})
	if err != nil {
		return fmt.Errorf("delete runner %s: %w", d.GetName(), err)
	}
	if d.GetOrganization() == "" || d.GetRegistrationGone() {
		// An orphan instance of no known group has no registration this
		// manager could find, and an ephemeral runner that completed its
		// job was unregistered by GitHub (the health checks remove a
		// registration that lingers anyway).
		return nil
	}
	scope := scopeOf(d.GetOrganization(), d.GetRepository())
	if err := r.deleteRegistration(ctx, scope, d.GetGithubRunnerId(), d.GetName()); err != nil {
		return fmt.Errorf("delete runner %s: %w", d.GetName(), err)
	}
	return nil
}
