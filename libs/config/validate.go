// The rules of a validation: each section's checks, on the decoded
// configuration, reported through the validator (problems.go) at the
// lines the tree walk finds (tree.go).

package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"
)

// Backend types.
const (
	BackendDocker = "docker"
	BackendAWS    = "aws"
	BackendGCP    = "gcp"
)

// BackendTypes lists every backend type, in the order of the documentation.
var BackendTypes = []string{BackendDocker, BackendAWS, BackendGCP}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// IsDNSLabel tells whether s is a lowercase RFC 1123 DNS label: 1 to 63
// characters a-z, 0-9 and '-', starting and ending with a letter or digit.
func IsDNSLabel(s string) bool { return len(s) <= 63 && dnsLabel.MatchString(s) }

// positive reports a value below 1. Defaults replace zero values, so the
// value set in the file is read from the tree: an explicit 0 would otherwise
// silently become the default.
func (v *validator) positive(path keyPath, value int64) {
	if n, _, ok := v.find(path); ok && n.Kind == yaml.ScalarNode {
		if explicit, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
			value = explicit
		}
	}
	if value < 1 {
		v.at(path, "must be at least 1, got %d", value)
	}
}

// nonNegative reports a negative numeric value.
func (v *validator) nonNegative(path keyPath, value int64) {
	if value < 0 {
		v.at(path, "must not be negative, got %d", value)
	}
}

func (v *validator) required(path keyPath, value string) bool {
	if strings.TrimSpace(value) == "" {
		v.at(path, "required")
		return false
	}
	return true
}

