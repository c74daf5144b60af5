// Command fakegithub serves the fake GitHub of package fakegithub, for the local
// `make run`, the compose environment and manual exploration. Every flag can also
// be set by the environment variable FAKEGITHUB_<FLAG> (upper case, '-' as '_').
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakegithub:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("fakegithub", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "address to listen on")
	probe := fs.String("probe", "", "health probe: GET this URL, exit 0 on 2xx (for images without a shell)")
	publicURL := fs.String("public-url", "", "URL runners reach the fake at, put in JIT configs (default: the URL the client used)")
	webhookURL := fs.String("webhook-url", "", "URL receiving the webhooks")
	webhookSecret := fs.String("webhook-secret", "", "secret signing the webhooks")
	appID := fs.Int64("app-id", 0, "GitHub App id (enables JWT checks with --app-public-key-file)")
	appKeyFile := fs.String("app-public-key-file", "", "PEM file of the App's RSA public key")
	installationID := fs.Int64("installation-id", fakegithub.DefaultInstallationID, "the App's installation id (on every account, without --installations)")
	installations := fs.String("installations", "", "the App's installations, comma-separated ACCOUNT=ID (the App is then installed on these accounts only)")
	tokens := fs.String("token", "", "comma-separated static tokens accepted on every endpoint")
	anyToken := fs.Bool("accept-any-token", false, "accept any Authorization header (development)")
	seed := fs.Uint64("seed", 1, "seed of the fault and simulation randomness")
	simulate := fs.Float64("simulate", 0, "queue this many jobs per second (0: off)")
	simLabels := fs.String("simulate-labels", "self-hosted,linux,small;self-hosted,linux,large", "label sets of simulated jobs, ';'-separated")
	simOwner := fs.String("simulate-owner", "my-org", "owner of simulated jobs")
	simRepo := fs.String("simulate-repo", "my-repo", "repository of simulated jobs")
	simDuration := fs.String("simulate-duration", "5s-30s", "duration range of simulated jobs, MIN-MAX or D")
	fs.VisitAll(func(f *flag.Flag) {
		env := "FAKEGITHUB_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			_ = f.Value.Set(v)
			f.DefValue = v
		}
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *probe != "" {
		return probeURL(*probe)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	opts := fakegithub.Options{
		WebhookURL:     *webhookURL,
		WebhookSecret:  *webhookSecret,
		PublicURL:      *publicURL,
		AppID:          *appID,
		InstallationID: *installationID,
		AcceptAnyToken: *anyToken,
		Seed:           *seed,
		Logger:         log,
	}
	for _, kv := range strings.Split(*installations, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		account, idText, ok := strings.Cut(kv, "=")
		id, err := strconv.ParseInt(idText, 10, 64)
		if !ok || account == "" || err != nil || id <= 0 {
			return fmt.Errorf("--installations: %q is not ACCOUNT=ID", kv)
		}
		if opts.Installations == nil {
			opts.Installations = map[string]int64{}
		}
		opts.Installations[account] = id
	}
	for _, t := range strings.Split(*tokens, ",") {
		if t = strings.TrimSpace(t); t != "" {
			opts.Tokens = append(opts.Tokens, t)
		}
	}
	if *appKeyFile != "" {
		pem, err := os.ReadFile(*appKeyFile)
		if err != nil {
			return fmt.Errorf("read app public key: %w", err)
		}
		opts.AppPublicKey = pem
	}
	srv, err := fakegithub.New(opts)
	if err != nil {
		return err
	}
	defer srv.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *simulate > 0 {
		lo, hi, err := parseRange(*simDuration)
		if err != nil {
			return err
		}
		sim := fakegithub.Simulation{Rate: *simulate, LabelSets: fakegithub.ParseLabelSets(*simLabels), Owner: *simOwner, Repo: *simRepo, MinDuration: lo, MaxDuration: hi}
		go func() {
			if err := srv.Simulate(ctx, sim); err != nil {
				log.Error("simulation stopped", "error", err)
			}
		}()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/", srv)
	hs := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	log.Info("fake github listening", "listen", *listen, "webhook_url", *webhookURL, "app_id", *appID, "simulate", *simulate)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Close() // ends the runner streams, so Shutdown does not wait for them
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func parseRange(v string) (time.Duration, time.Duration, error) {
	lo, hi, found := strings.Cut(v, "-")
	a, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return 0, 0, fmt.Errorf("simulate-duration %q: %w", v, err)
	}
	if !found {
		return a, a, nil
	}
	b, err := time.ParseDuration(strings.TrimSpace(hi))
	if err != nil || b < a {
		return 0, 0, fmt.Errorf("simulate-duration %q: want MIN-MAX with MIN <= MAX", v)
	}
	return a, b, nil
}

func probeURL(u string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe %s: status %d", u, resp.StatusCode)
	}
	return nil
}
