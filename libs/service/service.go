// Package service is the common main of every runner-manager binary: flags,
// configuration, JSON logs, the Redis client, the health and metrics server,
// tracing, and graceful shutdown on SIGTERM.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/libs/telemetry"
)

// Version is stamped at build time with -ldflags "-X .../libs/service.Version=...".
var Version = "dev"

// ShutdownTimeout bounds how long a service waits for its work and its HTTP
// server to stop after SIGTERM.
const ShutdownTimeout = 30 * time.Second

// Options describe one binary.
type Options struct {
	// Binary is the program's name: ingress, scheduler, provisioner-docker, ...
	Binary string
	// Listen returns the address of the HTTP server from the configuration.
	Listen func(*config.Config) string
	// MetricsListen returns the address of the metrics listener ("" for
	// none). When nil, it is the metrics_listen of the binary's section:
	// ingress, scheduler, or provisioner for provisioner-<type>.
	MetricsListen func(*config.Config) string
	// Tune, when set, adjusts the HTTP server (timeouts) before it starts.
	Tune func(*config.Config, *http.Server)
	// Env is the binary's environment struct, a pointer to a struct that
	// embeds Env (see Env); nil: Env alone. Run fills it.
	Env any
}

// App is what a service's run function gets.
type App struct {
	Binary string
	// Env is the environment every binary reads (the binary's own
	// variables are in the struct it passed in Options.Env).
	Env    Env
	Config *config.Config
	Log    *slog.Logger
	Redis  redis.UniversalClient
	// HTTP is the router of the main listener. The listener serves before
	// the run function starts (health probes), so a route added by the run
	// function must go through Routes, and a test that sends requests while
	// Run runs must send them through Handler: echo's router is not safe for
	// a route added while it finds another.
	HTTP *echo.Echo
	// MetricsHTTP serves /metrics, /healthz and /readyz on the metrics
	// listener; nil when the binary's metrics_listen is not set, and then
	// HTTP serves /metrics.
	MetricsHTTP *echo.Echo
	Metrics     *prometheus.Registry
	Keys        keys.Keys
	Publisher   *stream.Publisher

	// routes orders adding routes (Routes, write) and serving (Handler, read).
	routes sync.RWMutex

	mu       sync.Mutex
	checks   []readiness
	lastErrs map[string]string // readiness check -> last error logged
	secrets  []string          // values scrubbed from logged errors
}

type readiness struct {
	name  string
	check func(context.Context) error
}

// AddReadiness adds a check to GET /readyz; the service is ready when every
// check passes. Redis is always checked.
func (a *App) AddReadiness(name string, check func(context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, readiness{name, check})
}

// Routes adds routes to HTTP while it may be serving: fn runs while no
// request is being routed.
func (a *App) Routes(fn func(e *echo.Echo)) {
	a.routes.Lock()
	defer a.routes.Unlock()
	fn(a.HTTP)
}

// Handler is HTTP as the main listener serves it: a request is routed while
// no route is being added (Routes).
func (a *App) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.routes.RLock()
		defer a.routes.RUnlock()
		a.HTTP.ServeHTTP(w, r)
	})
}

// Main runs the binary and exits: 0 after a clean shutdown, 1 on an error, 2
// on a usage error. run must return when its context is cancelled.
func Main(opts Options, run func(ctx context.Context, app *App) error) {
	os.Exit(Run(opts, os.Args[1:], os.Stdout, os.Stderr, run))
}

