package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const examplePath = "../../deploy/config.example.yaml"

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// setAppEnv configures a complete GitHub App and a webhook secret.
func setAppEnv(t *testing.T) {
	t.Helper()
	clearEnv(t)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, os.WriteFile(keyFile, []byte(testKeyPEM()+"\n"), 0o600))
	t.Setenv("RM_GITHUB_APP_ID", "12345")
	t.Setenv("RM_GITHUB_APP_INSTALLATION_ID", "67890")
	t.Setenv("RM_GITHUB_APP_PRIVATE_KEY_FILE", keyFile)
	t.Setenv("RM_GITHUB_WEBHOOK_SECRET", "example-webhook-secret")
}

func TestExampleIsValid(t *testing.T) {
	setAppEnv(t)
	cfg, err := Load(examplePath)
	require.NoError(t, err)
	require.NoError(t, Check(examplePath))

	types := map[string]int{}
	for _, g := range cfg.RunnerGroups {
		types[g.Backend.Type]++
		_, err := g.InstanceSpecJSON()
		require.NoError(t, err, g.Name)
	}
	require.Equal(t, map[string]int{BackendDocker: 2, BackendAWS: 2, BackendGCP: 1}, types)
	require.Equal(t, testKeyPEM(), cfg.Secrets.GitHubAppPrivateKey.Value()+"\n")
	require.Equal(t, int64(4<<30), must(ParseMemory(cfg.RunnerGroups[0].Backend.Docker.Memory)))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// yamlPaths lists every key path of the Config struct tree, with [] for the
// elements of a list: runner_groups[].backend.aws.region.
func yamlPaths(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
		yamlPaths(t.Elem(), prefix+"[]", out)
		return
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || name == "" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		*out = append(*out, p)
		yamlPaths(f.Type, p, out)
	}
}

// nodePaths lists every key path present in a YAML tree, in the same form.
func nodePaths(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			nodePaths(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if prefix != "" {
				p = prefix + "." + p
			}
			out[p] = true
			nodePaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			nodePaths(c, prefix+"[]", out)
		}
	}
}

func TestExampleShowsEveryField(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(examplePath)
	require.NoError(t, err)
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(b, &doc))
	present := map[string]bool{}
	nodePaths(&doc, "", present)
	var fields []string
	yamlPaths(reflect.TypeFor[Config](), "", &fields)
	require.Greater(t, len(fields), 100)
	for _, f := range fields {
		require.True(t, present[f], "deploy/config.example.yaml does not show %s", f)
	}
}

func TestDocumentationListsEveryField(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	var fields []string
	yamlPaths(reflect.TypeFor[Config](), "", &fields)
	// The bootstrap keys shared by aws and gcp are written once, as {aws,gcp}.
	shared := strings.NewReplacer(".aws.bootstrap.", ".{aws,gcp}.bootstrap.", ".gcp.bootstrap.", ".{aws,gcp}.bootstrap.")
	for _, f := range fields {
		require.True(t, strings.Contains(string(b), "`"+shared.Replace(f)+"`"), "docs/configuration.md does not document %s", f)
	}
	for _, env := range regexp.MustCompile(`envconfig:"(\w+)"`).FindAllStringSubmatch(string(must(os.ReadFile("secrets.go"))), -1) {
		require.True(t, strings.Contains(string(b), "`RM_"+env[1]+"`"), "docs/configuration.md does not document RM_%s", env[1])
	}
}

