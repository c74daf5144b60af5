package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Fixed development credentials of a local system. They guard nothing real:
// the system only talks to its own fake GitHub on loopback.
const (
	DevGitHubToken   = "local-dev-github-token"
	DevWebhookSecret = "local-dev-webhook-secret"
	DevAPIToken      = "local-dev-api-token"
)

// Options describe one local system.
type Options struct {
	// Name of the manager ({P}); also the containers' ownership label.
	Name string
	// Dir receives the configuration and one log file per process.
	Dir string
	// BinDir holds the binaries (make build, or Build).
	BinDir string
	// Groups of the configuration; the GitHub organization is "local-org".
	Groups []config.RunnerGroup
	// Durations of the configuration; zero keeps the harness's short defaults.
	HealthCheckInterval, TimeToStart, TimeToLive, ReconcileInterval time.Duration
	// Replicas (default 1 each).
	Schedulers, Provisioners int
	// NoIngress starts no ingress (events are published to Redis directly);
	// NoProvisioners starts no provisioner.
	NoIngress, NoProvisioners bool
	// Provisioner is the provisioner binary of AddProvisioner (default
	// provisioner-docker; the benchmarks run provisioner-bench), with
	// ProvisionerEnv added to its environment.
	Provisioner    string
	ProvisionerEnv []string
	// ProductionDefaults writes the configuration's defaults (as in
	// production) instead of the harness's short intervals: the benchmarks
	// measure what users run.
	ProductionDefaults bool
	// FakeArgs are extra flags of fakegithub (for example --simulate 1).
	FakeArgs []string
	// Ports of the fixed endpoints; 0 picks free ports.
	FakePort, IngressPort, RedisPort int
	// RedisAppendFsync, when set, replaces Redis's appendfsync policy
	// ("always" loses nothing on a crash; the default is "everysec").
	RedisAppendFsync string
	// GitHubApp authenticates the services as a GitHub App (JWT, then
	// installation tokens) rather than with a token: the fake checks the JWTs,
	// and the scheduler's missed-webhook recovery (which reads the App's
	// webhook deliveries) runs.
	GitHubApp bool
	// AppInstallations, when set, install the App (GitHubApp is implied) on
	// these accounts only, login → installation id, and the services get no
	// RM_GITHUB_APP_INSTALLATION_ID: they look each account's installation
	// up through the App.
	AppInstallations map[string]int64
	// Configure, when set, edits the configuration before it is written
	// (provisioner.call_timeout, streams.reclaim_min_idle, ...).
	Configure func(*config.Config)
}

// System is a running local system.
type System struct {
	Opts       Options
	ConfigPath string
	Config     *config.Config

	Redis        *Proc
	RedisURL     string
	Fake         *Proc
	FakeURL      string
	Ingress      *Proc
	IngressURL   string
	Schedulers   []*Proc
	Provisioners []*Proc
	// SchedulerURLs are the admin API base URLs of the schedulers, in order.
	SchedulerURLs []string
	// ProvisionerURLs are the base URLs (health, metrics) of the provisioners, in order.
	ProvisionerURLs []string

	rdb    *redis.Client
	appEnv []string
}

// Org is the GitHub organization of the local system.
const Org = "local-org"

// EnvBuildOnly, when set to a comma-separated list of binary names (e.g.
// "ingress,scheduler,provisioner-docker,fakegithub,fake-runner"), limits Build
// to those: a developer's quicker loop on some scenarios.
const EnvBuildOnly = "RM_E2E_BUILD_ONLY"

// Build compiles the binaries the harness runs into dir. Each is built in
// its own module's directory, so that the build works with the workspace
// (go.work) and with GOWORK=off alike: every module's go.mod has the replace
// directives of the sibling modules it needs.
func Build(ctx context.Context, repoRoot, dir string) error {
	pkgs := map[string][2]string{ // name → module directory, package
		"ingress":            {"services/ingress", "./cmd/ingress"},
		"scheduler":          {"services/scheduler", "./cmd/scheduler"},
		"provisioner-docker": {"services/provisioner", "./cmd/provisioner-docker"},
		"provisioner-aws":    {"services/provisioner", "./cmd/provisioner-aws"},
		"provisioner-gcp":    {"services/provisioner", "./cmd/provisioner-gcp"},
		"fakegithub":         {"e2e", "./cmd/fakegithub"},
		"fake-runner":        {"e2e", "./cmd/fake-runner"},
	}
	only := map[string]bool{}
	for _, name := range strings.Split(os.Getenv(EnvBuildOnly), ",") {
		if name = strings.TrimSpace(name); name != "" {
			only[name] = true
		}
	}
	out, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for name, pkg := range pkgs {
		if len(only) > 0 && !only[name] {
			continue
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(out, name), pkg[1])
		cmd.Dir = filepath.Join(repoRoot, pkg[0])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	return nil
}

// RepoRoot finds the repository's top directory from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory")
		}
		dir = parent
	}
}

