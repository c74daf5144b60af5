// Package command encodes the provision commands the scheduler emits (the
// state.Commands of the scheduler), from the configuration of each group.
package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// GroupIDs tells the GitHub runner group id of a group, 0 when unknown
// (state.Store implements it).
type GroupIDs interface {
	GitHubGroupID(ctx context.Context, group string) (int64, error)
}

// Builder implements state.Commands from the configuration.
type Builder struct {
	cfg *config.Config
	ids GroupIDs
	now func() time.Time
}

var _ state.Commands = (*Builder)(nil)

// New returns a Builder for cfg; ids may be nil (runner group ids then 0:
// the provisioner resolves the group by name).
func New(cfg *config.Config, ids GroupIDs) *Builder {
	return &Builder{cfg: cfg, ids: ids, now: time.Now}
}

// SetGroupIDs sets where runner group ids come from (the Store, once built).
func (b *Builder) SetGroupIDs(ids GroupIDs) { b.ids = ids }

// NewID returns a random command id.
func NewID() string {
	var buf [16]byte
	_, _ = rand.Read(buf[:])
	return hex.EncodeToString(buf[:])
}

// spec builds the RunnerSpec of a runner called name of group g, and the
// group's config.SpecHash. The instance specification is not sent: the
// provisioner takes it from its own configuration, and the hash tells it
// whether that configuration is the scheduler's.
func (b *Builder) spec(ctx context.Context, group, name string, forJob int64) (*rmv1.RunnerSpec, string, error) {
	g := b.cfg.Group(group)
	if g == nil {
		return nil, "", fmt.Errorf("group %s is not configured", group)
	}
	hash, err := config.SpecHash(g)
	if err != nil {
		return nil, "", err
	}
	var ghID int64
	if b.ids != nil {
		if ghID, err = b.ids.GitHubGroupID(ctx, group); err != nil {
			return nil, "", err
		}
	}
	return &rmv1.RunnerSpec{
		Name:          name,
		Group:         g.Name,
		BackendType:   g.Backend.Type,
		Labels:        append([]string(nil), g.Labels...),
		Organization:  g.Organization,
		Repository:    g.Repository,
		RunnerGroupId: ghID,
		JobId:         forJob,
	}, hash, nil
}

func (b *Builder) encode(ctx context.Context, c *rmv1.ProvisionCommand) (state.Command, error) {
	c.CommandId = NewID()
	c.IssuedAt = timestamppb.New(b.now())
	data, err := proto.Marshal(c)
	if err != nil {
		return state.Command{}, fmt.Errorf("encode command: %w", err)
	}
	return state.Command{ID: c.CommandId, Data: data, Traceparent: stream.Traceparent(ctx)}, nil
}

// Creates returns n runners of g with fresh names and their create commands.
func (b *Builder) Creates(ctx context.Context, g state.Group, forJob int64, n int) ([]state.Candidate, error) {
	out := make([]state.Candidate, 0, n)
	// One spec for every candidate: the group's GitHub id is read from Redis
	// once per decision, not once per candidate runner.
	base, hash, err := b.spec(ctx, g.Name, "", forJob)
	if err != nil {
		return nil, err
	}
	for range n {
		name := config.RunnerName(b.cfg.Name, g.Name, config.NewRunnerSuffix())
		spec := proto.Clone(base).(*rmv1.RunnerSpec)
		spec.Name = name
		cmd, err := b.encode(ctx, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{
			Create: &rmv1.CreateRunner{Spec: spec, Attempt: 1, SpecHash: hash},
		}})
		if err != nil {
			return nil, err
		}
		out = append(out, state.Candidate{Name: name, ForJob: forJob, Create: cmd})
	}
	return out, nil
}

// Retry returns the create command of r for attempt.
func (b *Builder) Retry(ctx context.Context, r state.Runner, attempt int) (state.Command, error) {
	spec, hash, err := b.spec(ctx, r.Group, r.Name, r.ForJob)
	if err != nil {
		return state.Command{}, err
	}
	return b.encode(ctx, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Create{
		Create: &rmv1.CreateRunner{Spec: spec, Attempt: int32(attempt), SpecHash: hash},
	}})
}

// Delete returns the delete command of r. Where the runner is registered
// and runs comes from its record (organization, repository, location,
// written at its creation), so that a runner is deleted where it was made
// whatever the configuration became: its group removed, or its zones or
// host changed. A record older than those fields falls back to the
// group's configuration. The instance specification is never sent.
func (b *Builder) Delete(ctx context.Context, r state.Runner, reason string) (state.Command, error) {
	d := &rmv1.DeleteRunner{
		Name:           r.Name,
		Group:          r.Group,
		BackendType:    r.Backend,
		InstanceId:     r.InstanceID,
		GithubRunnerId: r.GitHubRunnerID,
		Reason:         reason,
		Organization:   r.Organization,
		Repository:     r.Repository,
		Location:       r.Location,
		// The ephemeral runner's registration goes with its job.
		RegistrationGone: state.RegistrationGone(r, reason),
	}
	if g := b.cfg.Group(r.Group); g != nil {
		if d.Organization == "" {
			d.Organization, d.Repository = g.Organization, g.Repository
		}
		if d.BackendType == "" {
			d.BackendType = g.Backend.Type
		}
	}
	return b.encode(ctx, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Delete{Delete: d}})
}

// Update returns the UpdateRunner command of r for the job u started: the
// job's metadata and state busy, with where the runner is from its record
// (like Delete). None (a zero Command) for a backend that keeps the
// metadata in the runner's record (Docker).
func (b *Builder) Update(ctx context.Context, r state.Runner, u state.JobUpdate) (state.Command, error) {
	bt := r.Backend
	if g := b.cfg.Group(r.Group); bt == "" && g != nil {
		bt = g.Backend.Type
	}
	if backend.MetadataInRecord(bt) {
		return state.Command{}, nil
	}
	return b.encode(ctx, &rmv1.ProvisionCommand{Command: &rmv1.ProvisionCommand_Update{Update: &rmv1.UpdateRunner{
		Name:        r.Name,
		Group:       r.Group,
		BackendType: bt,
		InstanceId:  r.InstanceID,
		Location:    r.Location,
		JobId:       u.JobID,
		RunId:       u.RunID,
		Repository:  u.Repository,
		Workflow:    u.Workflow,
		State:       backend.StateBusy,
	}}})
}

// Group returns the state.Group of a configured group; ok false when g is
// not configured (then a zero MaxRunners: nothing is ever reserved).
func Group(cfg *config.Config, name string) (state.Group, bool) {
	g := cfg.Group(name)
	if g == nil {
		return state.Group{Name: name}, false
	}
	return state.Group{Name: g.Name, Backend: g.Backend.Type, MinRunners: g.MinRunners, MaxRunners: g.MaxRunners}, true
}
