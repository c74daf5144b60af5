package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// group is a valid runner group; cases append to it or replace it.
const group = `runner_groups:
  - name: small
    organization: my-org
    max_runners: 2
    labels: [linux]
    backend:
      type: docker
`

func TestParseValidMinimal(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(group), validSecrets())
	require.NoError(t, err)
	require.Equal(t, DefaultName, cfg.Name)
	require.Equal(t, DefaultCallTimeout+ReclaimMargin, cfg.Streams.ReclaimMinIdle)
	require.Equal(t, DefaultReclaimMinIdle, cfg.Streams.ReclaimMinIdle)
	require.Equal(t, DefaultRecoveryInterval, cfg.Scheduler.RecoveryInterval)
	require.Equal(t, DefaultUsageTopRepositories, cfg.Scheduler.UsageTopRepositories)
	require.Equal(t, DefaultDockerImage, cfg.RunnerGroups[0].Backend.Docker.Image)
	require.Equal(t, DefaultDockerStopTimeout, cfg.RunnerGroups[0].Backend.Docker.StopTimeout)
	require.True(t, *cfg.RunnerGroups[0].RepositoryAccess.AllowsPublicRepositories)
	require.Equal(t, DefaultMaxBodyBytes, int(cfg.Ingress.MaxBodyBytes))
	require.Equal(t, DefaultConcurrency, cfg.Provisioner.Concurrency)
	require.Equal(t, DefaultTimeToLive, cfg.TimeToLive)
}

func TestReclaimMinIdleDerivedFromCallTimeout(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(group+"provisioner:\n  call_timeout: 10m\n"), validSecrets())
	require.NoError(t, err)
	require.Equal(t, "11m0s", cfg.Streams.ReclaimMinIdle.String())
}

func TestRedisURLFromEnvironmentOverridesFile(t *testing.T) {
	t.Parallel()
	s := validSecrets()
	s.RedisURL = "redis://:pw@redis.internal:6380/2"
	cfg, err := Parse([]byte(group+"redis:\n  url: redis://localhost:6379/0\n"), s)
	require.NoError(t, err)
	require.Equal(t, "redis://:pw@redis.internal:6380/2", cfg.Redis.URL)
}

func TestSentinelURLAccepted(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(group+"redis:\n  url: redis://s1:26379/0?master_name=mymaster&addr=s2:26379\n"), validSecrets())
	require.NoError(t, err)
}

func TestAppCredentialsAccepted(t *testing.T) {
	t.Parallel()
	s := Secrets{GitHubAppID: 1, GitHubAppInstallationID: 2, GitHubAppPrivateKey: Secret(testKeyPEM()), WebhookSecret: "w"}
	_, err := Parse([]byte(group), s)
	require.NoError(t, err)
}

// twoOrgs has runner groups in two organizations.
const twoOrgs = group + `  - name: other
    organization: other-org
    max_runners: 2
    labels: [linux]
    backend:
      type: docker
`

func TestAppWithoutInstallationIDAccepted(t *testing.T) {
	t.Parallel()
	s := Secrets{GitHubAppID: 1, GitHubAppPrivateKey: Secret(testKeyPEM()), WebhookSecret: "w"}
	_, err := Parse([]byte(twoOrgs), s)
	require.NoError(t, err, "the App id and key are enough: each organization's installation is looked up")
}

func TestWebhookHooks(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(twoOrgs+"github:\n  webhook_hooks:\n    - {organization: my-org, hook_id: 7}\n    - {organization: other-org, hook_id: 8}\n"), validSecrets())
	require.NoError(t, err)
	require.Equal(t, []WebhookHook{{"my-org", 7}, {"other-org", 8}}, cfg.GitHub.Hooks())

	cfg, err = Parse([]byte(group+"github:\n  webhook_hook_id: 3\n  webhook_organization: my-org\n"), validSecrets())
	require.NoError(t, err)
	require.Equal(t, []WebhookHook{{"my-org", 3}}, cfg.GitHub.Hooks(), "the single pair is one hook")
}

