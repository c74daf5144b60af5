package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults of the service sections that have no constant in config.go.
const (
	DefaultReadHeaderTimeout  = 5 * time.Second
	DefaultReadTimeout        = 10 * time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultIdleTimeout        = 120 * time.Second
	DefaultReconcileInterval  = 5 * time.Second
	DefaultLeaseTTL           = 30 * time.Second
	DefaultCreateRetries      = 5
	DefaultCreateRetryBackoff = 10 * time.Second
	DefaultJobRetention       = 72 * time.Hour
	DefaultSchedulerMinIdle   = 30 * time.Second
	DefaultRecoveryInterval   = 2 * time.Minute
	// MinRecoveryInterval bounds scheduler.recovery_interval from below: each
	// pass costs at least one GitHub API call.
	MinRecoveryInterval = 10 * time.Second
	// DefaultUsageTopRepositories and MaxUsageTopRepositories bound
	// scheduler.usage_top_repositories (metric series per group and workflow).
	DefaultUsageTopRepositories = 20
	MaxUsageTopRepositories     = 200
	DefaultDockerStopTimeout    = 10 * time.Second
)

// Load reads the file at path, applies defaults and the RM_ environment, and
// validates the result. A returned Problems lists every problem found, sorted
// by line; any other error means the file could not be read.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	secrets, err := LoadSecrets()
	if err != nil {
		return nil, err
	}
	return Parse(b, secrets)
}

// Check loads the file at path with the environment and returns nil when the
// configuration is valid, a Problems (each problem with its line, sorted by
// line) when it is not, or another error when the file cannot be read. It is
// what every binary's --check-config runs.
func Check(path string) error {
	_, err := Load(path)
	return err
}

var yamlLineError = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// lineProblem turns a yaml.v3 message "line N: msg" into a Problem.
func lineProblem(msg string) Problem {
	if m := yamlLineError.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{Line: n, Message: m[2]}
	}
	return Problem{Message: msg}
}

// Parse decodes a YAML document strictly (an unknown key is a problem, with
// its line), applies defaults, attaches secrets and validates. Every problem
// of the file and of the secrets is returned at once as a Problems.
func Parse(b []byte, secrets Secrets) (*Config, error) {
	var doc, next yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		// A syntax error stops the parser: there is nothing more to check.
		return nil, Problems{lineProblem(err.Error())}
	}
	var ps Problems
	if err := dec.Decode(&next); err == nil {
		line := next.Line
		if len(next.Content) > 0 {
			line = next.Content[0].Line
		}
		ps = append(ps, Problem{Line: line, Message: "a second YAML document: the configuration is a single document"})
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	cfg := &Config{}
	switch {
	case root.Kind == 0: // empty file: every default
	case root.Kind != yaml.MappingNode:
		return nil, Problems{{Line: root.Line, Message: "the configuration must be a mapping of keys"}}
	default:
		// Unknown keys are found by walking the tree (validate), which gives
		// their full path; the decoder reports the values of the wrong type.
		if err := root.Decode(cfg); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, fmt.Errorf("decode config: %w", err)
			}
			for _, msg := range te.Errors {
				ps = append(ps, lineProblem(msg))
			}
		}
	}
	cfg.Secrets = secrets
	cfg.SetDefaults()
	if err := cfg.validate(root, ps); err != nil {
		return nil, err
	}
	return cfg, nil
}

// SetDefaults fills every zero field that has a default.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	durDef := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Name, DefaultName)
	def(&c.GitHub.BaseURL, DefaultGitHubBaseURL)
	def(&c.Redis.URL, DefaultRedisURL)
	if c.Secrets.RedisURL.IsSet() {
		c.Redis.URL = c.Secrets.RedisURL.Value()
	}
	if c.GitHub.APIReserve == 0 {
		c.GitHub.APIReserve = DefaultAPIReserve
	}
	durDef(&c.HealthCheckInterval, DefaultHealthCheckInterval)
	durDef(&c.TimeToStart, DefaultTimeToStart)
	durDef(&c.TimeToLive, DefaultTimeToLive)
	if c.Streams.MaxLen == 0 {
		c.Streams.MaxLen = DefaultStreamMaxLen
	}
	if c.Streams.MaxDeliveries == 0 {
		c.Streams.MaxDeliveries = DefaultMaxDeliveries
	}
	def(&c.Ingress.Listen, DefaultIngressListen)
	if c.Ingress.MaxBodyBytes == 0 {
		c.Ingress.MaxBodyBytes = DefaultMaxBodyBytes
	}
	durDef(&c.Ingress.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	durDef(&c.Ingress.ReadTimeout, DefaultReadTimeout)
	durDef(&c.Ingress.WriteTimeout, DefaultWriteTimeout)
	durDef(&c.Ingress.IdleTimeout, DefaultIdleTimeout)
	def(&c.Scheduler.Listen, DefaultSchedulerListen)
	durDef(&c.Scheduler.ReconcileInterval, DefaultReconcileInterval)
	durDef(&c.Scheduler.LeaseTTL, DefaultLeaseTTL)
	if c.Scheduler.CreateRetries == 0 {
		c.Scheduler.CreateRetries = DefaultCreateRetries
	}
	durDef(&c.Scheduler.CreateRetryBackoff, DefaultCreateRetryBackoff)
	durDef(&c.Scheduler.JobRetention, DefaultJobRetention)
	durDef(&c.Scheduler.ReclaimMinIdle, DefaultSchedulerMinIdle)
	durDef(&c.Scheduler.RecoveryInterval, DefaultRecoveryInterval)
	if c.Scheduler.UsageTopRepositories == 0 {
		c.Scheduler.UsageTopRepositories = DefaultUsageTopRepositories
	}
	def(&c.Provisioner.Listen, DefaultProvisionerListen)
	if c.Provisioner.Concurrency == 0 {
		c.Provisioner.Concurrency = DefaultConcurrency
	}
	durDef(&c.Provisioner.CallTimeout, DefaultCallTimeout)
	// Derived after call_timeout: a command is never reclaimed from a
	// provisioner that may still be working on it.
	durDef(&c.Streams.ReclaimMinIdle, c.Provisioner.CallTimeout+ReclaimMargin)
	for i := range c.RunnerGroups {
		g := &c.RunnerGroups[i]
		if g.MaxRunners == 0 {
			// An explicit max_runners: 0 is found by validate in the file.
			g.MaxRunners = DefaultMaxRunners
		}
		if g.RepositoryAccess.AllowsPublicRepositories == nil {
			t := true
			g.RepositoryAccess.AllowsPublicRepositories = &t
		}
		if g.Backend.Type == BackendDocker {
			if g.Backend.Docker == nil {
				g.Backend.Docker = &DockerSpec{}
			}
			def(&g.Backend.Docker.Image, DefaultDockerImage)
			def(&g.Backend.Docker.Memory, DefaultDockerMemory)
			if g.Backend.Docker.PidsLimit == 0 {
				g.Backend.Docker.PidsLimit = DefaultDockerPidsLimit
			}
			durDef(&g.Backend.Docker.StopTimeout, DefaultDockerStopTimeout)
		}
	}
}

// Group returns the runner group of that name, or nil.
func (c *Config) Group(name string) *RunnerGroup {
	for i := range c.RunnerGroups {
		if c.RunnerGroups[i].Name == name {
			return &c.RunnerGroups[i]
		}
	}
	return nil
}