// validate collects every problem at once: decoded earlier (decoded) and
// found now. root is the document's top mapping, used to find the line of
// each key. It returns nil or a sorted Problems.
func (c *Config) validate(root *yaml.Node, decoded Problems) error {
	v := &validator{root: root, linePath: make(map[int]string)}
	if root != nil && root.Kind == yaml.MappingNode {
		v.walk(root, reflect.TypeFor[Config](), nil)
	}
	c.validateGlobal(v)
	c.validateSecrets(v)
	c.validateRedis(v)
	c.validateGroups(v)
	// A value the decoder could not read is reported once, by the decoder:
	// the checks above saw a zero value there.
	bad := make(map[string]bool)
	ps := make(Problems, 0, len(decoded)+len(v.ps))
	for _, p := range decoded {
		p = v.decoderProblem(p)
		bad[p.Path] = true
		ps = append(ps, p)
	}
	for _, p := range v.ps {
		if p.Path == "" || !bad[p.Path] {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	ps.sort()
	return ps
}

func (c *Config) validateGlobal(v *validator) {
	switch {
	case !IsDNSLabel(c.Name):
		v.at(keyPath{"name"}, "%q is not a lowercase DNS label (a-z, 0-9, '-', not at either end)", c.Name)
	case c.Name[0] < 'a' || c.Name[0] > 'z':
		v.at(keyPath{"name"}, "%q does not start with a letter: runner names begin with it, and instance names must start with a letter", c.Name)
	case len(c.Name) > maxManagerNameLen:
		v.at(keyPath{"name"}, "%q is %d characters: runner names %s would exceed %d characters; use at most %d",
			c.Name, len(c.Name), RunnerName(c.Name, "<group>", strings.Repeat("x", RunnerSuffixLen)), MaxRunnerNameLen, maxManagerNameLen)
	}

	if u, err := url.Parse(c.GitHub.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		v.at(keyPath{"github", "base_url"}, "not an absolute http(s) URL without credentials, e.g. https://github.example.com/api/v3")
	}
	v.nonNegative(keyPath{"github", "api_reserve"}, int64(c.GitHub.APIReserve))
	v.nonNegative(keyPath{"github", "webhook_hook_id"}, c.GitHub.WebhookHookID)
	if c.GitHub.WebhookHookID > 0 && c.GitHub.WebhookOrganization == "" {
		v.at(keyPath{"github", "webhook_organization"}, "required with github.webhook_hook_id")
	}
	if c.GitHub.WebhookHookID == 0 && c.GitHub.WebhookOrganization != "" {
		v.at(keyPath{"github", "webhook_hook_id"}, "required with github.webhook_organization")
	}
	c.validateWebhookHooks(v)

	v.positive(keyPath{"streams", "max_len"}, c.Streams.MaxLen)
	v.positive(keyPath{"streams", "max_deliveries"}, c.Streams.MaxDeliveries)
	if c.Provisioner.CallTimeout > 0 && c.Streams.ReclaimMinIdle > 0 && c.Provisioner.CallTimeout >= c.Streams.ReclaimMinIdle {
		v.at(keyPath{"streams", "reclaim_min_idle"},
			"%s is not longer than provisioner.call_timeout (%s): a command would be taken over while a provisioner still works on it; use at least %s, or leave it out to get that",
			c.Streams.ReclaimMinIdle, c.Provisioner.CallTimeout, c.Provisioner.CallTimeout+ReclaimMargin)
	}

	if c.Scheduler.RecoveryInterval > 0 && c.Scheduler.RecoveryInterval < MinRecoveryInterval {
		v.at(keyPath{"scheduler", "recovery_interval"},
			"%s is shorter than %s: every pass costs at least one GitHub API call", c.Scheduler.RecoveryInterval, MinRecoveryInterval)
	}

	if n := c.Scheduler.UsageTopRepositories; n < 0 || n > MaxUsageTopRepositories {
		v.at(keyPath{"scheduler", "usage_top_repositories"},
			"%d is not between 1 and %d (each repository kept apart is a metric series per group and workflow)", n, MaxUsageTopRepositories)
	}

	for _, l := range []struct {
		path keyPath
		addr string
	}{
		{keyPath{"ingress", "listen"}, c.Ingress.Listen},
		{keyPath{"scheduler", "listen"}, c.Scheduler.Listen},
		{keyPath{"provisioner", "listen"}, c.Provisioner.Listen},
	} {
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			v.at(l.path, "%q is not a listen address host:port (e.g. :8080)", l.addr)
		}
	}
	for _, l := range []struct {
		section       string
		listen, other string
	}{
		{"ingress", c.Ingress.MetricsListen, c.Ingress.Listen},
		{"scheduler", c.Scheduler.MetricsListen, c.Scheduler.Listen},
		{"provisioner", c.Provisioner.MetricsListen, c.Provisioner.Listen},
	} {
		if l.listen == "" {
			continue
		}
		path := keyPath{l.section, "metrics_listen"}
		if _, _, err := net.SplitHostPort(l.listen); err != nil {
			v.at(path, "%q is not a listen address host:port (e.g. :9090)", l.listen)
		} else if sameListenAddr(l.listen, l.other) {
			v.at(path, "%q is the address of %s.listen: the metrics listener needs its own port", l.listen, l.section)
		}
	}
	v.positive(keyPath{"ingress", "max_body_bytes"}, c.Ingress.MaxBodyBytes)
	v.nonNegative(keyPath{"scheduler", "create_retries"}, int64(c.Scheduler.CreateRetries))
	v.positive(keyPath{"provisioner", "concurrency"}, int64(c.Provisioner.Concurrency))
}

// sameListenAddr tells whether two listen addresses would bind the same port
// (an empty host is every address).
func sameListenAddr(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp {
		return false
	}
	return ah == bh || ah == "" || bh == "" || ah == "0.0.0.0" || bh == "0.0.0.0"
}

// validateWebhookHooks checks github.webhook_hooks: each hook names its
// organization and a positive id, and each pair appears once (counting
// webhook_organization / webhook_hook_id).
func (c *Config) validateWebhookHooks(v *validator) {
	seen := map[string]bool{}
	if c.GitHub.WebhookHookID > 0 && c.GitHub.WebhookOrganization != "" {
		seen[fmt.Sprintf("%s/%d", strings.ToLower(c.GitHub.WebhookOrganization), c.GitHub.WebhookHookID)] = true
	}
	for i, h := range c.GitHub.WebhookHooks {
		p := keyPath{"github", "webhook_hooks", i}
		if !v.required(p.with("organization"), h.Organization) {
			continue
		}
		if h.HookID <= 0 {
			v.at(p.with("hook_id"), "must be at least 1, got %d", h.HookID)
			continue
		}
		key := fmt.Sprintf("%s/%d", strings.ToLower(h.Organization), h.HookID)
		if seen[key] {
			v.at(p, "hook %d of %s is listed twice", h.HookID, h.Organization)
		}
		seen[key] = true
	}
}

func (c *Config) validateSecrets(v *validator) {
	s := c.Secrets
	appComplete := s.GitHubAppID > 0 && s.GitHubAppPrivateKey.IsSet() && s.GitHubAppInstallationID >= 0
	switch {
	case s.HasApp() && !appComplete:
		var missing []string
		if s.GitHubAppID <= 0 {
			missing = append(missing, "RM_GITHUB_APP_ID")
		}
		if s.GitHubAppInstallationID < 0 {
			missing = append(missing, "RM_GITHUB_APP_INSTALLATION_ID")
		}
		if !s.GitHubAppPrivateKey.IsSet() {
			missing = append(missing, "RM_GITHUB_APP_PRIVATE_KEY (or RM_GITHUB_APP_PRIVATE_KEY_FILE)")
		}
		v.env("RM_GITHUB_APP_*", "incomplete GitHub App credentials: missing or not positive: %s", strings.Join(missing, ", "))
	case !s.HasApp() && !s.GitHubToken.IsSet():
		v.env("RM_GITHUB_*", "no GitHub credentials: set RM_GITHUB_APP_ID and RM_GITHUB_APP_PRIVATE_KEY (or _FILE) for a GitHub App, or RM_GITHUB_TOKEN")
	}
	if accounts := c.accounts(); s.HasApp() && s.GitHubAppInstallationID > 0 && len(accounts) > 1 {
		v.env("RM_GITHUB_APP_INSTALLATION_ID", "one installation cannot serve the groups' %d accounts (%s): leave it unset, and each account's installation is looked up through the App",
			len(accounts), strings.Join(accounts, ", "))
	}
	if s.GitHubAppPrivateKey.IsSet() && !isRSAPrivateKey(s.GitHubAppPrivateKey.Value()) {
		v.env("RM_GITHUB_APP_PRIVATE_KEY", "not a PEM-encoded RSA private key (PKCS #1 or PKCS #8)")
	}
	if !s.WebhookSecret.IsSet() {
		v.env("RM_GITHUB_WEBHOOK_SECRET", "required: the ingress refuses every delivery without it")
	}
	for _, sec := range []struct {
		name  string
		value Secret
	}{
		{"RM_GITHUB_TOKEN", s.GitHubToken},
		{"RM_GITHUB_WEBHOOK_SECRET", s.WebhookSecret},
		{"RM_GITHUB_WEBHOOK_SECRET_PREVIOUS", s.WebhookSecretPrevious},
		{"RM_API_TOKEN", s.APIToken},
	} {
		if sec.value.IsSet() && strings.TrimSpace(sec.value.Value()) != sec.value.Value() {
			v.env(sec.name, "has leading or trailing white space (a newline from a secret file?)")
		}
	}
}

// accounts are the GitHub accounts (organizations, repository owners) of
// the runner groups, lower-case and sorted: one App installation each.
func (c *Config) accounts() []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range c.RunnerGroups {
		a := strings.ToLower(g.Organization)
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

func isRSAPrivateKey(s string) bool {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return false
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return true
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return false
	}
	_, ok := k.(*rsa.PrivateKey)
	return ok
}

func (c *Config) validateRedis(v *validator) {
	if msg := redisURLProblem(c.Redis.URL); msg != "" {
		if c.Secrets.RedisURL.IsSet() {
			v.env("RM_REDIS_URL", "%s", msg)
		} else {
			v.at(keyPath{"redis", "url"}, "%s", msg)
		}
	}
	r := c.Redis
	if r.SentinelMaster != "" && len(r.SentinelAddrs) == 0 {
		v.at(keyPath{"redis", "sentinel_addrs"}, "required with redis.sentinel_master")
	}
	if r.SentinelMaster == "" && len(r.SentinelAddrs) > 0 {
		v.at(keyPath{"redis", "sentinel_master"}, "required with redis.sentinel_addrs")
	}
	for i, a := range r.SentinelAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			v.at(keyPath{"redis", "sentinel_addrs", i}, "%q is not host:port", a)
		}
	}
	v.nonNegative(keyPath{"redis", "db"}, int64(r.DB))
}