// Run is Main without the exit, for tests.
func Run(opts Options, args []string, stdout, stderr io.Writer, run func(ctx context.Context, app *App) error) int {
	env, err := loadEnv(opts.Env)
	if err != nil {
		fmt.Fprintf(stderr, "%s: environment: %v\n", opts.Binary, err)
		return 2
	}
	fs := flag.NewFlagSet(opts.Binary, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", env.Config, "configuration file (or RM_CONFIG)")
	check := fs.Bool("check-config", false, "validate the configuration, print every problem, and exit (1 when invalid)")
	version := fs.Bool("version", false, "print the version and exit")
	probe := fs.String("probe", "", "GET this URL and exit 0 on a 2xx answer, 1 otherwise (container health checks: images have no shell)")
	listen := fs.String("listen", env.Listen, "override the listen address of the configuration (or RM_LISTEN)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *probe != "" {
		return Probe(*probe, stderr)
	}
	if *version {
		fmt.Fprintf(stdout, "%s %s\n", opts.Binary, Version)
		return 0
	}
	if *configPath == "" {
		fmt.Fprintf(stderr, "%s: no configuration: pass --config FILE or set RM_CONFIG (see deploy/config.example.yaml)\n", opts.Binary)
		return 2
	}
	cfg, err := config.Load(*configPath)
	if *check {
		return printCheck(stdout, stderr, *configPath, cfg, err)
	}
	log := NewLogger(stderr, opts.Binary, env.LogLevel)
	if err != nil {
		log.Error("invalid configuration", "file", *configPath, "error", err.Error())
		return 1
	}
	if *listen != "" {
		addr := *listen
		opts.Listen = func(*config.Config) string { return addr }
	}
	if err := serve(opts, *env, cfg, log, run); err != nil {
		log.Error("stopped with an error", "error", err.Error())
		return 1
	}
	return 0
}

func printCheck(stdout, stderr io.Writer, path string, cfg *config.Config, err error) int {
	if err == nil {
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
		}
		fmt.Fprintf(stdout, "%s: configuration is valid\n", path)
		return 0
	}
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintf(stderr, "%s: %s\n", path, p)
		}
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(ps))
		return 1
	}
	fmt.Fprintf(stderr, "%s: %v\n", path, err)
	return 1
}

// NewLogger returns the JSON logger of a service at level (debug, info, warn,
// error: Env.LogLevel, RM_LOG_LEVEL); anything else is info.
func NewLogger(w io.Writer, binary, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("service", binary)
}

func serve(opts Options, env Env, cfg *config.Config, log *slog.Logger, run func(context.Context, *App) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	shutdownTracing, err := telemetry.SetupTracing(ctx, opts.Binary, Version,
		env.OTLPEndpoint != "" || env.OTLPTracesEndpoint != "")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdownTracing(sctx)
	}()

	rdb, err := NewRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()

	app := newApp(opts.Binary, cfg, log, rdb, metricsListen(opts, cfg))
	app.Env = env
	srv := &http.Server{
		Addr:              opts.Listen(cfg),
		Handler:           app.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	if opts.Tune != nil {
		opts.Tune(cfg, srv)
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", srv.Addr, err)
	}
	log.Info("starting", "version", Version, "listen", ln.Addr().String(), "name", cfg.Name)

	srvErr := make(chan error, 2)
	go func() { srvErr <- srv.Serve(ln) }()
	if app.MetricsHTTP != nil {
		msrv := &http.Server{
			Addr:              metricsListen(opts, cfg),
			Handler:           app.MetricsHTTP,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
		}
		mln, err := net.Listen("tcp", msrv.Addr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("listen on %s (metrics): %w", msrv.Addr, err)
		}
		log.Info("metrics listening", "listen", mln.Addr().String())
		go func() { srvErr <- msrv.Serve(mln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = msrv.Shutdown(sctx)
		}()
	}
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, app) }()

	var result error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", ShutdownTimeout.String())
		select {
		case err := <-runErr:
			result = err
		case <-time.After(ShutdownTimeout):
			result = errors.New("work did not stop within the shutdown timeout")
		}
	case err := <-runErr:
		result = err
		if result == nil {
			result = errors.New("service stopped by itself")
		}
	case err := <-srvErr:
		result = fmt.Errorf("http server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if errors.Is(result, context.Canceled) {
		result = nil
	}
	if result == nil {
		log.Info("stopped")
	}
	return result
}

// metricsListen is the address of the metrics listener of the binary, or "".
func metricsListen(opts Options, cfg *config.Config) string {
	if opts.MetricsListen != nil {
		return opts.MetricsListen(cfg)
	}
	return sectionMetricsListen(opts.Binary, cfg)
}

func sectionMetricsListen(binary string, cfg *config.Config) string {
	switch {
	case binary == "ingress":
		return cfg.Ingress.MetricsListen
	case binary == "scheduler":
		return cfg.Scheduler.MetricsListen
	case strings.HasPrefix(binary, "provisioner"):
		return cfg.Provisioner.MetricsListen
	}
	return ""
}

