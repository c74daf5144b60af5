package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/keys"
)

// Options describe the processes of one measurement.
type Options struct {
	// Name of the manager ({P}).
	Name string
	// Dir receives the configuration, Redis's files and one log per process.
	Dir string
	// BinDir holds the scheduler, fakegithub and ingress binaries (make build).
	BinDir string
	// Groups of the configuration.
	Groups []config.RunnerGroup
	// Schedulers is the number of scheduler replicas (0: none).
	Schedulers int
	// Ingress starts the ingress too (the fake GitHub then sends its webhooks to it).
	Ingress bool
	// Configure edits the configuration before it is written.
	Configure func(*config.Config)
}

// System is a running set of processes: Redis, the fake GitHub, optionally
// the ingress, and the schedulers.
type System struct {
	Opts       Options
	Config     *config.Config
	ConfigPath string
	Keys       keys.Keys

	Redis      *Proc
	RedisAddr  string
	Fake       *Proc
	FakeURL    string
	Ingress    *Proc
	IngressURL string
	Schedulers []*Proc

	rdb *redis.Client
}

// Credentials of the local system: they guard nothing, everything runs on
// loopback against the fake GitHub.
const (
	githubToken   = "bench-github-token"
	webhookSecret = "bench-webhook-secret"
	apiToken      = "bench-api-token"
)

// Start starts Redis (append-only file with fsync every second, as in
// production), the fake GitHub, the ingress when asked, and the schedulers,
// each once healthy.
func Start(ctx context.Context, o Options) (_ *System, err error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.Dir, err)
	}
	s := &System{Opts: o, Keys: keys.New(o.Name)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	redisPort, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	fakePort, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	ingressPort, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	s.RedisAddr = fmt.Sprintf("127.0.0.1:%d", redisPort)
	s.FakeURL = fmt.Sprintf("http://127.0.0.1:%d", fakePort)
	s.IngressURL = fmt.Sprintf("http://127.0.0.1:%d", ingressPort)
	if err := s.writeConfig(ingressPort); err != nil {
		return nil, err
	}

	s.Redis = &Proc{
		Name: "redis",
		Bin:  "redis-server",
		Args: []string{
			"--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--dir", o.Dir,
			"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
			"--protected-mode", "no",
		},
		Log: filepath.Join(o.Dir, "redis.log"),
	}
	if err := s.Redis.Start(ctx); err != nil {
		return nil, err
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: s.RedisAddr, PoolSize: 32})
	if err := s.waitRedis(ctx); err != nil {
		return nil, err
	}

	s.Fake = &Proc{
		Name: "fakegithub",
		Bin:  filepath.Join(o.BinDir, "fakegithub"),
		Args: []string{
			"--listen", fmt.Sprintf("127.0.0.1:%d", fakePort),
			"--webhook-url", s.IngressURL + "/webhook",
			"--webhook-secret", webhookSecret,
			"--token", githubToken,
		},
		Log:    filepath.Join(o.Dir, "fakegithub.log"),
		Health: s.FakeURL + "/_fake/stats",
	}
	if err := s.Fake.Start(ctx); err != nil {
		return nil, err
	}
	if o.Ingress {
		s.Ingress = s.service("ingress", "ingress", ingressPort)
		if err := s.Ingress.Start(ctx); err != nil {
			return nil, err
		}
	}
	for range o.Schedulers {
		if _, err := s.AddScheduler(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *System) waitRedis(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.rdb.Ping(pctx).Err()
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

// Client is a client of the system's Redis.
func (s *System) Client() *redis.Client { return s.rdb }

// AddScheduler starts one more scheduler replica.
func (s *System) AddScheduler(ctx context.Context) (*Proc, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	p := s.service("scheduler", fmt.Sprintf("scheduler-%d", len(s.Schedulers)), port)
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	s.Schedulers = append(s.Schedulers, p)
	return p, nil
}

// Pids returns the process ids of the running services, by name.
func (s *System) Pids() map[string]int {
	out := map[string]int{}
	for _, p := range append([]*Proc{s.Redis, s.Fake, s.Ingress}, s.Schedulers...) {
		if p != nil && p.Pid() != 0 {
			out[p.Name] = p.Pid()
		}
	}
	return out
}

func (s *System) service(binary, replica string, port int) *Proc {
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	return &Proc{
		Name: replica,
		Bin:  filepath.Join(s.Opts.BinDir, binary),
		Args: []string{"--config", s.ConfigPath},
		Env: []string{
			"POD_NAME=" + replica,
			"RM_LISTEN=" + listen,
			"RM_REDIS_URL=redis://" + s.RedisAddr + "/0",
			"RM_GITHUB_TOKEN=" + githubToken,
			"RM_GITHUB_WEBHOOK_SECRET=" + webhookSecret,
			"RM_API_TOKEN=" + apiToken,
		},
		Log:    filepath.Join(s.Opts.Dir, replica+".log"),
		Health: "http://" + listen + "/healthz",
	}
}

func (s *System) writeConfig(ingressPort int) error {
	o := s.Opts
	cfg := config.Config{
		Name:         o.Name,
		GitHub:       config.GitHub{BaseURL: s.FakeURL + "/"},
		Redis:        config.Redis{URL: "redis://" + s.RedisAddr + "/0"},
		RunnerGroups: o.Groups,
		Ingress:      config.Ingress{Listen: fmt.Sprintf("127.0.0.1:%d", ingressPort)},
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	cfg.SetDefaults()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode the configuration: %w", err)
	}
	s.ConfigPath = filepath.Join(o.Dir, "config.yaml")
	if err := os.WriteFile(s.ConfigPath, b, 0o644); err != nil {
		return fmt.Errorf("write the configuration: %w", err)
	}
	// The secrets come from the environment of each service; the in-process
	// parts read the token from here.
	cfg.Secrets.GitHubToken = githubToken
	s.Config = &cfg
	return nil
}

// Close stops every process, schedulers first.
func (s *System) Close() {
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
}

// Group is a runner group of the Docker backend type (the in-process
// provisioner consumes {P}:provision:docker) serving jobs with labels.
func Group(name string, maxRunners int, labels ...string) config.RunnerGroup {
	return harness.DockerGroup(name, maxRunners, 0, labels...)
}

// Org is the organization of the groups.
const Org = harness.Org
