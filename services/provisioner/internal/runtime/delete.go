package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runner-manager/runner-manager/libs/backend"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
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
	busy, err := r.delete(work, d)
	if err != nil {
		return r.settle(ctx, m, res, opDelete, err, nil)
	}
	if busy {
		res.Outcome = &rmv1.ProvisionResult_Busy{Busy: &rmv1.RunnerBusy{}}
		if err := r.publish(ctx, res); err != nil {
			return err
		}
		r.log.Info("runner runs a job: GitHub refused to remove it, instance kept", "entry", m.ID,
			"command_id", res.CommandId, "runner", res.RunnerName, "group", res.Group, "reason", d.GetReason())
		r.metrics.command(opDelete, outcomeBusy)
		return nil
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

// Delete reasons after which the instance goes even when GitHub refuses to
// remove the registration of a runner that runs a job (the scheduler's
// state package names the reasons): time_to_live is a hard bound on a
// runner's life (a drained group's busy runners go then), and admin_force is
// an operator's explicit "kill its job".
const (
	reasonTimeToLive = "time_to_live"
	reasonAdminForce = "admin_force"
)

// forced tells whether a delete for reason goes on when the runner is busy.
func forced(reason string) bool { return reason == reasonTimeToLive || reason == reasonAdminForce }

// delete removes the runner's registration at GitHub, then its instance.
// Not found anywhere is done. The registration goes first: GitHub refuses
// to remove a runner that runs a job (and, once removed, gives it none), so
// a runner that took a job since the scheduler chose it is never killed:
// delete then leaves the instance alone and reports busy, unless the reason
// forces the delete. A registration known gone (the ephemeral runner
// finished its job) or unknowable (an orphan instance of no known group)
// leaves the instance only.
func (r *Runtime) delete(ctx context.Context, d *rmv1.DeleteRunner) (busy bool, err error) {
	if d.GetName() == "" {
		return false, fmt.Errorf("delete runner: the command has no runner name: %w", backend.ErrPermanent)
	}
	b, err := r.deleteLocation(d)
	if err != nil {
		return false, fmt.Errorf("delete runner %s: %w", d.GetName(), err)
	}
	if d.GetOrganization() != "" && !d.GetRegistrationGone() {
		scope := scopeOf(d.GetOrganization(), d.GetRepository())
		err := r.deleteRegistration(ctx, scope, d.GetGithubRunnerId(), d.GetName())
		switch {
		case errors.Is(err, github.ErrRunnerBusy) && forced(d.GetReason()):
			r.log.Warn("runner runs a job: deleting its instance anyway", "runner", d.GetName(),
				"group", d.GetGroup(), "reason", d.GetReason())
		case errors.Is(err, github.ErrRunnerBusy):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("delete runner %s: %w", d.GetName(), err)
		}
	}
	_, err = callBackend(ctx, r, opDelete, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, b.Delete(ctx, d.GetName())
	})
	if err != nil {
		return false, fmt.Errorf("delete runner %s: %w", d.GetName(), err)
	}
	return false, nil
}