// redisURLProblem returns why raw is not a Redis URL go-redis accepts, or "".
// The message never contains the URL's credentials.
func redisURLProblem(raw string) string {
	_, err := redis.ParseURL(raw)
	if err == nil {
		return ""
	}
	if u, perr := url.Parse(raw); perr == nil && u.Query().Has("master_name") {
		_, err = redis.ParseFailoverURL(raw)
		if err == nil {
			return ""
		}
	}
	reason := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		reason = ue.Err.Error()
	}
	// Leave the reason out if it could carry any part of the credentials.
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			for part := range strings.SplitSeq(rest[:at], ":") {
				if part != "" && strings.Contains(reason, part) {
					reason = ""
					break
				}
			}
		}
	}
	if strings.Contains(reason, raw) {
		reason = ""
	}
	msg := "not a valid Redis URL (redis://[[user]:password@]host[:port][/db], rediss:// for TLS, unix:///path)"
	if reason != "" {
		msg += ": " + reason
	}
	return msg
}

func (c *Config) validateGroups(v *validator) {
	if len(c.RunnerGroups) == 0 {
		// The line of runner_groups:, or of the document when it is absent.
		// A list the decoder could not read is reported by the decoder.
		n, line, ok := v.find(keyPath{"runner_groups"})
		if !ok {
			line = 1
		}
		if !ok || n == nil || len(n.Content) == 0 {
			v.add(line, "runner_groups", "at least one runner group is required")
		}
	}
	first := make(map[string]int) // group name -> index
	for i := range c.RunnerGroups {
		g := &c.RunnerGroups[i]
		p := keyPath{"runner_groups", i}
		namePath := p.with("name")
		switch {
		case g.Name == "":
			v.at(namePath, "required")
		case !IsDNSLabel(g.Name):
			v.at(namePath, "%q is not a lowercase DNS label (a-z, 0-9, '-', not at either end)", g.Name)
		default:
			if j, dup := first[g.Name]; dup {
				_, line, _ := v.find(keyPath{"runner_groups", j, "name"})
				v.at(namePath, "duplicate group name %q (first at line %d)", g.Name, line)
			} else {
				first[g.Name] = i
			}
			if IsDNSLabel(c.Name) && len(c.Name) <= maxManagerNameLen {
				if n := len(RunnerName(c.Name, g.Name, strings.Repeat("x", RunnerSuffixLen))); n > MaxRunnerNameLen {
					v.at(namePath, "runner names %s would be %d characters, more than %d: use a group name of at most %d characters (or a shorter manager name)",
						RunnerName(c.Name, g.Name, strings.Repeat("x", RunnerSuffixLen)), n, MaxRunnerNameLen, MaxRunnerNameLen-len(c.Name)-2-RunnerSuffixLen)
				}
			}
		}

		if v.required(p.with("organization"), g.Organization) && !githubLogin.MatchString(g.Organization) {
			v.at(p.with("organization"), "%q is not a GitHub organization or user name", g.Organization)
		}
		if g.Repository != "" {
			if !githubRepo.MatchString(g.Repository) {
				v.at(p.with("repository"), "%q is not a repository name (the name alone, without the owner)", g.Repository)
			}
			if len(g.RepositoryAccess.SelectedRepositories) > 0 {
				v.at(p.with("repository_access", "selected_repositories"), "not allowed on a repository-level group (repository is set): runner groups exist only at the organization level")
			}
			if len(g.WorkflowAccess) > 0 {
				v.at(p.with("workflow_access"), "not allowed on a repository-level group (repository is set): runner groups exist only at the organization level")
			}
		}
		for j, r := range g.RepositoryAccess.SelectedRepositories {
			if !githubRepo.MatchString(r) {
				v.at(p.with("repository_access", "selected_repositories", j), "%q is not a repository name (the name alone, without the owner)", r)
			}
		}
		for j, w := range g.WorkflowAccess {
			if strings.TrimSpace(w) == "" {
				v.at(p.with("workflow_access", j), "empty workflow reference")
			}
		}

		// SetDefaults turned an absent max_runners into DefaultMaxRunners;
		// the file tells an explicit 0 from an absent key.
		maxRunners, explicit := g.MaxRunners, v.set(p.with("max_runners"))
		if n, _, ok := v.find(p.with("max_runners")); ok && explicit {
			if x, err := strconv.Atoi(n.Value); err == nil {
				maxRunners = x
			}
		}
		switch {
		case maxRunners < 1:
			v.at(p.with("max_runners"), "must be at least 1, got %d", maxRunners)
		case maxRunners < g.MinRunners && explicit:
			v.at(p.with("max_runners"), "%d is less than min_runners (%d)", maxRunners, g.MinRunners)
		case maxRunners < g.MinRunners:
			v.at(p.with("max_runners"), "%d (the default) is less than min_runners (%d)", maxRunners, g.MinRunners)
		}
		if g.WorkflowName != "" && strings.TrimSpace(g.WorkflowName) == "" {
			v.at(p.with("workflow_name"), "blank workflow name (leave it empty to serve every workflow)")
		}
		v.nonNegative(p.with("min_runners"), int64(g.MinRunners))

		if len(g.Labels) == 0 {
			v.at(p.with("labels"), "at least one label is required")
		}
		for j, l := range g.Labels {
			if strings.TrimSpace(l) == "" {
				v.at(p.with("labels", j), "empty label")
			}
		}
		c.validateBackend(v, g, p.with("backend"))
	}
}