// Start starts Redis, the fake GitHub, the ingress, the schedulers and the
// provisioners, each waiting until healthy.
func Start(ctx context.Context, o Options) (*System, error) {
	if o.Schedulers == 0 {
		o.Schedulers = 1
	}
	if o.Provisioners == 0 && !o.NoProvisioners {
		o.Provisioners = 1
	}
	if o.Provisioner == "" {
		o.Provisioner = "provisioner-docker"
	}
	s := &System{Opts: o}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var err error
	port := func(p *int) int {
		if *p == 0 && err == nil {
			*p, err = FreePort()
		}
		return *p
	}
	redisPort, fakePort, ingressPort := port(&o.RedisPort), port(&o.FakePort), port(&o.IngressPort)
	if err != nil {
		return nil, err
	}
	s.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort)
	s.FakeURL = fmt.Sprintf("http://127.0.0.1:%d", fakePort)
	s.IngressURL = fmt.Sprintf("http://127.0.0.1:%d", ingressPort)

	if err := s.writeConfig(ingressPort); err != nil {
		return nil, err
	}
	s.Redis = Redis(o.Dir, redisPort, o.RedisAppendFsync)
	if err := s.StartRedis(ctx); err != nil {
		return nil, err
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", redisPort)})

	var appEnv, appArgs []string
	if o.GitHubApp || len(o.AppInstallations) > 0 {
		if appEnv, appArgs, err = writeAppKey(o.Dir, o.AppInstallations); err != nil {
			return nil, err
		}
	}
	s.appEnv = appEnv
	s.Fake = &Proc{
		Name: "fakegithub",
		Bin:  filepath.Join(o.BinDir, "fakegithub"),
		Args: append([]string{
			"--listen", fmt.Sprintf("127.0.0.1:%d", fakePort),
			"--webhook-url", s.IngressURL + "/webhook",
			"--webhook-secret", DevWebhookSecret,
			"--token", DevGitHubToken,
		}, append(appArgs, o.FakeArgs...)...),
		Log:    filepath.Join(o.Dir, "fakegithub.log"),
		Health: s.FakeURL + "/_fake/stats",
	}
	if err := s.Fake.Start(ctx); err != nil {
		return nil, err
	}
	if !o.NoIngress {
		s.Ingress = s.service("ingress", "ingress", ingressPort)
		if err := s.Ingress.Start(ctx); err != nil {
			return nil, err
		}
	}
	for i := 0; i < o.Schedulers; i++ {
		if _, err := s.AddScheduler(ctx); err != nil {
			return nil, err
		}
	}
	for i := 0; i < o.Provisioners; i++ {
		if _, err := s.AddProvisioner(ctx); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

// StartRedis (re)starts Redis and waits until it answers.
func (s *System) StartRedis(ctx context.Context) error {
	if err := s.Redis.Start(ctx); err != nil {
		return err
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(s.RedisURL, "redis://"), "/0")
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis did not answer: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Redis client of the system's Redis, for assertions.
func (s *System) RedisClient() *redis.Client { return s.rdb }

// AddScheduler starts one more scheduler replica.
func (s *System) AddScheduler(ctx context.Context) (*Proc, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p := s.service("scheduler", fmt.Sprintf("scheduler-%d", len(s.Schedulers)), port)
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	s.Schedulers = append(s.Schedulers, p)
	s.SchedulerURLs = append(s.SchedulerURLs, fmt.Sprintf("http://127.0.0.1:%d", port))
	return p, nil
}

// AddProvisioner starts one more provisioner replica (Options.Provisioner).
func (s *System) AddProvisioner(ctx context.Context) (*Proc, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p := s.service(s.Opts.Provisioner, fmt.Sprintf("%s-%d", s.Opts.Provisioner, len(s.Provisioners)), port)
	p.Env = append(p.Env, s.Opts.ProvisionerEnv...)
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	s.Provisioners = append(s.Provisioners, p)
	s.ProvisionerURLs = append(s.ProvisionerURLs, fmt.Sprintf("http://127.0.0.1:%d", port))
	return p, nil
}

// service describes a service process; replica is its stable consumer name
// (POD_NAME), so that a restarted replica reads its own pending entries first.
func (s *System) service(binary, replica string, port int) *Proc {
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	return &Proc{
		Name: replica,
		Bin:  filepath.Join(s.Opts.BinDir, binary),
		Args: []string{"--config", s.ConfigPath},
		Env: append([]string{
			"POD_NAME=" + replica,
			"RM_LISTEN=" + listen,
			"RM_REDIS_URL=" + s.RedisURL,
			"RM_GITHUB_TOKEN=" + DevGitHubToken,
			"RM_GITHUB_WEBHOOK_SECRET=" + DevWebhookSecret,
			"RM_API_TOKEN=" + DevAPIToken,
		}, s.appEnv...),
		Log:    filepath.Join(s.Opts.Dir, replica+".log"),
		Health: "http://" + listen + "/healthz",
	}
}

// Pids returns the process ids of the running processes, by name.
func (s *System) Pids() map[string]int {
	out := map[string]int{}
	for _, p := range append(append([]*Proc{s.Redis, s.Fake, s.Ingress}, s.Schedulers...), s.Provisioners...) {
		if p != nil && p.Pid() != 0 {
			out[p.Name] = p.Pid()
		}
	}
	return out
}

func (s *System) writeConfig(ingressPort int) error {
	o := s.Opts
	if o.ProductionDefaults {
		s.Config = &config.Config{
			Name:         o.Name,
			GitHub:       config.GitHub{BaseURL: s.FakeURL + "/"},
			Redis:        config.Redis{URL: s.RedisURL},
			RunnerGroups: o.Groups,
			Ingress:      config.Ingress{Listen: fmt.Sprintf("127.0.0.1:%d", ingressPort)},
		}
		return s.finishConfig()
	}
	cfg := config.Config{
		Name:                o.Name,
		GitHub:              config.GitHub{BaseURL: s.FakeURL + "/"},
		Redis:               config.Redis{URL: s.RedisURL},
		HealthCheckInterval: orDefault(o.HealthCheckInterval, 30*time.Second),
		TimeToStart:         orDefault(o.TimeToStart, 2*time.Minute),
		TimeToLive:          orDefault(o.TimeToLive, time.Hour),
		RunnerGroups:        o.Groups,
		Ingress:             config.Ingress{Listen: fmt.Sprintf("127.0.0.1:%d", ingressPort)},
		Scheduler: config.Scheduler{
			ReconcileInterval:  orDefault(o.ReconcileInterval, time.Second),
			LeaseTTL:           5 * time.Second,
			CreateRetryBackoff: time.Second,
			// A missed "queued" webhook is recovered within seconds, not
			// within the production default of 2 minutes.
			RecoveryInterval: 15 * time.Second,
		},
		Provisioner: config.Provisioner{CallTimeout: time.Minute},
		Streams:     config.Streams{ReclaimMinIdle: 90 * time.Second},
	}
	s.Config = &cfg
	return s.finishConfig()
}

// finishConfig applies Options.Configure and the defaults to s.Config and
// writes it.
func (s *System) finishConfig() error {
	if s.Opts.Configure != nil {
		s.Opts.Configure(s.Config)
	}
	// Every field is written: zeros would be read as explicit (invalid) values.
	s.Config.SetDefaults()
	b, err := yaml.Marshal(s.Config)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	s.ConfigPath = filepath.Join(s.Opts.Dir, "config.yaml")
	return os.WriteFile(s.ConfigPath, b, 0o644)
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// DockerGroup is a runner group on the Docker backend running the local
// fake-runner image with host networking (so it reaches the fake GitHub on
// loopback).
func DockerGroup(name string, max, min int, labels ...string) config.RunnerGroup {
	return config.RunnerGroup{
		Name:         name,
		Organization: Org,
		MaxRunners:   max,
		MinRunners:   min,
		Labels:       labels,
		Backend: config.Backend{
			Type: "docker",
			Docker: &config.DockerSpec{
				Image:       "runner-manager/fake-runner:dev",
				Network:     "host",
				StopTimeout: 5 * time.Second,
			},
		},
	}
}

// Close stops every process (SIGTERM) and removes the manager's containers.
func (s *System) Close() {
	for _, p := range s.Provisioners {
		p.Stop(15 * time.Second)
	}
	for _, p := range s.Schedulers {
		p.Stop(15 * time.Second)
	}
	for _, p := range []*Proc{s.Ingress, s.Fake} {
		if p != nil {
			p.Stop(10 * time.Second)
		}
	}
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
	if s.Redis != nil {
		s.Redis.Stop(10 * time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.RemoveContainers(ctx)
}

// Prepare builds the binaries into dir and the local fake-runner image: what
// a test package that runs the system needs before its first test.
func Prepare(ctx context.Context, dir string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	if err := Build(ctx, root, dir); err != nil {
		return err
	}
	img := exec.CommandContext(ctx, filepath.Join(root, "scripts", "build-fake-runner-image.sh"))
	img.Dir = root
	if out, err := img.CombinedOutput(); err != nil {
		return fmt.Errorf("build the fake-runner image: %v\n%s", err, out)
	}
	return nil
}
