// Package fakerunner is a stand-in for the GitHub Actions runner: it reads a JIT
// configuration issued by the fake GitHub (package fakegithub), connects to it,
// takes one job, "runs" it for the job's duration, reports it done and returns,
// like an ephemeral runner. See package runnerapi for the protocol.
package fakerunner

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub/runnerapi"
)

// Environment variables read by ConfigFromEnv.
const (
	// EnvJITConfig is the variable the real runner reads its JIT configuration from.
	EnvJITConfig = "ACTIONS_RUNNER_INPUT_JITCONFIG"
	// EnvNeverConnect=1: never connect, wait for a signal (a runner that never
	// comes online).
	EnvNeverConnect = "FAKE_RUNNER_NEVER_CONNECT"
	// EnvGitHubURL overrides the fake's URL carried by the JIT configuration.
	EnvGitHubURL = "FAKE_RUNNER_GITHUB_URL"
	// EnvConnectTimeout bounds the attempts to reach the fake (Go duration).
	EnvConnectTimeout = "FAKE_RUNNER_CONNECT_TIMEOUT"
	// EnvNeverConnectUntil (RFC 3339 time): a runner started before that
	// instant never connects, one started after it behaves normally. A group
	// with it has its first runners never come online and later ones serve.
	EnvNeverConnectUntil = "FAKE_RUNNER_NEVER_CONNECT_UNTIL"
)

// Defaults of Config.
const (
	DefaultConnectTimeout = 2 * time.Minute
	DefaultIdleTimeout    = time.Minute
)

// Errors Run returns for the ends a caller may branch on.
var (
	// ErrRemoved: the registration was deleted or is used up.
	ErrRemoved = errors.New("runner registration removed")
	// ErrRefused: the fake refused the runner (bad secret, disconnected by a test).
	ErrRefused = errors.New("runner refused by github")
	// ErrLost: the connection was lost while running the job.
	ErrLost = errors.New("lost connection while running a job")
)

// Config of a runner.
type Config struct {
	// JITConfig is the encoded JIT configuration. A credential: never logged.
	JITConfig string
	// GitHubURL, when set, replaces the URL in the JIT configuration.
	GitHubURL string
	// NeverConnect makes Run wait for ctx without connecting.
	NeverConnect bool
	// ConnectTimeout bounds the attempts to connect (default 2 minutes).
	ConnectTimeout time.Duration
	// IdleTimeout: a session silent that long (no message, not even the fake's
	// keep-alive ping) is taken as lost (default 1 minute).
	IdleTimeout time.Duration
	// Logger; nil: discard.
	Logger *slog.Logger
	// HTTPClient; nil: a client without timeout (the session is a long stream).
	HTTPClient *http.Client
}

// ConfigFromEnv reads the configuration from the environment.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		JITConfig:    getenv(EnvJITConfig),
		GitHubURL:    getenv(EnvGitHubURL),
		NeverConnect: getenv(EnvNeverConnect) == "1" || strings.EqualFold(getenv(EnvNeverConnect), "true"),
	}
	if v := getenv(EnvConnectTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("%s: %w", EnvConnectTimeout, err)
		}
		c.ConnectTimeout = d
	}
	if v := getenv(EnvNeverConnectUntil); v != "" {
		until, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return c, fmt.Errorf("%s: %w", EnvNeverConnectUntil, err)
		}
		if time.Now().Before(until) {
			c.NeverConnect = true
		}
	}
	if c.JITConfig == "" && !c.NeverConnect {
		return c, fmt.Errorf("%s is not set", EnvJITConfig)
	}
	return c, nil
}

// Run is the life of one ephemeral runner. It returns nil once its job is done
// (or cancelled), ctx.Err() when ctx is cancelled (reporting nothing), or an error.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.NeverConnect {
		log.Info("never connecting, as asked")
		<-ctx.Done()
		return ctx.Err()
	}
	jit, err := runnerapi.DecodeJITConfig(cfg.JITConfig)
	if err != nil {
		return err
	}
	r := &session{
		jit:     jit,
		url:     strings.TrimRight(cmp.Or(cfg.GitHubURL, jit.URL), "/"),
		client:  cmp.Or(cfg.HTTPClient, &http.Client{}),
		log:     log.With("runner", jit.RunnerName),
		timeout: cmp.Or(cfg.ConnectTimeout, DefaultConnectTimeout),
		idle:    cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout),
	}
	return r.run(ctx)
}

