package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/github"
)

// A command is a request, not an authority (docs/design.md §6b). The provisioner
// looks the group up by name in its own configuration and takes from there
// everything that decides what a runner is and where it runs: the instance
// specification (the Docker host, image, volumes; the cloud endpoint,
// project, region, IAM profile, service account, startup script), the
// organization, the repository, the labels and the runner group. A command
// that names a group it does not know, or says something else than its
// configuration, is refused before any GitHub or backend call.

// Refusal reasons, the "reason" label of
// runner_manager_provisioner_commands_refused_total (bounded).
const (
	refusedInvalidName  = "invalid_name"
	refusedUnknownGroup = "unknown_group"
	refusedBackendType  = "backend_type"
	refusedSpecHash     = "spec_hash_mismatch"
	refusedOrganization = "organization"
	refusedRepository   = "repository"
	refusedLabels       = "labels"
	refusedInstanceSpec = "instance_spec"
	refusedRunnerGroup  = "runner_group"
)

var refusalReasons = []string{
	refusedInvalidName, refusedUnknownGroup, refusedBackendType, refusedSpecHash, refusedOrganization,
	refusedRepository, refusedLabels, refusedInstanceSpec, refusedRunnerGroup, refusedLocation,
}

// refusal is the error of a command refused by the checks against the
// configuration. It wraps backend.ErrPermanent, or backend.ErrRetryable for
// a spec hash mismatch (the configurations are being rolled out). Its
// message holds no value of the command but the runner and group names,
// quoted and bounded, and never a secret.
type refusal struct {
	reason string
	msg    string
	class  error
}

func (e *refusal) Error() string { return "refused (" + e.reason + "): " + e.msg }
func (e *refusal) Unwrap() error { return e.class }

func refuse(reason, format string, args ...any) error {
	return &refusal{reason: reason, msg: fmt.Sprintf(format, args...), class: backend.ErrPermanent}
}

// groupConfig is what this provisioner's configuration says about one group
// of its backend type, computed once at New.
type groupConfig struct {
	group        *config.RunnerGroup
	instanceSpec []byte // InstanceSpecJSON
	canonical    []byte // CanonicalInstanceSpec of instanceSpec
	hash         string // config.SpecHash
}

// loadGroups returns the groups of cfg whose backend is typ, by name.
func loadGroups(cfg *config.Config, typ string) (map[string]*groupConfig, []*groupConfig, error) {
	byName := map[string]*groupConfig{}
	var ordered []*groupConfig
	for i := range cfg.RunnerGroups {
		g := &cfg.RunnerGroups[i]
		if g.Backend.Type != typ {
			continue
		}
		is, err := g.InstanceSpecJSON()
		if err != nil {
			return nil, nil, err
		}
		canon, err := config.CanonicalInstanceSpec(typ, is)
		if err != nil {
			return nil, nil, fmt.Errorf("runner group %s: %w", g.Name, err)
		}
		hash, err := config.SpecHash(g)
		if err != nil {
			return nil, nil, err
		}
		gc := &groupConfig{group: g, instanceSpec: is, canonical: canon, hash: hash}
		byName[g.Name] = gc
		ordered = append(ordered, gc)
	}
	return byName, ordered, nil
}

// groupOf returns the configuration of the group a command names, or a
// refusal: not configured, or configured on another backend type (claimed
// is the command's backend_type, "" when it has none).
func (r *Runtime) groupOf(name, claimed string) (*groupConfig, error) {
	if gc, ok := r.groupCfg[name]; ok {
		if claimed != "" && claimed != r.opts.Type {
			return nil, refuse(refusedBackendType, "the command is for backend type %.20q, this provisioner runs %s", claimed, r.opts.Type)
		}
		return gc, nil
	}
	if g := r.opts.Config.Group(name); g != nil {
		return nil, refuse(refusedBackendType, "runner group %s runs on %s in this provisioner's configuration, not on %s", g.Name, g.Backend.Type, r.opts.Type)
	}
	return nil, refuse(refusedUnknownGroup, "runner group %.80q is not in this provisioner's configuration", name)
}

