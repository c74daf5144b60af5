package runtime

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
)

// runnerDownloadsTTL is how long the runner packages GitHub offers a scope
// are reused before the downloads API is asked again.
const runnerDownloadsTTL = time.Hour

var sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// downloadCache holds the answer of GitHub's runner downloads API per scope.
type downloadCache struct {
	mu      sync.Mutex
	entries map[string]downloadEntry // github.Scope.String()
}

type downloadEntry struct {
	apps []github.RunnerApplication
	at   time.Time
}

// vmRunner returns the bootstrap and architecture of a VM group; ok is false
// for a backend that installs no runner package (Docker).
func vmRunner(g *config.RunnerGroup) (b config.RunnerBootstrap, arch string, ok bool) {
	switch {
	case g.Backend.Type == config.BackendAWS && g.Backend.AWS != nil:
		return g.Backend.AWS.Bootstrap, config.RunnerArchitecture(g.Backend.AWS.Architecture), true
	case g.Backend.Type == config.BackendGCP && g.Backend.GCP != nil:
		return g.Backend.GCP.Bootstrap, config.RunnerArchitecture(g.Backend.GCP.Architecture), true
	}
	return config.RunnerBootstrap{}, "", false
}

// runnerPackage returns the runner package a VM runner of the group
// installs: nil for Docker and for a pinned runner_version; otherwise the
// linux package of the group's architecture that GitHub's downloads API
// offers the scope, cached an hour per scope. Any failure (the API, no
// package of that architecture, no valid checksum) is retryable: a runner
// is never started without a verified checksum.
func (r *Runtime) runnerPackage(ctx context.Context, g *config.RunnerGroup, scope github.Scope) (*backend.RunnerPackage, error) {
	b, arch, ok := vmRunner(g)
	if !ok || b.RunnerVersion != "" {
		return nil, nil
	}
	apps, err := r.runnerApplications(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("runner package: %w: %w", github.ErrRetryable, err)
	}
	for _, a := range apps {
		if a.OS != "linux" || a.Architecture != arch {
			continue
		}
		if !sha256Hex.MatchString(a.SHA256Checksum) {
			return nil, fmt.Errorf("runner package linux-%s of %s: GitHub gives no SHA-256 checksum: %w", arch, scope, github.ErrRetryable)
		}
		if !strings.HasPrefix(a.DownloadURL, "https://") {
			return nil, fmt.Errorf("runner package linux-%s of %s: the download URL is not https: %w", arch, scope, github.ErrRetryable)
		}
		return &backend.RunnerPackage{Version: versionOf(a.Filename, arch), URL: a.DownloadURL, SHA256: strings.ToLower(a.SHA256Checksum)}, nil
	}
	return nil, fmt.Errorf("runner package linux-%s of %s: GitHub offers none: %w", arch, scope, github.ErrRetryable)
}

// runnerApplications returns the packages GitHub offers the scope, from the
// cache when they are less than an hour old.
func (r *Runtime) runnerApplications(ctx context.Context, scope github.Scope) ([]github.RunnerApplication, error) {
	key := scope.String()
	now := r.opts.Now()
	r.downloads.mu.Lock()
	e, ok := r.downloads.entries[key]
	r.downloads.mu.Unlock()
	if ok && now.Sub(e.at) < runnerDownloadsTTL && now.Sub(e.at) >= 0 {
		return e.apps, nil
	}
	apps, err := callGitHub(ctx, r, "runner_downloads", func(ctx context.Context) ([]github.RunnerApplication, error) {
		return r.opts.GitHub.ListRunnerApplications(ctx, scope)
	})
	if err != nil {
		return nil, err
	}
	r.downloads.mu.Lock()
	if r.downloads.entries == nil {
		r.downloads.entries = map[string]downloadEntry{}
	}
	r.downloads.entries[key] = downloadEntry{apps: apps, at: now}
	r.downloads.mu.Unlock()
	return apps, nil
}

// versionOf reads the version in a package file name,
// actions-runner-linux-x64-2.330.0.tar.gz; "" when it has another form.
func versionOf(filename, arch string) string {
	v, ok := strings.CutPrefix(filename, "actions-runner-linux-"+arch+"-")
	if !ok {
		return ""
	}
	v, ok = strings.CutSuffix(v, ".tar.gz")
	if !ok {
		return ""
	}
	return v
}
