package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads the file at path, applies defaults and the RM_ environment, and
// validates the result. A returned *Problems lists every problem found.
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

// Parse decodes a YAML document strictly (an unknown key is an error), applies
// defaults, attaches secrets and validates.
func Parse(b []byte, secrets Secrets) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	cfg := &Config{}
	strict := yaml.NewDecoder(bytes.NewReader(b))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	cfg.Secrets = secrets
	cfg.SetDefaults()
	if err := cfg.validate(&root); err != nil {
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
	def(&c.Name, DefaultName)
	def(&c.GitHub.BaseURL, DefaultGitHubBaseURL)
	def(&c.Redis.URL, DefaultRedisURL)
	if c.Secrets.RedisURL.IsSet() {
		c.Redis.URL = c.Secrets.RedisURL.Value()
	}
	if c.GitHub.APIReserve == 0 {
		c.GitHub.APIReserve = DefaultAPIReserve
	}
	if c.HealthCheckInterval == 0 {
		c.HealthCheckInterval = DefaultHealthCheckInterval
	}
	if c.TimeToStart == 0 {
		c.TimeToStart = DefaultTimeToStart
	}
	if c.TimeToLive == 0 {
		c.TimeToLive = DefaultTimeToLive
	}
	if c.Streams.MaxLen == 0 {
		c.Streams.MaxLen = DefaultStreamMaxLen
	}
	if c.Streams.MaxDeliveries == 0 {
		c.Streams.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.Streams.ReclaimMinIdle == 0 {
		c.Streams.ReclaimMinIdle = DefaultReclaimMinIdle
	}
	def(&c.Ingress.Listen, DefaultIngressListen)
	if c.Ingress.MaxBodyBytes == 0 {
		c.Ingress.MaxBodyBytes = DefaultMaxBodyBytes
	}
	durDef := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	durDef(&c.Ingress.ReadHeaderTimeout, 5*time.Second)
	durDef(&c.Ingress.ReadTimeout, 10*time.Second)
	durDef(&c.Ingress.WriteTimeout, 10*time.Second)
	durDef(&c.Ingress.IdleTimeout, 120*time.Second)
	def(&c.Scheduler.Listen, DefaultSchedulerListen)
	durDef(&c.Scheduler.ReconcileInterval, 5*time.Second)
	durDef(&c.Scheduler.LeaseTTL, 30*time.Second)
	if c.Scheduler.CreateRetries == 0 {
		c.Scheduler.CreateRetries = 5
	}
	durDef(&c.Scheduler.CreateRetryBackoff, 10*time.Second)
	durDef(&c.Scheduler.JobRetention, 72*time.Hour)
	def(&c.Provisioner.Listen, DefaultProvisionerListen)
	if c.Provisioner.Concurrency == 0 {
		c.Provisioner.Concurrency = DefaultConcurrency
	}
	durDef(&c.Provisioner.CallTimeout, DefaultCallTimeout)
	for i := range c.RunnerGroups {
		g := &c.RunnerGroups[i]
		if g.RepositoryAccess.AllowsPublicRepositories == nil {
			t := true
			g.RepositoryAccess.AllowsPublicRepositories = &t
		}
		if g.Backend.Type == "docker" && g.Backend.Docker != nil {
			def(&g.Backend.Docker.Image, DefaultDockerImage)
			durDef(&g.Backend.Docker.StopTimeout, 10*time.Second)
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