var (
	githubLogin = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	githubRepo  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
	sha256Hex   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	// capabilityRe is a Linux capability name, with or without CAP_, or ALL.
	capabilityRe = regexp.MustCompile(`^(?i:ALL|(CAP_)?[A-Z][A-Z_]*)$`)
)

func (c *Config) validateBackend(v *validator, g *RunnerGroup, p keyPath) {
	b := &g.Backend
	sections := map[string]bool{BackendDocker: b.Docker != nil && v.set(p.with(BackendDocker)), BackendAWS: b.AWS != nil, BackendGCP: b.GCP != nil}
	switch b.Type {
	case BackendDocker, BackendAWS, BackendGCP:
	case "":
		v.at(p.with("type"), "required: one of %s", strings.Join(BackendTypes, ", "))
		return
	default:
		v.at(p.with("type"), "unknown backend type %q: one of %s", b.Type, strings.Join(BackendTypes, ", "))
		return
	}
	for _, t := range BackendTypes {
		if t != b.Type && sections[t] {
			v.at(p.with(t), "a %s section in a backend of type %s", t, b.Type)
		}
	}
	switch b.Type {
	case BackendDocker:
		validateDocker(v, b.Docker, p.with(BackendDocker))
	case BackendAWS:
		if b.AWS == nil {
			v.at(p, "the aws section is required for type aws")
			return
		}
		validateAWS(v, b.AWS, p.with(BackendAWS))
	case BackendGCP:
		if b.GCP == nil {
			v.at(p, "the gcp section is required for type gcp")
			return
		}
		validateGCP(v, b.GCP, p.with(BackendGCP))
	}
}