// TestProblems has one case per problem. The line expected is the one marked
// with the comment "#<" in the document (none: a problem of the environment).
func TestProblems(t *testing.T) {
	t.Parallel()
	noToken := func(s *Secrets) { s.GitHubToken = "" }
	cases := []struct {
		name    string
		doc     string
		secrets func(*Secrets)
		path    string
		msg     string
	}{
		{"syntax error", "name: a\n  bad: indentation #<\n", nil, "", "mapping values are not allowed"},
		{"second document", group + "---\nname: b #<\n", nil, "", "a second YAML document"},
		{"not a mapping", "- a #<\n- b\n", nil, "", "must be a mapping"},
		{"unknown top-level key", group + "nmae: x #<\n", nil, "nmae", "unknown key"},
		{"unknown nested key", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 1\n    labels: [l]\n    backend:\n      type: docker\n      docker:\n        imag: x #<\n", nil,
			"runner_groups[0].backend.docker.imag", "unknown key"},
		{"unknown key in a merged mapping", "runner_groups:\n  - &g\n    name: small\n    organization: o\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n  - <<: *g\n    name: big\n    colour: red #<\n", nil,
			"runner_groups[1].colour", "unknown key"},
		{"wrong type", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: many #<\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].max_runners", `"many" is not an integer`},
		{"list instead of a scalar", group + "name: [a, b] #<\n", nil, "name", "a list is not a string"},
		{"scalar instead of a list", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 1\n    labels: linux #<\n    backend: {type: docker}\n", nil,
			"runner_groups[0].labels", `"linux" is not a list`},
		{"duplicate key", group + "name: a\nname: b #<\n", nil, "name", `mapping key "name" already defined at line`},
		{"duplicate group names", group + "  - name: small #<\n    organization: o\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[1].name", `duplicate group name "small" (first at line 2)`},
		{"manager name not a DNS label", group + "name: My_Manager #<\n", nil, "name", "not a lowercase DNS label"},
		{"manager name ending with a dash", group + "name: rm- #<\n", nil, "name", "not a lowercase DNS label"},
		{"manager name starting with a digit", group + "name: 1rm #<\n", nil, "name", "does not start with a letter"},
		{"manager name too long", group + "name: " + strings.Repeat("a", 53) + " #<\n", nil, "name", "use at most 52"},
		{"group name not a DNS label", "runner_groups:\n  - name: Linux #<\n    organization: o\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].name", `"Linux" is not a lowercase DNS label`},
		{"group name missing", "runner_groups:\n  - organization: o #<\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].name", "required"},
		{"runner name too long", "runner_groups:\n  - name: " + strings.Repeat("g", 40) + " #<\n    organization: o\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].name", "would be 64 characters, more than 63: use a group name of at most 39 characters"},
		{"organization missing", "runner_groups:\n  - name: small #<\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].organization", "required"},
		{"organization not a login", "runner_groups:\n  - name: small\n    organization: my/org #<\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].organization", "not a GitHub organization"},
		{"selected repositories on a repository-level group", "runner_groups:\n  - name: small\n    organization: o\n    repository: app\n    repository_access:\n      selected_repositories: [app] #<\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].repository_access.selected_repositories", "not allowed on a repository-level group"},
		{"repository with its owner", "runner_groups:\n  - name: small\n    organization: o\n    repository: o/app #<\n    max_runners: 1\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].repository", "without the owner"},
		{"max_runners zero", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 0 #<\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].max_runners", "must be at least 1, got 0"},
		{"max_runners negative", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: -2 #<\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].max_runners", "must be at least 1, got -2"},
		{"min_runners above the default max_runners", "runner_groups:\n  - name: small #<\n    organization: o\n    min_runners: 21\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].max_runners", "20 (the default) is less than min_runners (21)"},
		{"no runner group", "name: rm #<\n", nil, "runner_groups", "at least one runner group is required"},
		{"empty runner_groups", "name: rm\nrunner_groups: [] #<\n", nil, "runner_groups", "at least one runner group is required"},
		{"empty workflow_name", "runner_groups:\n  - name: small\n    organization: o\n    workflow_name: \" \" #<\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].workflow_name", "blank workflow name"},
		{"max_runners below min_runners", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2 #<\n    min_runners: 3\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].max_runners", "2 is less than min_runners (3)"},
		{"min_runners negative", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    min_runners: -1 #<\n    labels: [l]\n    backend: {type: docker}\n", nil,
			"runner_groups[0].min_runners", "must not be negative, got -1"},
		{"labels empty", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels: [] #<\n    backend: {type: docker}\n", nil,
			"runner_groups[0].labels", "at least one label"},
		{"labels missing", "runner_groups:\n  - name: small #<\n    organization: o\n    max_runners: 2\n    backend: {type: docker}\n", nil,
			"runner_groups[0].labels", "at least one label"},
		{"empty label", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels:\n      - linux\n      - \"\" #<\n    backend: {type: docker}\n", nil,
			"runner_groups[0].labels[1]", "empty label"},
		{"backend type unknown", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels: [l]\n    backend:\n      type: kubernetes #<\n", nil,
			"runner_groups[0].backend.type", `unknown backend type "kubernetes"`},
		{"backend type missing", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels: [l]\n    backend: #<\n      docker: {}\n", nil,
			"runner_groups[0].backend.type", "required: one of docker, aws, gcp"},
		{"backend section missing", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels: [l]\n    backend: #<\n      type: aws\n", nil,
			"runner_groups[0].backend", "the aws section is required"},
		{"section of another type", "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels: [l]\n    backend:\n      type: docker\n      gcp: #<\n        project: p\n", nil,
			"runner_groups[0].backend.gcp", "a gcp section in a backend of type docker"},
		{"docker memory", dockerDoc("memory: lots #<"), nil, "runner_groups[0].backend.docker.memory", `"lots" is not a memory size`},
		{"docker cpus negative", dockerDoc("cpus: -1 #<"), nil, "runner_groups[0].backend.docker.cpus", "must not be negative"},
		{"docker volume", dockerDoc("volumes:\n          - /a:b #<"), nil, "runner_groups[0].backend.docker.volumes[0]", "not source:/target"},
		{"docker socket", dockerDoc("volumes:\n          - /var/run/docker.sock:/var/run/docker.sock #<"), nil, "runner_groups[0].backend.docker.volumes[0]", "mounts the Docker socket"},
		{"docker socket under /run", dockerDoc("volumes:\n          - /run/docker.sock:/sock:ro #<"), nil, "runner_groups[0].backend.docker.volumes[0]", "mounts the Docker socket"},
		{"directory of the docker socket", dockerDoc("volumes:\n          - /var/run:/host-run #<"), nil, "runner_groups[0].backend.docker.volumes[0]", "mounts the Docker socket"},
		{"docker socket elsewhere", dockerDoc("volumes:\n          - /home/u/.docker/run/docker.sock:/s #<"), nil, "runner_groups[0].backend.docker.volumes[0]", "mounts the Docker socket"},
		{"docker pids_limit", dockerDoc("pids_limit: -2 #<"), nil, "runner_groups[0].backend.docker.pids_limit", "must be -1 (no limit) or more"},
		{"docker cap_drop", dockerDoc("security:\n          cap_drop: [ALL, \"net raw\"] #<"), nil, "runner_groups[0].backend.docker.security.cap_drop[1]", "not a capability name"},
		{"docker stop_timeout zero", dockerDoc("stop_timeout: 0s #<"), nil, "runner_groups[0].backend.docker.stop_timeout", "must be a positive duration, got 0s"},
		{"aws region", awsDoc("ami: ami-1\n        instance_types: [t3.large]\n        subnets: [s]", "#<"), nil, "runner_groups[0].backend.aws.region", "required"},
		{"aws ami and launch template", awsDoc("region: r\n        ami: ami-1\n        launch_template: {id: lt-1} #<\n        instance_types: [t3.large]\n        subnets: [s]", ""), nil,
			"runner_groups[0].backend.aws.launch_template", "set ami or launch_template, not both"},
		{"aws neither ami nor launch template", awsDoc("region: r\n        instance_types: [t3.large]\n        subnets: [s]", "#<"), nil,
			"runner_groups[0].backend.aws.ami", "required: ami or launch_template"},
		{"aws launch template without id or name", awsDoc("region: r\n        launch_template: {version: $Latest} #<\n        instance_types: [t3.large]\n        subnets: [s]", ""), nil,
			"runner_groups[0].backend.aws.launch_template", "exactly one of id and name"},
		{"aws instance types empty", awsDoc("region: r\n        ami: ami-1\n        instance_types: [] #<\n        subnets: [s]", ""), nil,
			"runner_groups[0].backend.aws.instance_types", "at least one is required"},
		{"aws subnets missing", awsDoc("region: r\n        ami: ami-1\n        instance_types: [t3.large]", "#<"), nil,
			"runner_groups[0].backend.aws.subnets", "at least one is required"},
		{"aws root device name", awsDoc("region: r\n        ami: ami-1\n        instance_types: [t3.large]\n        subnets: [s]\n        root_device_name: xvda #<", ""), nil,
			"runner_groups[0].backend.aws.root_device_name", "not a device path"},
		{"aws runner sha256", awsDoc("region: r\n        ami: ami-1\n        instance_types: [t3.large]\n        subnets: [s]\n        bootstrap:\n          runner_sha256: abc #<", ""), nil,
			"runner_groups[0].backend.aws.bootstrap.runner_sha256", "not a SHA-256"},
		{"aws architecture", awsDoc("region: r\n        ami: ami-1\n        instance_types: [t4g.large]\n        subnets: [s]\n        architecture: aarch64 #<", ""), nil,
			"runner_groups[0].backend.aws.architecture", `"aarch64" is not an architecture: x64 or arm64`},
		{"gcp architecture", gcpDoc("project: p\n        zones: [z]\n        machine_type: t2a-standard-4\n        image: i\n        architecture: arm #<", ""), nil,
			"runner_groups[0].backend.gcp.architecture", `"arm" is not an architecture: x64 or arm64`},
		{"aws pinned version without checksum", awsDoc("region: r\n        ami: ami-1\n        instance_types: [t3.large]\n        subnets: [s]\n        bootstrap: #<\n          runner_version: 2.321.0", ""), nil,
			"runner_groups[0].backend.aws.bootstrap.runner_sha256", "required with a pinned runner_version"},
		{"gcp download url without version", gcpDoc("project: p\n        zones: [z]\n        machine_type: m\n        image: i\n        bootstrap:\n          runner_download_url: https://mirror.example/r.tar.gz #<", ""), nil,
			"runner_groups[0].backend.gcp.bootstrap.runner_download_url", "needs runner_version"},
		{"gcp project", gcpDoc("zones: [z]\n        machine_type: m\n        image: i", "#<"), nil, "runner_groups[0].backend.gcp.project", "required"},
		{"gcp zones empty", gcpDoc("project: p\n        zones: [] #<\n        machine_type: m\n        image: i", ""), nil, "runner_groups[0].backend.gcp.zones", "at least one is required"},
		{"gcp machine type", gcpDoc("project: p\n        zones: [z]\n        image: i", "#<"), nil, "runner_groups[0].backend.gcp.machine_type", "required"},
		{"gcp image missing", gcpDoc("project: p\n        zones: [z]\n        machine_type: m", "#<"), nil, "runner_groups[0].backend.gcp.image", "required: image, or image_family and image_project"},
		{"gcp image family without project", gcpDoc("project: p\n        zones: [z]\n        machine_type: m\n        image_family: f", "#<"), nil,
			"runner_groups[0].backend.gcp.image_project", "required with image_family"},
		{"gcp image and family", gcpDoc("project: p\n        zones: [z]\n        machine_type: m\n        image: i #<\n        image_family: f\n        image_project: ip", ""), nil,
			"runner_groups[0].backend.gcp.image", "not both"},
		{"gcp operation timeout negative", gcpDoc("project: p\n        zones: [z]\n        machine_type: m\n        image: i\n        operation_timeout: -5s #<", ""), nil,
			"runner_groups[0].backend.gcp.operation_timeout", "must be a positive duration, got -5s"},
		{"duration negative", group + "time_to_start: -1m #<\n", nil, "time_to_start", "must be a positive duration, got -1m"},
		{"duration explicitly zero", group + "health_check_interval: 0s #<\n", nil, "health_check_interval", "must be a positive duration, got 0s"},
		{"nested duration zero", group + "scheduler:\n  lease_ttl: 0s #<\n", nil, "scheduler.lease_ttl", "must be a positive duration"},
		{"duration without unit", group + "time_to_live: 12 #<\n", nil, "time_to_live", `"12" is not a duration with a unit`},
		{"no GitHub credentials", group, noToken, "RM_GITHUB_*", "no GitHub credentials"},
		{"partial GitHub App", group, func(s *Secrets) { s.GitHubToken = ""; s.GitHubAppID = 12 }, "RM_GITHUB_APP_*",
			"incomplete GitHub App credentials: missing or not positive: RM_GITHUB_APP_PRIVATE_KEY"},
		{"GitHub App installation without id", group, func(s *Secrets) { s.GitHubToken = ""; s.GitHubAppInstallationID = 12 }, "RM_GITHUB_APP_*",
			"missing or not positive: RM_GITHUB_APP_ID, RM_GITHUB_APP_PRIVATE_KEY"},
		{"one installation for two organizations", twoOrgs, func(s *Secrets) {
			s.GitHubAppID, s.GitHubAppInstallationID, s.GitHubAppPrivateKey = 1, 2, Secret(testKeyPEM())
		}, "RM_GITHUB_APP_INSTALLATION_ID", "one installation cannot serve the groups' 2 accounts (my-org, other-org): leave it unset"},
		{"webhook hook without id", group + "github:\n  webhook_hooks:\n    - organization: my-org #<\n", nil, "github.webhook_hooks[0].hook_id", "must be at least 1, got 0"},
		{"webhook hook without organization", group + "github:\n  webhook_hooks:\n    - hook_id: 4 #<\n", nil, "github.webhook_hooks[0].organization", "required"},
		{"webhook hook twice", group + "github:\n  webhook_hook_id: 4\n  webhook_organization: my-org\n  webhook_hooks:\n    - {organization: My-Org, hook_id: 4} #<\n", nil,
			"github.webhook_hooks[0]", "hook 4 of My-Org is listed twice"},
		{"GitHub App key not PEM", group, func(s *Secrets) {
			s.GitHubAppID, s.GitHubAppInstallationID, s.GitHubAppPrivateKey = 1, 2, "not a key"
		}, "RM_GITHUB_APP_PRIVATE_KEY", "not a PEM-encoded RSA private key"},
		{"no webhook secret", group, func(s *Secrets) { s.WebhookSecret = "" }, "RM_GITHUB_WEBHOOK_SECRET", "required"},
		{"webhook secret with a newline", group, func(s *Secrets) { s.WebhookSecret = "abc\n" }, "RM_GITHUB_WEBHOOK_SECRET", "trailing white space"},
		{"base_url relative", group + "github:\n  base_url: api.github.com #<\n", nil, "github.base_url", "not an absolute http(s) URL"},
		{"base_url not http", group + "github:\n  base_url: ftp://github.example.com #<\n", nil, "github.base_url", "not an absolute http(s) URL"},
		{"webhook hook without organization", group + "github: #<\n  webhook_hook_id: 42\n", nil, "github.webhook_organization", "required with github.webhook_hook_id"},
		{"redis url", group + "redis:\n  url: http://localhost:6379 #<\n", nil, "redis.url", "not a valid Redis URL"},
		{"redis url from the environment", group, func(s *Secrets) { s.RedisURL = "redis://:pw@host:port/0" }, "RM_REDIS_URL", "not a valid Redis URL"},
		{"sentinel master without addresses", group + "redis: #<\n  sentinel_master: mymaster\n", nil, "redis.sentinel_addrs", "required with redis.sentinel_master"},
		{"reclaim not above call timeout", group + "streams:\n  reclaim_min_idle: 5m #<\n", nil, "streams.reclaim_min_idle",
			"5m0s is not longer than provisioner.call_timeout (5m0s)"},
		{"reclaim below a longer call timeout", group + "streams:\n  reclaim_min_idle: 6m #<\nprovisioner:\n  call_timeout: 10m\n", nil, "streams.reclaim_min_idle",
			"use at least 11m0s"},
		{"recovery interval too short", group + "scheduler:\n  recovery_interval: 5s #<\n", nil, "scheduler.recovery_interval",
			"5s is shorter than 10s"},
		{"usage top repositories too many", group + "scheduler:\n  usage_top_repositories: 201 #<\n", nil, "scheduler.usage_top_repositories",
			"201 is not between 1 and 200"},
		{"max_body_bytes zero", group + "ingress:\n  max_body_bytes: 0 #<\n", nil, "ingress.max_body_bytes", "must be at least 1, got 0"},
		{"max_body_bytes negative", group + "ingress:\n  max_body_bytes: -5 #<\n", nil, "ingress.max_body_bytes", "must be at least 1, got -5"},
		{"concurrency zero", group + "provisioner:\n  concurrency: 0 #<\n", nil, "provisioner.concurrency", "must be at least 1, got 0"},
		{"stream max_len zero", group + "streams:\n  max_len: 0 #<\n", nil, "streams.max_len", "must be at least 1"},
		{"listen address", group + "ingress:\n  listen: \"8080\" #<\n", nil, "ingress.listen", "not a listen address"},
		{"metrics listen address", group + "scheduler:\n  metrics_listen: \"9090\" #<\n", nil, "scheduler.metrics_listen", "not a listen address"},
		{"metrics listen on the main port", group + "provisioner:\n  listen: \":8082\"\n  metrics_listen: \"127.0.0.1:8082\" #<\n", nil, "provisioner.metrics_listen", "needs its own port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := validSecrets()
			if tc.secrets != nil {
				tc.secrets(&s)
			}
			_, err := Parse([]byte(tc.doc), s)
			var ps Problems
			require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
			require.Len(t, ps, 1, "want exactly one problem, got:\n%v", err)
			require.Equal(t, markedLine(t, tc.doc), ps[0].Line, "line of %v", ps[0])
			require.Equal(t, tc.path, ps[0].Path)
			require.Contains(t, ps[0].Message, tc.msg)
		})
	}
}

func dockerDoc(field string) string {
	return "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels: [l]\n    backend:\n      type: docker\n      docker:\n        " + field + "\n"
}

// awsDoc is a group of type aws with body under the aws key; marker goes on
// the aws key's line (for problems of absent keys).
func awsDoc(body, marker string) string {
	return "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels: [l]\n    backend:\n      type: aws\n      aws: " + marker + "\n        " + body + "\n"
}

func gcpDoc(body, marker string) string {
	return "runner_groups:\n  - name: small\n    organization: o\n    max_runners: 2\n    labels: [l]\n    backend:\n      type: gcp\n      gcp: " + marker + "\n        " + body + "\n"
}

func TestManyProblemsAtOnce(t *testing.T) {
	t.Parallel()
	doc := `name: Bad_Name
github:
  base_url: not-a-url
  colour: blue
runner_groups:
  - name: small
    organization: o
    max_runners: 0
    labels: []
    backend:
      type: docker
      docker:
        memory: lots
  - name: small
    max_runners: 3
    min_runners: 4
    labels: [l]
    backend:
      type: aws
time_to_start: 0s
ingress:
  max_body_bytes: -1
provisioner:
  concurrency: 0
`
	s := validSecrets()
	s.WebhookSecret = ""
	_, err := Parse([]byte(doc), s)
	var ps Problems
	require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
	type lp struct {
		line int
		path string
	}
	var got []lp
	for _, p := range ps {
		got = append(got, lp{p.Line, p.Path})
	}
	want := []lp{
		{1, "name"},
		{3, "github.base_url"},
		{4, "github.colour"},
		{8, "runner_groups[0].max_runners"},
		{9, "runner_groups[0].labels"},
		{13, "runner_groups[0].backend.docker.memory"},
		{14, "runner_groups[1].name"},         // duplicate
		{14, "runner_groups[1].organization"}, // absent: the group's line
		{15, "runner_groups[1].max_runners"},  // below min_runners
		{18, "runner_groups[1].backend"},      // no aws section
		{20, "time_to_start"},
		{22, "ingress.max_body_bytes"},
		{24, "provisioner.concurrency"},
		{0, "RM_GITHUB_WEBHOOK_SECRET"},
	}
	require.Equal(t, want, got, "problems:\n%v", err)
	// One line per problem after the header.
	require.Len(t, strings.Split(err.Error(), "\n"), len(want)+1)
}

func TestMaxRunnersDefault(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte("runner_groups:\n  - name: small\n    organization: o\n    labels: [l]\n    backend: {type: docker}\n"), validSecrets())
	require.NoError(t, err)
	require.Equal(t, DefaultMaxRunners, cfg.RunnerGroups[0].MaxRunners)
	require.Equal(t, 20, cfg.RunnerGroups[0].MaxRunners)
	require.Equal(t, 0, cfg.RunnerGroups[0].MinRunners)
	require.False(t, cfg.RunnerGroups[0].SpillOver)
	require.Empty(t, cfg.RunnerGroups[0].WorkflowName)
}

func TestEmptyFileNeedsARunnerGroup(t *testing.T) {
	t.Parallel()
	_, err := Parse(nil, validSecrets())
	var ps Problems
	require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
	require.Len(t, ps, 1)
	require.Equal(t, "runner_groups", ps[0].Path)
	require.Equal(t, 1, ps[0].Line)
	require.Contains(t, ps[0].Message, "at least one runner group is required")
}

func TestParseMemory(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int64
		err  bool
	}{
		{"", 0, false},
		{"1048576", 1 << 20, false},
		{"512m", 512 << 20, false},
		{"512M", 512 << 20, false},
		{"4g", 4 << 30, false},
		{"4GiB", 4 << 30, false},
		{"4gb", 4 << 30, false},
		{"1.5g", 3 << 29, false},
		{"100k", 100 << 10, false},
		{"2t", 2 << 40, false},
		{"10b", 10, false},
		{"lots", 0, true},
		{"-1g", 0, true},
		{"4x", 0, true},
		{"99999999p", 0, true},
	}
	for _, tc := range cases {
		got, err := ParseMemory(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}
