// Package runtimetest has an in-memory GitHub for tests of the provisioner
// runtime and of its backends, and an in-process starter of the runtime
// (Start); cmd/provisioner-bench serves the same in-memory GitHub.
package runtimetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
	"github.com/runner-manager/runner-manager/services/provisioner/internal/runtime"
)

// Runner is one registration of the fake.
type Runner struct {
	ID      int64
	Name    string
	Scope   github.Scope
	GroupID int64
	Labels  []string
}

// Method names, for FailNext and Calls.
const (
	MethodGenerateJITConfig    = "GenerateJITConfig"
	MethodGetRunnerByName      = "GetRunnerByName"
	MethodDeleteRunner         = "DeleteRunner"
	MethodGetRunnerGroupByName = "GetRunnerGroupByName"
	MethodListRunnerApps       = "ListRunnerApplications"
)

// RunnerVersion is the version of the packages the fake's downloads API
// offers; RunnerChecksum gives each its checksum.
const RunnerVersion = "2.330.0"

// RunnerChecksum is the SHA-256 the fake gives the runner package of os and arch.
func RunnerChecksum(os, arch string) string {
	sum := sha256.Sum256([]byte(os + "-" + arch + "-" + RunnerVersion))
	return hex.EncodeToString(sum[:])
}

// RunnerURL is the download URL of the fake's package of os and arch.
func RunnerURL(os, arch string) string {
	return "https://github.com/actions/runner/releases/download/v" + RunnerVersion +
		"/actions-runner-" + os + "-" + arch + "-" + RunnerVersion + ".tar.gz"
}

// GitHub is a thread-safe in-memory runtime.GitHub. Runner groups resolve to
// a stable id per organization and name unless StrictGroups is set.
type GitHub struct {
	mu           sync.Mutex
	nextID       int64
	runners      map[string]*Runner // scope + "/" + name
	groups       map[string]int64   // org + "/" + name
	jits         []string
	failures     map[string][]error
	calls        map[string]int
	strictGroups bool
	apps         []github.RunnerApplication
}

var _ runtime.GitHub = (*GitHub)(nil)

// NewGitHub returns an empty fake.
func NewGitHub() *GitHub {
	return &GitHub{
		nextID:   100,
		runners:  map[string]*Runner{},
		groups:   map[string]int64{},
		failures: map[string][]error{},
		calls:    map[string]int{},
		apps:     defaultApps(),
	}
}

func defaultApps() []github.RunnerApplication {
	var apps []github.RunnerApplication
	for _, p := range [][2]string{{"osx", "x64"}, {"linux", "x64"}, {"linux", "arm"}, {"linux", "arm64"}, {"win", "x64"}} {
		apps = append(apps, github.RunnerApplication{
			OS: p[0], Architecture: p[1], DownloadURL: RunnerURL(p[0], p[1]),
			Filename:       "actions-runner-" + p[0] + "-" + p[1] + "-" + RunnerVersion + ".tar.gz",
			SHA256Checksum: RunnerChecksum(p[0], p[1]),
		})
	}
	return apps
}

// SetRunnerApplications replaces what the downloads API answers.
func (g *GitHub) SetRunnerApplications(apps []github.RunnerApplication) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.apps = slices.Clone(apps)
}

// ListRunnerApplications implements runtime.GitHub.
func (g *GitHub) ListRunnerApplications(ctx context.Context, scope github.Scope) ([]github.RunnerApplication, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.begin(ctx, MethodListRunnerApps); err != nil {
		return nil, err
	}
	return slices.Clone(g.apps), nil
}

// StrictGroups makes unknown runner groups ErrNotFound (only AddGroup's exist).
func (g *GitHub) StrictGroups() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.strictGroups = true
}

// AddGroup makes the organization's runner group name have id.
func (g *GitHub) AddGroup(org, name string, id int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.groups[org+"/"+name] = id
}

// FailNext makes the next call of method fail with err (wrap one of the
// error classes of libs/github).
func (g *GitHub) FailNext(method string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures[method] = append(g.failures[method], err)
}

// Calls returns how many times method was called.
func (g *GitHub) Calls(method string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[method]
}