type session struct {
	jit     runnerapi.JITConfig
	url     string
	client  *http.Client
	log     *slog.Logger
	timeout time.Duration
	idle    time.Duration
}

func (r *session) run(ctx context.Context) error {
	var running *runnerapi.Job
	var done <-chan time.Time
	for {
		body, err := r.connect(ctx)
		if err != nil {
			return err
		}
		msgs := make(chan runnerapi.Message)
		streamErr := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(body)
			for sc.Scan() {
				var m runnerapi.Message
				if json.Unmarshal(sc.Bytes(), &m) != nil {
					continue
				}
				select {
				case msgs <- m:
				case <-ctx.Done():
					return
				}
			}
			streamErr <- cmp.Or(sc.Err(), io.EOF)
		}()
		idle := time.NewTimer(r.idle)
	loop:
		for {
			select {
			case <-idle.C:
				r.log.Warn("session silent, reconnecting")
				_ = body.Close() // ends the reader: handled as a closed stream
				idle.Reset(r.idle)
			case <-ctx.Done():
				_ = body.Close()
				r.log.Info("stopping on signal", "running_job", running != nil)
				return ctx.Err()
			case <-streamErr:
				_ = body.Close()
				if running != nil {
					return ErrLost
				}
				r.log.Info("connection closed, reconnecting")
				idle.Stop()
				break loop
			case <-done:
				err := r.complete(ctx, running.ID)
				_ = body.Close()
				return err
			case m := <-msgs:
				idle.Reset(r.idle)
				switch m.Type {
				case runnerapi.TypeHello:
					r.log.Info("connected", "runner_id", r.jit.RunnerID)
				case runnerapi.TypeJob:
					if running != nil || m.Job == nil {
						continue
					}
					running = m.Job
					r.log.Info("running job", "job_id", m.Job.ID, "duration_ms", m.Job.DurationMS)
					done = time.After(time.Duration(m.Job.DurationMS) * time.Millisecond)
				case runnerapi.TypeCancel:
					r.log.Info("job cancelled")
					_ = body.Close()
					return nil
				case runnerapi.TypeRemoved:
					_ = body.Close()
					return ErrRemoved
				}
			}
		}
	}
}

// connect opens the session stream, retrying while the fake is unreachable.
func (r *session) connect(ctx context.Context) (io.ReadCloser, error) {
	deadline := time.Now().Add(r.timeout)
	backoff := 100 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+runnerapi.ConnectPath(r.jit.RunnerID), nil)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+r.jit.Secret)
		resp, err := r.client.Do(req)
		if err == nil {
			switch {
			case resp.StatusCode == http.StatusOK:
				return resp.Body, nil
			case resp.StatusCode == http.StatusGone:
				_ = resp.Body.Close()
				return nil, ErrRemoved
			case resp.StatusCode < 500:
				_ = resp.Body.Close()
				return nil, fmt.Errorf("connect: %w: status %d", ErrRefused, resp.StatusCode)
			}
			_ = resp.Body.Close()
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connect to %s: %w", r.url, err)
		}
		r.log.Warn("cannot reach github, retrying", "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (r *session) complete(ctx context.Context, jobID int64) error {
	body, _ := json.Marshal(runnerapi.Completion{Conclusion: "success"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+runnerapi.CompletePath(r.jit.RunnerID, jobID), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report job %d: %w", jobID, err)
	}
	req.Header.Set("Authorization", "Bearer "+r.jit.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("report job %d: %w", jobID, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("report job %d: status %d", jobID, resp.StatusCode)
	}
	r.log.Info("job done", "job_id", jobID)
	return nil
}