func TestCheck(t *testing.T) {
	setAppEnv(t)
	require.NoError(t, Check(writeFile(t, group)))

	err := Check(writeFile(t, group+"provisioner:\n  concurrency: 0\ntime_to_live: -1h\nunknown: 1\n"))
	var ps Problems
	require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
	var lines []int
	for _, p := range ps {
		lines = append(lines, p.Line)
	}
	require.Equal(t, []int{9, 10, 11}, lines)

	err = Check(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.False(t, errors.As(err, &ps))
}

func TestEnvironmentNumberProblem(t *testing.T) {
	setAppEnv(t)
	t.Setenv("RM_GITHUB_APP_ID", "twelve")
	err := Check(writeFile(t, group))
	var ps Problems
	require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
	require.Equal(t, Problems{{Path: "RM_GITHUB_APP_ID", Message: "not an integer"}}, ps)
}

func TestEnvironmentEmptyNumberIsUnset(t *testing.T) {
	clearEnv(t)
	t.Setenv("RM_GITHUB_APP_ID", "")
	t.Setenv("RM_GITHUB_APP_INSTALLATION_ID", " ")
	t.Setenv("RM_GITHUB_TOKEN", "tok")
	t.Setenv("RM_GITHUB_WEBHOOK_SECRET", "w")
	cfg, err := Load(writeFile(t, group))
	require.NoError(t, err)
	require.Zero(t, cfg.Secrets.GitHubAppID)
	require.False(t, cfg.Secrets.HasApp())
}

func TestEnvironmentKeyFileMissing(t *testing.T) {
	setAppEnv(t)
	t.Setenv("RM_GITHUB_APP_PRIVATE_KEY_FILE", filepath.Join(t.TempDir(), "nope.pem"))
	err := Check(writeFile(t, group))
	var ps Problems
	require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
	require.Len(t, ps, 1)
	require.Equal(t, "RM_GITHUB_APP_PRIVATE_KEY_FILE", ps[0].Path)
	require.Contains(t, ps[0].Message, "no such file")
}

// TestProblemsNeverShowSecrets puts recognizable secrets in every secret
// variable, each of them invalid, and looks for them in the error.
func TestProblemsNeverShowSecrets(t *testing.T) {
	clearEnv(t)
	secrets := map[string]string{
		"RM_GITHUB_TOKEN":                   " tok-plugh-1 ",
		"RM_GITHUB_WEBHOOK_SECRET":          "whs-plugh-2\n",
		"RM_GITHUB_WEBHOOK_SECRET_PREVIOUS": "\twhp-plugh-3",
		"RM_API_TOKEN":                      "api-plugh-4 ",
		"RM_REDIS_URL":                      "redis://admin:rpw-plugh-5@redis.internal:notaport/0",
		"RM_GITHUB_APP_PRIVATE_KEY":         "key-plugh-6",
		"RM_REDIS_PASSWORD":                 "rp-plugh-7",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv("RM_GITHUB_APP_ID", "1")
	_, err := Load(writeFile(t, group))
	var ps Problems
	require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
	paths := map[string]bool{}
	for _, p := range ps {
		paths[p.Path] = true
	}
	for _, want := range []string{"RM_GITHUB_TOKEN", "RM_GITHUB_WEBHOOK_SECRET", "RM_GITHUB_WEBHOOK_SECRET_PREVIOUS",
		"RM_API_TOKEN", "RM_REDIS_URL", "RM_GITHUB_APP_PRIVATE_KEY"} {
		require.True(t, paths[want], "no problem for %s in:\n%v", want, err)
	}
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		require.NotContains(t, text, "plugh", "a secret leaked into:\n%s", text)
	}
}

func TestRedisURLProblemHidesCredentials(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"redis://:hunter2@host:notaport/0",
		"redis://user:hunter2@host/0?dial_timeout=hunter2",
		"redis://user:hunter2@host/hunter2",
		"http://user:hunter2@host/0",
		"redis://us er:hunter2@host/0",
		"redis://:hunter2%zz@host/0",
	} {
		msg := redisURLProblem(raw)
		require.NotEmpty(t, msg, raw)
		require.NotContains(t, msg, "hunter2", raw)
	}
	require.Empty(t, redisURLProblem("rediss://user:pw@host:6380/1"))
	require.Empty(t, redisURLProblem("unix:///run/redis.sock"))
}
