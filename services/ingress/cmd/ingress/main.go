// Command ingress receives GitHub's webhooks on POST /webhook, verifies them
// and publishes each accepted workflow_job to the {P}:events stream.
package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/services/ingress/internal/webhook"
)

// environment is what the ingress reads from the environment.
type environment struct {
	service.Env
	// PprofListen, when set, serves net/http/pprof on this address.
	PprofListen string `envconfig:"RM_INGRESS_PPROF_LISTEN"`
}

func main() {
	var env environment
	service.Main(service.Options{
		Binary: "ingress",
		Listen: func(c *config.Config) string { return c.Ingress.Listen },
		Tune:   tune,
		Env:    &env,
	}, func(ctx context.Context, app *service.App) error { return run(ctx, app, env) })
}

// tune applies the ingress's HTTP timeouts to the server.
func tune(c *config.Config, s *http.Server) {
	set := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	set(&s.ReadHeaderTimeout, c.Ingress.ReadHeaderTimeout)
	set(&s.ReadTimeout, c.Ingress.ReadTimeout)
	set(&s.WriteTimeout, c.Ingress.WriteTimeout)
	set(&s.IdleTimeout, c.Ingress.IdleTimeout)
}

func run(ctx context.Context, app *service.App, env environment) error {
	h, err := webhook.NewHandler(webhook.Options{
		Keys:    app.Keys,
		Redis:   app.Redis,
		Secrets: app.Config.Secrets,
		MaxBody: app.Config.Ingress.MaxBodyBytes,
		// The body's own deadline replaces the server's read deadline once a
		// request has a read slot: never give it longer than read_timeout.
		BodyTimeout: min(webhook.DefaultBodyTimeout, app.Config.Ingress.ReadTimeout),
		MaxLen:      app.Config.Streams.MaxLen,
		Metrics:     app.Metrics,
		Logger:      app.Log,
	})
	if err != nil {
		return err
	}
	app.Routes(func(e *echo.Echo) { e.POST("/webhook", h.Echo()) })
	if env.PprofListen != "" {
		servePprof(ctx, app, env.PprofListen)
	}
	<-ctx.Done()
	return nil
}

// servePprof serves net/http/pprof on its own listener (never on the public
// one), for profiling: RM_INGRESS_PPROF_LISTEN=127.0.0.1:6060.
func servePprof(ctx context.Context, app *service.App, addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		app.Log.Info("pprof listening", "listen", addr)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			app.Log.Error("pprof server", "error", err.Error())
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
}
