package harness

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runner-manager/runner-manager/e2e/fakegithub"
	"github.com/runner-manager/runner-manager/libs/backend"
)

// Metric scrapes baseURL/metrics and returns the sum of every sample of the
// metric name (all label sets); a metric the process does not expose is 0.
func Metric(ctx context.Context, baseURL, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s: status %d", baseURL, resp.StatusCode)
	}
	return sumSamples(resp.Body, name)
}

// sumSamples sums the samples of one metric in the Prometheus text format.
func sumSamples(r io.Reader, name string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric sharing the prefix
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// ServiceURLs are the base URLs of every service process (ingress, schedulers,
// provisioners), for scraping.
func (s *System) ServiceURLs() []string {
	out := []string{s.IngressURL}
	out = append(out, s.SchedulerURLs...)
	return append(out, s.ProvisionerURLs...)
}

// Jobs lists the jobs of the fake GitHub with a status ("" for all).
func (s *System) Jobs(ctx context.Context, status string) ([]fakegithub.Job, error) {
	var jobs []fakegithub.Job
	url := s.FakeURL + "/_fake/jobs"
	if status != "" {
		url += "?status=" + status
	}
	err := doJSON(ctx, http.MethodGet, url, "", nil, &jobs)
	return jobs, err
}

// Stats returns the fake GitHub's counters, typed.
func (s *System) Stats(ctx context.Context) (fakegithub.Stats, error) {
	var st fakegithub.Stats
	err := doJSON(ctx, http.MethodGet, s.FakeURL+"/_fake/stats", "", nil, &st)
	return st, err
}

// ContainerStarts records, from `docker events`, the first start time of every
// container of one manager, by runner name. Start it before the containers
// are created; Stop it before reading.
type ContainerStarts struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	starts map[string]time.Time
	ids    map[string]map[string]bool
}

// WatchContainerStarts follows the start events of the manager's containers.
func (s *System) WatchContainerStarts(ctx context.Context) (*ContainerStarts, error) {
	cmd := exec.CommandContext(ctx, "docker", "events",
		"--filter", "type=container", "--filter", "event=start",
		"--filter", "label="+backend.LabelManager+"="+s.Opts.Name,
		"--format", `{{.TimeNano}} {{index .Actor.Attributes "`+backend.LabelRunner+`"}} {{.Actor.ID}}`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("docker events: %w", err)
	}
	w := &ContainerStarts{cmd: cmd, done: make(chan struct{}), starts: map[string]time.Time{}, ids: map[string]map[string]bool{}}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				continue
			}
			ns, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				continue
			}
			w.mu.Lock()
			if _, ok := w.starts[f[1]]; !ok {
				w.starts[f[1]] = time.Unix(0, ns)
			}
			if w.ids[f[1]] == nil {
				w.ids[f[1]] = map[string]bool{}
			}
			w.ids[f[1]][f[2]] = true
			w.mu.Unlock()
		}
	}()
	// docker events subscribes asynchronously: give it a moment to attach.
	time.Sleep(300 * time.Millisecond)
	return w, nil
}

// Stop ends the watch.
func (w *ContainerStarts) Stop() {
	if w.cmd.Process != nil {
		_ = w.cmd.Process.Kill()
	}
	<-w.done
	_ = w.cmd.Wait()
}

// Starts returns the start time of each runner's container.
func (w *ContainerStarts) Starts() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(w.starts))
	for k, v := range w.starts {
		out[k] = v
	}
	return out
}

// Runners lists the registrations at the fake GitHub.
func (s *System) Runners(ctx context.Context) ([]fakegithub.Runner, error) {
	var rs []fakegithub.Runner
	err := doJSON(ctx, http.MethodGet, s.FakeURL+"/_fake/runners", "", nil, &rs)
	return rs, err
}

// ContainerRunners returns, for every container carrying the manager's label,
// its runner label (the runner's name) and its state (running, exited...).
func (s *System) ContainerRunners(ctx context.Context) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a",
		"--filter", "label="+backend.LabelManager+"="+s.Opts.Name,
		"--format", `{{.Label "`+backend.LabelRunner+`"}} {{.State}}`).Output()
	if err != nil {
		return nil, fmt.Errorf("docker ps: %w", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m, nil
}

// Duplicates returns the runners that had more than one container.
func (w *ContainerStarts) Duplicates() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for name, ids := range w.ids {
		if len(ids) > 1 {
			out[name] = len(ids)
		}
	}
	return out
}

// Identity of the local GitHub App (Options.GitHubApp).
const (
	DevAppID          = 4242
	DevInstallationID = 77
)

// writeAppKey writes a fresh App private key into dir and returns the
// services' environment and the fake's flags of that App.
func writeAppKey(dir string) (env, args []string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the App key: %w", err)
	}
	path := filepath.Join(dir, "app.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		return nil, nil, fmt.Errorf("write the App key: %w", err)
	}
	env = []string{
		"RM_GITHUB_APP_ID=" + strconv.Itoa(DevAppID),
		"RM_GITHUB_APP_INSTALLATION_ID=" + strconv.Itoa(DevInstallationID),
		"RM_GITHUB_APP_PRIVATE_KEY_FILE=" + path,
	}
	args = []string{
		"--app-id", strconv.Itoa(DevAppID),
		"--app-public-key-file", path,
		"--installation-id", strconv.Itoa(DevInstallationID),
	}
	return env, args, nil
}
