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
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

// Metric scrapes baseURL/metrics and returns the sum of every sample of the
// metric name (all label sets); a metric the process does not expose is 0.
func Metric(ctx context.Context, baseURL, name string) (float64, error) {
	by, err := MetricBy(ctx, baseURL, name, "")
	return by[""], err
}

// MetricBy scrapes baseURL/metrics and returns the samples of the metric
// name summed by the value of label ("" sums them all under "").
func MetricBy(ctx context.Context, baseURL, name, label string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", baseURL, resp.StatusCode)
	}
	return sumSamples(resp.Body, name, label)
}

// sumSamples sums the samples of one metric in the Prometheus text format,
// by the value of label ("" for all).
func sumSamples(r io.Reader, name, label string) (map[string]float64, error) {
	sums := map[string]float64{}
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
		end := strings.LastIndex(rest, "}")
		fields := strings.Fields(rest[end+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		key := ""
		if label != "" && end > 0 {
			key = labelValue(rest[1:end], label)
		}
		sums[key] += v
	}
	return sums, sc.Err()
}

// labelValue returns the value of label in a label set of the text format
// (`a="x",b="y \"quoted\", with a comma"`).
func labelValue(set, label string) string {
	for set != "" {
		k, rest, ok := strings.Cut(set, `="`)
		if !ok {
			return ""
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				if rest[i] == 'n' {
					v.WriteByte('\n')
					continue
				}
			}
			v.WriteByte(rest[i])
		}
		if strings.TrimSpace(k) == label {
			return v.String()
		}
		set = strings.TrimPrefix(rest[min(i+1, len(rest)):], ",")
	}
	return ""
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

// Runners lists the registrations at the fake GitHub.
func (s *System) Runners(ctx context.Context) ([]fakegithub.Runner, error) {
	var rs []fakegithub.Runner
	err := doJSON(ctx, http.MethodGet, s.FakeURL+"/_fake/runners", "", nil, &rs)
	return rs, err
}

// Identity of the local GitHub App (Options.GitHubApp).
const (
	DevAppID          = 4242
	DevInstallationID = 77
)

// writeAppKey writes a fresh App private key into dir and returns the
// services' environment and the fake's flags of that App.
func writeAppKey(dir string, installations map[string]int64) (env, args []string, err error) {
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
		"RM_GITHUB_APP_PRIVATE_KEY_FILE=" + path,
	}
	args = []string{
		"--app-id", strconv.Itoa(DevAppID),
		"--app-public-key-file", path,
	}
	if len(installations) == 0 {
		env = append(env, "RM_GITHUB_APP_INSTALLATION_ID="+strconv.Itoa(DevInstallationID))
		return env, append(args, "--installation-id", strconv.Itoa(DevInstallationID)), nil
	}
	var pairs []string
	for login, id := range installations {
		pairs = append(pairs, fmt.Sprintf("%s=%d", login, id))
	}
	slices.Sort(pairs)
	return env, append(args, "--installations", strings.Join(pairs, ",")), nil
}
