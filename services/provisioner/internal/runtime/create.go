package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/runner-manager/runner-manager/libs/backend"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// stateNeverStarted is the state of an instance created and never started
// (Docker's "created"; the cloud backends start what they create).
const stateNeverStarted = "created"

// defaultRepoRunnerGroupID is the Default runner group, the only one a
// repository-level runner can join.
const defaultRepoRunnerGroupID = 1

// createState records what one handling of a create made, so that giving up
// removes exactly that.
type createState struct {
	scope      github.Scope
	name       string
	registered int64 // runner id of the registration this handling made
	backend    backend.Backend
	triedBoot  bool // Backend.Create was called
}

func (r *Runtime) handleCreate(ctx context.Context, m stream.Message, cmd *rmv1.ProvisionCommand, c *rmv1.CreateRunner) error {
	spec := c.GetSpec()
	res := &rmv1.ProvisionResult{
		CommandId:   cmd.GetCommandId(),
		RunnerName:  spec.GetName(),
		Group:       spec.GetGroup(),
		BackendType: r.opts.Type,
		Attempt:     c.GetAttempt(),
	}
	ctx = withRunner(ctx, res.GetRunnerName(), res.GetGroup())
	// Checked against the configuration before anything else: a refused
	// command makes no Redis, GitHub or backend call.
	gc, err := r.checkCreate(c)
	if err != nil {
		return r.settle(ctx, m, res, opCreate, fmt.Errorf("create runner %.80q: %w", spec.GetName(), err), nil)
	}
	unlock := r.names.lock(res.GetRunnerName())
	defer unlock()
	// A create delivered after the runner's delete (a crashed replica's
	// command taken over late, when the job was already served): starting
	// it would make an instance nobody wants.
	n, err := r.opts.Redis.Exists(ctx, r.opts.Keys.Tombstone(spec.GetName())).Result()
	if err != nil {
		return fmt.Errorf("create runner %s: check deleted: %w", spec.GetName(), err)
	}
	if n > 0 {
		r.log.Info("create skipped: the runner was deleted already", "entry", m.ID, "command_id", res.CommandId,
			"runner", res.RunnerName, "group", res.Group, "deliveries", m.Deliveries)
		r.metrics.command(opCreate, outcomeSkipped)
		return nil
	}
	st := &createState{scope: scopeOf(gc.group.Organization, gc.group.Repository), name: spec.GetName()}
	work, cancel := context.WithTimeout(ctx, r.budget)
	defer cancel()
	created, err := r.create(work, spec, gc, st)
	if err != nil {
		return r.settle(ctx, m, res, opCreate, err, func(ctx context.Context) { r.undoCreate(ctx, st) })
	}
	res.Outcome = &rmv1.ProvisionResult_Created{Created: created}
	if err := r.publish(ctx, res); err != nil {
		// The instance exists; the next delivery finds it and publishes again.
		return err
	}
	r.log.Info("runner created", "entry", m.ID, "command_id", res.CommandId, "runner", res.RunnerName,
		"group", res.Group, "instance_id", created.InstanceId, "github_runner_id", created.GithubRunnerId,
		"attempt", res.Attempt, "deliveries", m.Deliveries)
	r.metrics.command(opCreate, outcomeCreated)
	return nil
}

