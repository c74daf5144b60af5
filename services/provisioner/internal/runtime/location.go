package runtime

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
)

// A runner's location is where its instance is, reported in the Created
// result and kept by the scheduler with the runner's record, so that the
// runner can be deleted whatever the configuration becomes (its group
// removed, its zones or host changed). Keys by backend type:
//
//	docker: host (the Docker daemon address, "" for DOCKER_HOST)
//	aws:    region
//	gcp:    project, zone
//
// A location never holds an endpoint nor a credential: those are always
// this provisioner's own configuration.
const (
	locHost    = "host"
	locRegion  = "region"
	locProject = "project"
	locZone    = "zone"
)

// refusedLocation is the refusal reason of a delete or list whose location
// this provisioner may not act on.
const refusedLocation = "location"

// locationOf returns the location of an instance created from gc.
func (r *Runtime) locationOf(gc *groupConfig, inst backend.Instance) map[string]string {
	be := gc.group.Backend
	switch r.opts.Type {
	case config.BackendDocker:
		host := ""
		if be.Docker != nil {
			host = be.Docker.Host
		}
		return map[string]string{locHost: host}
	case config.BackendAWS:
		if be.AWS != nil {
			return map[string]string{locRegion: be.AWS.Region}
		}
	case config.BackendGCP:
		if be.GCP != nil {
			loc := map[string]string{locProject: be.GCP.Project}
			// The GCE instance id is zone/name.
			if zone, _, ok := strings.Cut(inst.ID, "/"); ok && slices.Contains(be.GCP.Zones, zone) {
				loc[locZone] = zone
			}
			return loc
		}
	}
	return nil
}

// locationSpec returns the instance specification that reaches the
// location loc: the specification of base (the runner's group when still
// configured, else a configured group at that location, else any
// configured group of this type) with the location's fields replaced. The
// location must be one this provisioner may act on:
//
//	docker: a host some configured docker group uses (or the default
//	        DOCKER_HOST, "", when a group uses it or none is configured);
//	aws:    any region, under the configured endpoint and credentials;
//	gcp:    a project some configured group uses, any zone of it, under
//	        the configured endpoint and credentials.
//
// A location with a key foreign to the backend type is refused.
func (r *Runtime) locationSpec(base *groupConfig, loc map[string]string) ([]byte, error) {
	allowed := map[string][]string{
		config.BackendDocker: {locHost},
		config.BackendAWS:    {locRegion},
		config.BackendGCP:    {locProject, locZone},
	}[r.opts.Type]
	for k := range loc {
		if !slices.Contains(allowed, k) {
			return nil, refuse(refusedLocation, "the location has a key %.20q foreign to backend type %s", k, r.opts.Type)
		}
	}
	if base == nil {
		base = r.groupAt(loc)
	}
	switch r.opts.Type {
	case config.BackendDocker:
		host := loc[locHost]
		if !r.dockerHostConfigured(host) {
			return nil, refuse(refusedLocation, "the Docker host is not one of this provisioner's configuration")
		}
		spec := config.DockerSpec{}
		if base != nil {
			if err := json.Unmarshal(base.instanceSpec, &spec); err != nil {
				return nil, err
			}
		}
		spec.Host = host
		return json.Marshal(spec)
	case config.BackendAWS:
		region := loc[locRegion]
		if base == nil {
			return nil, refuse(refusedLocation, "no aws runner group is configured")
		}
		if !validLocationValue(region) {
			return nil, refuse(refusedLocation, "the region is not valid")
		}
		var spec config.AWSSpec
		if err := json.Unmarshal(base.instanceSpec, &spec); err != nil {
			return nil, err
		}
		spec.Region = region
		return json.Marshal(spec)
	case config.BackendGCP:
		project, zone := loc[locProject], loc[locZone]
		if base == nil {
			return nil, refuse(refusedLocation, "no gcp runner group is configured")
		}
		if !validLocationValue(project) || !validLocationValue(zone) {
			return nil, refuse(refusedLocation, "the location needs a valid project and zone")
		}
		if !r.gcpProjectConfigured(project) {
			return nil, refuse(refusedLocation, "the project is not one of this provisioner's configuration")
		}
		var spec config.GCPSpec
		if err := json.Unmarshal(base.instanceSpec, &spec); err != nil {
			return nil, err
		}
		spec.Project, spec.Zones = project, []string{zone}
		return json.Marshal(spec)
	}
	return nil, refuse(refusedLocation, "backend type %s has no locations", r.opts.Type)
}

