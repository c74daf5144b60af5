package config

import (
	"fmt"
	"slices"
)

// Warnings lists what a valid configuration allows that loosens the
// confinement of runners (docs/security.md): every organization-level group
// that public repositories may use (pull requests from forks then run on its
// machines), and every group that shares the host's network, leaves the
// metadata server open, or gives its VMs the cloud-platform scope. Each
// Warning has the Path of the key; the messages never contain a secret.
// --check-config prints them, and the scheduler logs them at start.
func (c *Config) Warnings() []Problem {
	var ws []Problem
	add := func(path keyPath, g *RunnerGroup, format string, args ...any) {
		ws = append(ws, Problem{Path: path.String(), Message: fmt.Sprintf("group %q ", g.Name) + fmt.Sprintf(format, args...)})
	}
	for i := range c.RunnerGroups {
		g := &c.RunnerGroups[i]
		p := keyPath{"runner_groups", i}
		if g.Repository == "" && (g.RepositoryAccess.AllowsPublicRepositories == nil || *g.RepositoryAccess.AllowsPublicRepositories) {
			add(p, g, "allows public repositories: pull requests from forks of a public repository run on these machines, with whatever they can reach; set repository_access.allows_public_repositories: false unless that is intended")
		}
		switch b := g.Backend; {
		case b.Type == BackendDocker && b.Docker != nil && b.Docker.Network == "host":
			add(p.with("backend", "docker", "network"), g, "uses the host's network: its jobs reach every service on the host's loopback and the metadata address")
		case b.Type == BackendAWS && b.AWS != nil:
			vmWarnings(add, p.with("backend", "aws"), g, b.AWS.Bootstrap, nil)
		case b.Type == BackendGCP && b.GCP != nil:
			vmWarnings(add, p.with("backend", "gcp"), g, b.GCP.Bootstrap, b.GCP.Scopes)
		}
	}
	return ws
}

func vmWarnings(add func(keyPath, *RunnerGroup, string, ...any), p keyPath, g *RunnerGroup, b RunnerBootstrap, scopes []string) {
	if !b.BlocksMetadataServer() {
		add(p.with("bootstrap", "block_metadata_server"), g, "lets jobs reach the metadata server: the instance's credentials and the runner's JIT configuration")
	}
	if slices.Contains(scopes, "https://www.googleapis.com/auth/cloud-platform") || slices.Contains(scopes, "cloud-platform") {
		add(p.with("scopes"), g, "gives its service account the cloud-platform scope: its IAM roles alone then bound what a job can do in the project")
	}
}