// checkCreate checks a create command against the configuration and
// returns the configuration of its group. Every check is local: a refused
// command costs no GitHub and no backend call. The runner group id, when the
// command has one, is checked later (checkRunnerGroupID), against GitHub.
func (r *Runtime) checkCreate(c *rmv1.CreateRunner) (*groupConfig, error) {
	spec := c.GetSpec()
	if err := checkName(spec.GetName()); err != nil {
		return nil, err
	}
	gc, err := r.groupOf(spec.GetGroup(), spec.GetBackendType())
	if ref, ok := asRefusal(err); ok && ref.reason == refusedUnknownGroup && c.GetSpecHash() != "" {
		// The scheduler has a newer configuration (the group was just
		// added): wait for this provisioner's, as for a hash mismatch.
		ref.class = backend.ErrRetryable
	}
	if err != nil {
		return nil, err
	}
	g := gc.group
	// Before the fields: during a rolling change of the configuration the
	// fields differ too, and the command must wait, not fail.
	if h := c.GetSpecHash(); h != "" && h != gc.hash {
		return nil, &refusal{reason: refusedSpecHash, class: backend.ErrRetryable,
			msg: fmt.Sprintf("configuration differs from the scheduler's (runner group %s)", g.Name)}
	}
	switch {
	case spec.GetOrganization() != g.Organization:
		return nil, refuse(refusedOrganization, "the organization differs from the configuration of runner group %s", g.Name)
	case spec.GetRepository() != g.Repository:
		return nil, refuse(refusedRepository, "the repository differs from the configuration of runner group %s", g.Name)
	case !slices.Equal(spec.GetLabels(), g.Labels):
		return nil, refuse(refusedLabels, "the labels differ from the configuration of runner group %s", g.Name)
	}
	if is := spec.GetInstanceSpec(); len(is) > 0 {
		canon, err := config.CanonicalInstanceSpec(r.opts.Type, is)
		if err != nil || !bytes.Equal(canon, gc.canonical) {
			return nil, refuse(refusedInstanceSpec, "the instance specification differs from the configuration of runner group %s", g.Name)
		}
	}
	return gc, nil
}

// checkRunnerGroupID returns the GitHub runner group id the runner joins:
// the Default group for a repository-level runner, the group of the
// configured name in the configured organization otherwise (resolved at
// GitHub once, then cached). A command's non-zero runner_group_id must be
// that id (a cached id is looked up again once before refusing: the group
// may have been deleted and created again since).
func (r *Runtime) checkRunnerGroupID(ctx context.Context, g *config.RunnerGroup, claimed int64) (int64, error) {
	if g.Repository != "" {
		if claimed != 0 && claimed != defaultRepoRunnerGroupID {
			return 0, refuse(refusedRunnerGroup, "a repository-level runner of runner group %s joins the Default runner group, not the command's", g.Name)
		}
		return defaultRepoRunnerGroupID, nil
	}
	id, cached, err := r.runnerGroupID(ctx, g)
	if err != nil {
		return 0, err
	}
	if claimed != 0 && claimed != id && cached {
		r.forgetRunnerGroup(g)
		if id, _, err = r.runnerGroupID(ctx, g); err != nil {
			return 0, err
		}
	}
	if claimed != 0 && claimed != id {
		return 0, refuse(refusedRunnerGroup, "the runner group id is not that of runner group %s of the configuration", g.Name)
	}
	return id, nil
}

// runnerGroupID is the id of the organization's runner group of g's name,
// and whether it came from the cache (a group id never changes while the
// group exists).
func (r *Runtime) runnerGroupID(ctx context.Context, g *config.RunnerGroup) (int64, bool, error) {
	key := g.Organization + "/" + g.Name
	r.groupsMu.Lock()
	id, ok := r.groups[key]
	r.groupsMu.Unlock()
	if ok {
		return id, true, nil
	}
	group, err := callGitHub(ctx, r, "runner_group_by_name", func(ctx context.Context) (*github.RunnerGroup, error) {
		return r.opts.GitHub.GetRunnerGroupByName(ctx, g.Organization, g.Name)
	})
	if err != nil {
		return 0, false, fmt.Errorf("resolve runner group %s of %s: %w", g.Name, g.Organization, err)
	}
	r.groupsMu.Lock()
	r.groups[key] = group.ID
	r.groupsMu.Unlock()
	return group.ID, false, nil
}

// forgetRunnerGroup drops the cached id of g's runner group.
func (r *Runtime) forgetRunnerGroup(g *config.RunnerGroup) {
	r.groupsMu.Lock()
	defer r.groupsMu.Unlock()
	delete(r.groups, g.Organization+"/"+g.Name)
}

// listSpecs returns the instance specifications of the groups of this
// provisioner's type, one per distinct location, in configuration order;
// a single nil (the backend's default location) when there is none.
func (r *Runtime) listSpecs() [][]byte {
	var specs [][]byte
	for _, gc := range r.groupList {
		if !slices.ContainsFunc(specs, func(s []byte) bool { return bytes.Equal(s, gc.instanceSpec) }) {
			specs = append(specs, gc.instanceSpec)
		}
	}
	if len(specs) == 0 {
		return [][]byte{nil}
	}
	return specs
}

// asRefusal returns the refusal err holds, if any.
func asRefusal(err error) (*refusal, bool) {
	var ref *refusal
	ok := errors.As(err, &ref)
	return ref, ok
}

// checkName refuses a runner name that is not a valid one (checked before
// it reaches a Redis key, a backend or GitHub).
func checkName(name string) error {
	if backend.CheckRunnerName(name) != nil {
		return refuse(refusedInvalidName, "runner name %.80q is not valid (a-z, 0-9 and '-', starting with a letter, not ending with '-', at most %d characters)",
			name, config.MaxRunnerNameLen)
	}
	return nil
}
