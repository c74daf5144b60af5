package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A valid configuration may still deserve a word: each group that lets
// public repositories (so forks' pull requests) use it, and each choice that
// loosens a runner's confinement.
func TestWarnings(t *testing.T) {
	t.Parallel()
	doc := `
runner_groups:
  - name: open
    organization: o
    max_runners: 1
    labels: [l]
    backend: {type: docker}
  - name: closed
    organization: o
    max_runners: 1
    labels: [l]
    repository_access: {allows_public_repositories: false}
    backend: {type: docker}
  - name: hostnet
    organization: o
    max_runners: 1
    labels: [l]
    repository_access: {allows_public_repositories: false}
    backend: {type: docker, docker: {network: host}}
  - name: vm
    organization: o
    max_runners: 1
    labels: [l]
    repository_access: {allows_public_repositories: false}
    backend:
      type: gcp
      gcp:
        project: p
        zones: [z]
        machine_type: m
        image: i
        scopes: [https://www.googleapis.com/auth/cloud-platform]
        bootstrap: {block_metadata_server: false}
`
	cfg, err := Parse([]byte(doc), validSecrets())
	require.NoError(t, err)
	var got []string
	for _, w := range cfg.Warnings() {
		got = append(got, w.String())
	}
	all := strings.Join(got, "\n")
	require.Len(t, got, 4, all)
	require.Contains(t, got[0], `runner_groups[0]: group "open" allows public repositories`)
	require.Contains(t, got[0], "pull requests from forks")
	require.Contains(t, got[1], `runner_groups[2].backend.docker.network: group "hostnet"`)
	require.Contains(t, all, `runner_groups[3].backend.gcp.bootstrap.block_metadata_server: group "vm"`)
	require.Contains(t, all, `runner_groups[3].backend.gcp.scopes: group "vm"`)
	require.NotContains(t, all, `"closed"`)
}