// groupAt returns a configured group of this type at loc, else the first
// configured group of this type, else nil.
func (r *Runtime) groupAt(loc map[string]string) *groupConfig {
	for _, gc := range r.groupList {
		if locationMatches(r.locationOf(gc, backend.Instance{}), loc) {
			return gc
		}
	}
	if len(r.groupList) > 0 {
		return r.groupList[0]
	}
	return nil
}

// locationMatches tells whether the group location g (no zone) covers loc.
func locationMatches(g, loc map[string]string) bool {
	for k, v := range g {
		if loc[k] != v {
			return false
		}
	}
	return true
}

// dockerHostConfigured tells whether some configured docker group uses
// host; "" (DOCKER_HOST) also when no docker group is configured (the
// provisioner's default location).
func (r *Runtime) dockerHostConfigured(host string) bool {
	if host == "" && len(r.groupList) == 0 {
		return true
	}
	for _, gc := range r.groupList {
		if d := gc.group.Backend.Docker; (d == nil && host == "") || (d != nil && d.Host == host) {
			return true
		}
	}
	return false
}

// gcpProjectConfigured tells whether some configured gcp group uses project.
func (r *Runtime) gcpProjectConfigured(project string) bool {
	for _, gc := range r.groupList {
		if g := gc.group.Backend.GCP; g != nil && g.Project == project {
			return true
		}
	}
	return false
}

// validLocationValue accepts a cloud region, project or zone name:
// lowercase letters, digits and '-', at most 63 characters.
func validLocationValue(v string) bool {
	if v == "" || len(v) > 63 {
		return false
	}
	for _, c := range v {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// organizationConfigured tells whether some configured group (of any
// backend type) registers runners in org.
func (r *Runtime) organizationConfigured(org string) bool {
	for i := range r.opts.Config.RunnerGroups {
		if r.opts.Config.RunnerGroups[i].Organization == org {
			return true
		}
	}
	return false
}

// locationKey is a stable key of a location, to merge equal ones.
func locationKey(loc map[string]string) string {
	keys := slices.Sorted(maps.Keys(loc))
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%q=%q;", k, loc[k])
	}
	return sb.String()
}

// deleteLocation resolves where the runner of a delete command is, and
// checks its organization and repository (see locate).
func (r *Runtime) deleteLocation(d *rmv1.DeleteRunner) (backend.Backend, error) {
	return r.locate(d.GetGroup(), d.GetBackendType(), d.GetOrganization(), d.GetRepository(), d.GetLocation())
}

// locate resolves where the runner of a delete or update command is (its
// group, backend type, and the location from its record), and checks the
// organization and repository when given.
//
// A configured group: its instance specification (connection settings,
// Docker host, endpoint), with the record's location when the command
// carries one (the group's spec may have changed since the runner was
// created: its instance is where it was made), validated by locationSpec.
// The organization and repository, when set, must be the group's.
//
// A group no longer configured (or never): the command's location is
// required and validated by locationSpec, and the organization must be one
// some configured group uses. The backends act only on an instance that
// carries this manager's ownership label and that exact runner name.
func (r *Runtime) locate(group, backendType, org, repo string, loc map[string]string) (backend.Backend, error) {
	gc, err := r.groupOf(group, backendType)
	var ref *refusal
	if err != nil {
		if ref, _ = asRefusal(err); ref == nil || ref.reason != refusedUnknownGroup || len(loc) == 0 {
			return nil, err
		}
		if backendType != "" && backendType != r.opts.Type {
			return nil, refuse(refusedBackendType, "the command is for backend type %.20q, this provisioner runs %s", backendType, r.opts.Type)
		}
		if org != "" && !r.organizationConfigured(org) {
			return nil, refuse(refusedOrganization, "the organization of removed runner group %.80q is not one of this provisioner's configuration", group)
		}
		spec, err := r.locationSpec(nil, loc)
		if err != nil {
			return nil, err
		}
		return r.backendFor(spec)
	}
	g := gc.group
	switch {
	case org != "" && org != g.Organization:
		return nil, refuse(refusedOrganization, "the organization differs from the configuration of runner group %s", g.Name)
	case repo != g.Repository && (org != "" || repo != ""):
		return nil, refuse(refusedRepository, "the repository differs from the configuration of runner group %s", g.Name)
	}
	if len(loc) == 0 || locationKey(loc) == locationKey(r.locationOf(gc, backend.Instance{})) {
		return r.backendFor(gc.instanceSpec)
	}
	spec, err := r.locationSpec(gc, loc)
	if err != nil {
		return nil, err
	}
	return r.backendFor(spec)
}