func validateDocker(v *validator, d *DockerSpec, p keyPath) {
	if d == nil {
		return
	}
	v.required(p.with("image"), d.Image)
	if d.CPUs < 0 {
		v.at(p.with("cpus"), "must not be negative, got %g", d.CPUs)
	}
	if _, err := ParseMemory(d.Memory); err != nil {
		v.at(p.with("memory"), "%v", err)
	}
	for i, vol := range d.Volumes {
		parts := strings.Split(vol, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") ||
			(len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw") {
			v.at(p.with("volumes", i), "%q is not source:/target[:ro|rw]", vol)
			continue
		}
		if IsDockerSocketMount(parts[0]) {
			v.at(p.with("volumes", i), "%q mounts the Docker socket (or a directory that holds it): every job would be root on the host", vol)
		}
	}
	if d.PidsLimit < -1 {
		v.at(p.with("pids_limit"), "must be -1 (no limit) or more, got %d", d.PidsLimit)
	}
	if d.Security != nil {
		for i, c := range d.Security.CapDrop {
			if !capabilityRe.MatchString(c) {
				v.at(p.with("security", "cap_drop", i), "%q is not a capability name (ALL, NET_RAW, CAP_CHOWN, ...)", c)
			}
		}
	}
	for k := range d.Env {
		if k == "" || strings.ContainsAny(k, "= ") {
			v.at(p.with("env"), "%q is not an environment variable name", k)
		}
	}
}

func validateAWS(v *validator, a *AWSSpec, p keyPath) {
	v.required(p.with("region"), a.Region)
	switch {
	case a.AMI == "" && a.LaunchTemplate == nil:
		v.at(p.with("ami"), "required: ami or launch_template")
	case a.AMI != "" && a.LaunchTemplate != nil:
		v.at(p.with("launch_template"), "set ami or launch_template, not both")
	case a.LaunchTemplate != nil && (a.LaunchTemplate.ID == "") == (a.LaunchTemplate.Name == ""):
		v.at(p.with("launch_template"), "set exactly one of id and name")
	}
	nonEmptyList(v, p.with("instance_types"), a.InstanceTypes)
	nonEmptyList(v, p.with("subnets"), a.Subnets)
	if a.RootVolumeSizeGB < 0 {
		v.at(p.with("root_volume_size_gb"), "must not be negative, got %d", a.RootVolumeSizeGB)
	}
	if a.RootDeviceName != "" && !strings.HasPrefix(a.RootDeviceName, "/dev/") {
		v.at(p.with("root_device_name"), "%q is not a device path (/dev/xvda, /dev/sda1)", a.RootDeviceName)
	}
	if a.SpotFallbackOnDemand && !a.Spot {
		v.at(p.with("spot_fallback_on_demand"), "only meaningful with spot: true")
	}
	validateEndpoint(v, p.with("endpoint"), a.Endpoint)
	validateArchitecture(v, p.with("architecture"), a.Architecture)
	validateBootstrap(v, p.with("bootstrap"), a.Bootstrap)
}

func validateGCP(v *validator, g *GCPSpec, p keyPath) {
	v.required(p.with("project"), g.Project)
	nonEmptyList(v, p.with("zones"), g.Zones)
	v.required(p.with("machine_type"), g.MachineType)
	switch {
	case g.Image != "" && (g.ImageFamily != "" || g.ImageProject != ""):
		v.at(p.with("image"), "set image, or image_family and image_project, not both")
	case g.Image == "" && g.ImageFamily == "" && g.ImageProject == "":
		v.at(p.with("image"), "required: image, or image_family and image_project")
	case g.Image == "" && g.ImageFamily == "":
		v.at(p.with("image_family"), "required with image_project")
	case g.Image == "" && g.ImageProject == "":
		v.at(p.with("image_project"), "required with image_family")
	}
	if g.DiskSizeGB < 0 {
		v.at(p.with("disk_size_gb"), "must not be negative, got %d", g.DiskSizeGB)
	}
	if g.SpotFallbackStandard && !g.Spot {
		v.at(p.with("spot_fallback_standard"), "only meaningful with spot: true")
	}
	validateEndpoint(v, p.with("endpoint"), g.Endpoint)
	validateArchitecture(v, p.with("architecture"), g.Architecture)
	validateBootstrap(v, p.with("bootstrap"), g.Bootstrap)
}

func validateArchitecture(v *validator, p keyPath, arch string) {
	if arch != "" && arch != ArchX64 && arch != ArchARM64 {
		v.at(p, "%q is not an architecture: x64 or arm64", arch)
	}
}

func nonEmptyList(v *validator, p keyPath, list []string) {
	if len(list) == 0 {
		v.at(p, "at least one is required")
	}
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			v.at(p.with(i), "empty value")
		}
	}
}