// Register adds a registration directly, as an earlier attempt would have.
func (g *GitHub) Register(scope github.Scope, name string) Runner {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextID++
	r := &Runner{ID: g.nextID, Name: name, Scope: scope, GroupID: 1}
	g.runners[key(scope, name)] = r
	return *r
}

// Runners returns the registrations, sorted by name.
func (g *GitHub) Runners() []Runner {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Runner, 0, len(g.runners))
	for _, r := range g.runners {
		c := *r
		c.Labels = slices.Clone(r.Labels)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Runner) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// JITConfigs returns every JIT configuration the fake handed out (the
// secrets tests look for where they must not be).
func (g *GitHub) JITConfigs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.jits)
}

func key(s github.Scope, name string) string { return s.String() + "/" + name }

// begin counts a call and returns its injected failure, if any.
func (g *GitHub) begin(ctx context.Context, method string) error {
	g.calls[method]++
	if q := g.failures[method]; len(q) > 0 {
		g.failures[method] = q[1:]
		return fmt.Errorf("%s: %w", method, q[0])
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w: %w", method, github.ErrRetryable, err)
	}
	return nil
}

// GenerateJITConfig implements runtime.GitHub.
func (g *GitHub) GenerateJITConfig(ctx context.Context, scope github.Scope, req github.JITRequest) (*github.JITConfig, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.begin(ctx, MethodGenerateJITConfig); err != nil {
		return nil, err
	}
	if req.Name == "" || len(req.Labels) == 0 || req.RunnerGroupID <= 0 {
		return nil, fmt.Errorf("generate jit config for runner %q: invalid request: %w", req.Name, github.ErrPermanent)
	}
	if _, ok := g.runners[key(scope, req.Name)]; ok {
		return nil, fmt.Errorf("generate jit config for runner %s: %w", req.Name, github.ErrConflict)
	}
	g.nextID++
	g.runners[key(scope, req.Name)] = &Runner{
		ID: g.nextID, Name: req.Name, Scope: scope, GroupID: req.RunnerGroupID, Labels: slices.Clone(req.Labels),
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	jit := "fake-jit-" + hex.EncodeToString(b)
	g.jits = append(g.jits, jit)
	return &github.JITConfig{RunnerID: g.nextID, Name: req.Name, Encoded: config.Secret(jit)}, nil
}

// GetRunnerByName implements runtime.GitHub.
func (g *GitHub) GetRunnerByName(ctx context.Context, scope github.Scope, name string) (*github.Runner, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.begin(ctx, MethodGetRunnerByName); err != nil {
		return nil, err
	}
	r, ok := g.runners[key(scope, name)]
	if !ok {
		return nil, fmt.Errorf("get runner %s: %w", name, github.ErrNotFound)
	}
	return &github.Runner{ID: r.ID, Name: r.Name, Status: github.RunnerOffline, Labels: slices.Clone(r.Labels),
		RunnerGroupID: r.GroupID, Ephemeral: true}, nil
}

// DeleteRunner implements runtime.GitHub.
func (g *GitHub) DeleteRunner(ctx context.Context, scope github.Scope, id int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.begin(ctx, MethodDeleteRunner); err != nil {
		return err
	}
	for k, r := range g.runners {
		if r.ID == id && r.Scope == scope {
			delete(g.runners, k)
			return nil
		}
	}
	return fmt.Errorf("delete runner %d: %w", id, github.ErrNotFound)
}

// GetRunnerGroupByName implements runtime.GitHub.
func (g *GitHub) GetRunnerGroupByName(ctx context.Context, org, name string) (*github.RunnerGroup, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.begin(ctx, MethodGetRunnerGroupByName); err != nil {
		return nil, err
	}
	id, ok := g.groups[org+"/"+name]
	if !ok {
		if g.strictGroups {
			return nil, fmt.Errorf("get runner group %s of %s: %w", name, org, github.ErrNotFound)
		}
		g.nextID++
		id = g.nextID
		g.groups[org+"/"+name] = id
	}
	return &github.RunnerGroup{ID: id, Name: name, Visibility: "all"}, nil
}
