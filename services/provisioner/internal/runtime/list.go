package runtime

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/backend"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/stream"
)

func (r *Runtime) handleList(ctx context.Context, m stream.Message, cmd *rmv1.ProvisionCommand, l *rmv1.ListInstances) error {
	res := &rmv1.ProvisionResult{CommandId: cmd.GetCommandId(), BackendType: r.opts.Type}
	work, cancel := context.WithTimeout(ctx, r.budget)
	defer cancel()
	inv, err := r.list(work, l)
	if err != nil {
		return r.settle(ctx, m, res, opList, err, nil)
	}
	res.Outcome = &rmv1.ProvisionResult_Inventory{Inventory: inv}
	if err := r.publish(ctx, res); err != nil {
		return err
	}
	r.log.Info("instances listed", "entry", m.ID, "command_id", res.CommandId,
		"instances", len(inv.Instances), "deliveries", m.Deliveries)
	r.metrics.command(opList, outcomeListed)
	return nil
}

// list lists the instances at the locations of the groups of this
// provisioner's configuration (listSpecs); the command's instance_specs are
// ignored. It is all or nothing: a partial inventory would make present
// instances look vanished. Two specifications on the same backend list it
// twice; the instances are merged by name.
//
// The command's locations (those runner records still reference that the
// configured groups no longer list) are listed too, each validated as a
// delete's location (locationSpec); one this provisioner may not act on is
// refused (counted, logged) and skipped, the rest of the listing goes on.
func (r *Runtime) list(ctx context.Context, l *rmv1.ListInstances) (*rmv1.Inventory, error) {
	takenAt := r.opts.Now()
	seen := map[string]bool{}
	inv := &rmv1.Inventory{TakenAt: timestamppb.New(takenAt)}
	specs := r.listSpecs()
	for _, loc := range l.GetLocations() {
		spec, err := r.locationSpec(nil, loc.GetValues())
		if err != nil {
			if ref, ok := asRefusal(err); ok {
				r.refused(ctx, "", ref.reason)
				r.log.Warn("listed location refused", "reason", ref.reason, "error", err)
			}
			continue
		}
		if !slices.ContainsFunc(specs, func(s []byte) bool { return string(s) == string(spec) }) {
			specs = append(specs, spec)
		}
	}
	for _, spec := range specs {
		b, err := r.backendFor(spec)
		if err != nil {
			return nil, fmt.Errorf("list instances: %w", err)
		}
		list, err := callBackend(ctx, r, opList, b.List)
		if err != nil {
			return nil, fmt.Errorf("list instances: %w", err)
		}
		for _, i := range list {
			if seen[i.Name] {
				continue
			}
			seen[i.Name] = true
			inv.Instances = append(inv.Instances, instanceProto(i))
		}
	}
	slices.SortFunc(inv.Instances, func(a, b *rmv1.Instance) int { return strings.Compare(a.Name, b.Name) })
	return inv, nil
}

func instanceProto(i backend.Instance) *rmv1.Instance {
	p := &rmv1.Instance{Name: i.Name, InstanceId: i.ID, Group: i.Group, State: i.State}
	if !i.CreatedAt.IsZero() {
		p.CreatedAt = timestamppb.New(i.CreatedAt)
	}
	return p
}