// NewApp builds the App of a service: the Prometheus registry, and the echo
// instance serving /healthz, /readyz and /metrics (or, when the binary's
// metrics_listen is set, /healthz and /readyz, with MetricsHTTP serving all
// three). Tests use it directly.
func NewApp(binary string, cfg *config.Config, log *slog.Logger, rdb redis.UniversalClient) *App {
	return newApp(binary, cfg, log, rdb, sectionMetricsListen(binary, cfg))
}

func newApp(binary string, cfg *config.Config, log *slog.Logger, rdb redis.UniversalClient, metricsAddr string) *App {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "runner_manager_build_info",
		Help:        "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"service": binary, "version": Version},
	})
	info.Set(1)
	reg.MustRegister(info)

	newEcho := func() *echo.Echo {
		e := echo.New()
		e.HideBanner = true
		e.HidePort = true
		presizeParams(e)
		return e
	}
	e := newEcho()
	app := &App{
		Binary:    binary,
		Config:    cfg,
		Log:       log,
		Redis:     rdb,
		HTTP:      e,
		Metrics:   reg,
		Keys:      keys.New(cfg.Name),
		Publisher: stream.NewPublisher(rdb, cfg.Streams.MaxLen),
		lastErrs:  map[string]string{},
		secrets:   redisSecrets(cfg),
	}
	app.AddReadiness("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	metrics := echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	health := func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") }
	e.GET("/healthz", health)
	e.GET("/readyz", app.readyz)
	if metricsAddr == "" {
		e.GET("/metrics", metrics)
	} else {
		// Load balancers probe the main port: health stays there too.
		m := newEcho()
		m.GET("/healthz", health)
		m.GET("/readyz", app.readyz)
		m.GET("/metrics", metrics)
		app.MetricsHTTP = m
	}
	return app
}

// maxRouteParams bounds the path parameters of any route a service adds.
const maxRouteParams = 8

// presizeParams makes every context echo pools hold room for maxRouteParams
// path parameters. The server answers (health probes) before a service's
// run function adds its routes, and echo sizes a pooled context's parameter
// values by the routes known when it was made: a context pooled before a
// route with a parameter was added made that route's requests panic in the
// router (index out of range, the connection dropped). A route that only an
// unused method reaches raises echo's count from the start.
func presizeParams(e *echo.Echo) {
	path := ""
	for i := range maxRouteParams {
		path += "/:p" + strconv.Itoa(i)
	}
	e.Add("X-PRESIZE", path, func(c echo.Context) error { return echo.ErrMethodNotAllowed })
}

func (a *App) readyz(c echo.Context) error {
	a.mu.Lock()
	checks := append([]readiness(nil), a.checks...)
	a.mu.Unlock()
	var failed []string
	for _, r := range checks {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		err := r.check(ctx)
		cancel()
		a.logReadiness(r.name, err)
		if err != nil {
			// The error may name an address or carry a URL: the answer,
			// often reachable from outside, names the check only.
			failed = append(failed, r.name+": not ready")
		}
	}
	if len(failed) > 0 {
		return c.String(http.StatusServiceUnavailable, "not ready\n"+strings.Join(failed, "\n")+"\n")
	}
	return c.String(http.StatusOK, "ready\n")
}

// logReadiness logs a check's error when it changes (not at every probe),
// and its recovery, with the Redis passwords and URL credentials scrubbed.
func (a *App) logReadiness(name string, err error) {
	msg := ""
	if err != nil {
		msg = Redact(err.Error(), a.secrets...)
	}
	a.mu.Lock()
	last, seen := a.lastErrs[name]
	a.lastErrs[name] = msg
	a.mu.Unlock()
	switch {
	case msg != "" && msg != last:
		a.Log.Warn("not ready", "check", name, "error", msg)
	case msg == "" && seen && last != "":
		a.Log.Info("ready again", "check", name)
	}
}

// Probe GETs url with a short timeout: 0 on a 2xx answer, 1 otherwise. It is
// the health check of images that have no shell and no curl.
func Probe(url string, stderr io.Writer) int {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "probe %s: %v\n", url, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "probe %s: %s\n", url, resp.Status)
		return 1
	}
	return 0
}