func validateEndpoint(v *validator, p keyPath, s string) {
	if s == "" {
		return
	}
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.at(p, "not an absolute http(s) URL")
	}
}

func validateBootstrap(v *validator, p keyPath, b RunnerBootstrap) {
	if b.RunnerDownloadURL != "" && b.RunnerVersion == "" {
		v.at(p.with("runner_download_url"), "needs runner_version (without it the runner comes from GitHub's downloads API)")
	}
	if b.RunnerVersion != "" && b.RunnerSHA256 == "" && b.StartupScript == "" {
		v.at(p.with("runner_sha256"), "required with a pinned runner_version")
	}
	if b.RunnerSHA256 != "" && !sha256Hex.MatchString(b.RunnerSHA256) {
		v.at(p.with("runner_sha256"), "not a SHA-256 in hexadecimal (64 characters)")
	}
	if b.RunnerDownloadURL != "" {
		if u, err := url.Parse(b.RunnerDownloadURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.at(p.with("runner_download_url"), "not an absolute http(s) URL")
		}
	}
	if b.RunnerUser != "" && b.RunnerUser == "root" {
		v.at(p.with("runner_user"), "the runner must not run as root")
	}
}

// ParseMemory parses a memory size: a number of bytes, or a number (decimals
// allowed) with a binary unit k, m, g, t or p (case-insensitive, optionally
// followed by "i", "b" or "ib": 512m, 4g, 1.5GiB). "" is 0 (no limit).
func ParseMemory(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	m := memoryRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a memory size (bytes, or a number with a unit: 512m, 4g)", s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a memory size: %w", s, err)
	}
	mult := float64(1)
	if m[2] != "" {
		mult = float64(int64(1) << (10 * (strings.Index("kmgtp", strings.ToLower(m[2])) + 1)))
	}
	n := f * mult
	if n >= 1<<63 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(n), nil
}

var memoryRe = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?(?:([kKmMgGtTpP])[iI]?)?[bB]?$`)