// create registers the runner by JIT and starts its instance. A name that is
// registered already (a command delivered again after a crash) either has
// its instance, which is reused, or is a stale registration, which is
// removed before registering again: there is never a second registration
// nor a second instance. What the runner is and where it runs come from gc,
// the group in this provisioner's configuration (checkCreate).
func (r *Runtime) create(ctx context.Context, spec *rmv1.RunnerSpec, gc *groupConfig, st *createState) (*rmv1.Created, error) {
	g := gc.group
	groupID, err := r.checkRunnerGroupID(ctx, g, spec.GetRunnerGroupId())
	if err != nil {
		return nil, fmt.Errorf("create runner %s: %w", spec.GetName(), err)
	}
	b, err := r.backendFor(gc.instanceSpec)
	if err != nil {
		return nil, fmt.Errorf("create runner %s: %w", spec.GetName(), err)
	}
	st.backend = b
	// Before registering: without a verified runner package there is
	// nothing to start, and nothing to undo.
	pkg, err := r.runnerPackage(ctx, g, st.scope)
	if err != nil {
		return nil, fmt.Errorf("create runner %s: %w", spec.GetName(), err)
	}
	req := github.JITRequest{Name: spec.GetName(), RunnerGroupID: groupID, Labels: slices.Clone(g.Labels)}
	jit, err := r.generateJIT(ctx, st.scope, req)
	if errors.Is(err, github.ErrConflict) {
		inst, found, lerr := r.findInstance(ctx, b, spec.GetName())
		if lerr != nil {
			return nil, fmt.Errorf("create runner %s: find the instance of a registered runner: %w", spec.GetName(), lerr)
		}
		if found && inst.State == stateNeverStarted {
			// Created by an earlier delivery that died before starting it:
			// start over rather than reuse an instance nothing will start.
			r.log.Info("instance created but never started: recreating it", "runner", spec.GetName(), "instance_id", inst.ID)
			_, err := callBackend(ctx, r, opDelete, func(ctx context.Context) (struct{}, error) {
				return struct{}{}, b.Delete(ctx, spec.GetName())
			})
			if err != nil {
				return nil, fmt.Errorf("create runner %s: delete its never-started instance: %w", spec.GetName(), err)
			}
			found = false
		}
		if found {
			// Registered and started by an earlier delivery that did not
			// get to publish its result.
			id, err := r.runnerIDByName(ctx, st.scope, spec.GetName())
			if err != nil && !errors.Is(err, github.ErrNotFound) {
				return nil, fmt.Errorf("create runner %s: look up its registration: %w", spec.GetName(), err)
			}
			r.log.Info("runner already registered and started: reused", "runner", spec.GetName(), "instance_id", inst.ID)
			return &rmv1.Created{InstanceId: inst.ID, GithubRunnerId: id, Location: r.locationOf(gc, inst), SpecHash: gc.hash}, nil
		}
		// Registered by an earlier delivery that never started the
		// instance: that JIT configuration is lost, remove it and register anew.
		r.log.Info("stale registration without an instance: registering again", "runner", spec.GetName())
		if err := r.deleteRegistration(ctx, st.scope, 0, spec.GetName()); err != nil {
			return nil, fmt.Errorf("create runner %s: remove its stale registration: %w", spec.GetName(), err)
		}
		jit, err = r.generateJIT(ctx, st.scope, req)
	}
	if err != nil {
		if !errors.Is(err, github.ErrConflict) && classify(err) == rmv1.FailureClass_FAILURE_CLASS_PERMANENT {
			// The cached group id may be of a group deleted since.
			r.forgetRunnerGroup(g)
		}
		return nil, fmt.Errorf("create runner %s: %w", spec.GetName(), err)
	}
	st.registered = jit.RunnerID
	st.triedBoot = true
	inst, err := callBackend(ctx, r, opCreate, func(ctx context.Context) (backend.Instance, error) {
		return b.Create(ctx, backend.RunnerSpec{
			Name:         spec.GetName(),
			Group:        g.Name,
			Labels:       slices.Clone(g.Labels),
			JITConfig:    jit.Encoded,
			InstanceSpec: gc.instanceSpec,
			Runner:       pkg,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("create runner %s: %w", spec.GetName(), err)
	}
	return &rmv1.Created{InstanceId: inst.ID, GithubRunnerId: jit.RunnerID, Location: r.locationOf(gc, inst), SpecHash: gc.hash}, nil
}

func (r *Runtime) generateJIT(ctx context.Context, scope github.Scope, req github.JITRequest) (*github.JITConfig, error) {
	return callGitHub(ctx, r, "generate_jitconfig", func(ctx context.Context) (*github.JITConfig, error) {
		return r.opts.GitHub.GenerateJITConfig(ctx, scope, req)
	})
}

// runnerIDByName returns the id of the runner registered under name, or
// github.ErrNotFound.
func (r *Runtime) runnerIDByName(ctx context.Context, scope github.Scope, name string) (int64, error) {
	runner, err := callGitHub(ctx, r, "runner_by_name", func(ctx context.Context) (*github.Runner, error) {
		return r.opts.GitHub.GetRunnerByName(ctx, scope, name)
	})
	if err != nil {
		return 0, err
	}
	return runner.ID, nil
}

// undoCreate removes, on a best-effort basis, what a create that is given up
// made: its instance (a failed start may leave one) and its registration.
// What it cannot remove, the health checks do (orphans, stale registrations).
func (r *Runtime) undoCreate(ctx context.Context, st *createState) {
	ctx = context.WithoutCancel(ctx)
	if st.triedBoot && st.backend != nil {
		_, err := callBackend(ctx, r, opDelete, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, st.backend.Delete(ctx, st.name)
		})
		if err != nil {
			r.log.Warn("clean up after a failed create: delete the instance", "runner", st.name, "error", err.Error())
		}
	}
	if st.registered != 0 {
		if err := r.deleteRegistration(ctx, st.scope, st.registered, st.name); err != nil {
			r.log.Warn("clean up after a failed create: remove the registration", "runner", st.name, "error", err.Error())
		}
	}
}

// findInstance looks the runner's instance up in the backend's listing.
func (r *Runtime) findInstance(ctx context.Context, b backend.Backend, name string) (backend.Instance, bool, error) {
	list, err := callBackend(ctx, r, opList, b.List)
	if err != nil {
		return backend.Instance{}, false, err
	}
	for _, inst := range list {
		if inst.Name == name {
			return inst, true, nil
		}
	}
	return backend.Instance{}, false, nil
}

// deleteRegistration removes the runner's registration at GitHub, by id
// when known, by name otherwise; not registered is done.
func (r *Runtime) deleteRegistration(ctx context.Context, scope github.Scope, id int64, name string) error {
	if id == 0 {
		var err error
		id, err = r.runnerIDByName(ctx, scope, name)
		if errors.Is(err, github.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up runner %s in %s: %w", name, scope, err)
		}
	}
	_, err := callGitHub(ctx, r, "delete_runner", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, r.opts.GitHub.DeleteRunner(ctx, scope, id)
	})
	if err != nil && !errors.Is(err, github.ErrNotFound) {
		return fmt.Errorf("remove runner %s (id %d) from %s: %w", name, id, scope, err)
	}
	return nil
}
