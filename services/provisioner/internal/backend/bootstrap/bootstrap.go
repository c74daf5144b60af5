// Package bootstrap renders the startup script that turns a fresh Linux VM
// (EC2 or Compute Engine) into one ephemeral, JIT-configured GitHub Actions
// runner: it installs the runner (checksum verified), runs it as an
// unprivileged user with the JIT configuration passed through the environment,
// and powers the machine off when the runner exits.
//
// The built-in template is startup.sh.tmpl; a runner group may replace it
// (config.RunnerBootstrap.StartupScript) with its own text/template rendered
// with the same Data.
package bootstrap

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Defaults of config.RunnerBootstrap.
const (
	DefaultRunnerVersion = "2.321.0"
	// DefaultRunnerSHA256 is the checksum of actions-runner-linux-x64-2.321.0.tar.gz,
	// as published in the release notes of actions/runner v2.321.0.
	DefaultRunnerSHA256 = "ba46ba7ce3a4d7236b16fbe44419fb453bc08f866b24f04d549ec89f1722a29e"
	// DefaultRunnerDownloadURL is GitHub's release asset; {version} is replaced.
	DefaultRunnerDownloadURL = "https://github.com/actions/runner/releases/download/v{version}/actions-runner-linux-x64-{version}.tar.gz"
	DefaultRunnerUser        = "runner"
)

// Cloud names where the script runs; it decides how the JIT config arrives.
type Cloud string

// The clouds of the built-in template.
const (
	// AWS: the JIT configuration is embedded in the script (the user data).
	AWS Cloud = "aws"
	// GCP: the script fetches it from the metadata key Data.JITConfigMetadataKey.
	GCP Cloud = "gcp"
)

// Data is what a startup script template is rendered with. Custom templates
// get the same fields.
type Data struct {
	Cloud      Cloud
	RunnerName string
	Group      string
	// RunnerVersion, RunnerURL ({version} already replaced) and RunnerSHA256
	// of the archive to install.
	RunnerVersion string
	RunnerURL     string
	RunnerSHA256  string
	RunnerUser    string
	// JITConfig is set only when the configuration travels inside the
	// script (AWS); quote it with shellquote.
	JITConfig string
	// JITConfigMetadataKey is the metadata attribute holding the
	// configuration (GCP); empty on AWS.
	JITConfigMetadataKey string
	// BlockMetadataServer: see config.RunnerBootstrap (the default applied).
	BlockMetadataServer bool
}

// Vars are the per-runner values of one rendering.
type Vars struct {
	Cloud      Cloud
	RunnerName string
	Group      string
	// JITConfig is embedded in the script when Cloud is AWS.
	JITConfig config.Secret
	// JITConfigMetadataKey names the metadata key when Cloud is GCP.
	JITConfigMetadataKey string
}

//go:embed startup.sh.tmpl
var builtin string

// Builtin returns the text of the built-in template.
func Builtin() string { return builtin }

var (
	sha256Re   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	userRe     = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	metaKeyRe  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	errInvalid = errors.New("invalid bootstrap configuration")
)

// Script is a parsed template with a group's settings; safe for concurrent use.
type Script struct {
	tmpl *template.Template
	base Data
}

// New checks the group's bootstrap settings, applies the defaults and parses
// the template. A runner version or download URL other than the default needs
// its runner_sha256: the script never installs an unverified archive.
// Errors wrap config-free messages only.
func New(b config.RunnerBootstrap) (*Script, error) {
	d := Data{
		RunnerVersion:       b.RunnerVersion,
		RunnerSHA256:        strings.ToLower(b.RunnerSHA256),
		RunnerUser:          b.RunnerUser,
		BlockMetadataServer: b.BlocksMetadataServer(),
	}
	// The default archive has a known checksum; any other needs its own.
	custom := (b.RunnerVersion != "" && b.RunnerVersion != DefaultRunnerVersion) || b.RunnerDownloadURL != ""
	if d.RunnerVersion == "" {
		d.RunnerVersion = DefaultRunnerVersion
	}
	url := b.RunnerDownloadURL
	if url == "" {
		url = DefaultRunnerDownloadURL
	}
	d.RunnerURL = strings.ReplaceAll(url, "{version}", d.RunnerVersion)
	if d.RunnerSHA256 == "" && !custom {
		d.RunnerSHA256 = DefaultRunnerSHA256
	}
	if d.RunnerUser == "" {
		d.RunnerUser = DefaultRunnerUser
	}
	switch {
	case d.RunnerSHA256 == "" && b.StartupScript == "":
		return nil, fmt.Errorf("%w: bootstrap.runner_sha256 is required with a runner_version or runner_download_url of your own", errInvalid)
	case d.RunnerSHA256 != "" && !sha256Re.MatchString(d.RunnerSHA256):
		return nil, fmt.Errorf("%w: bootstrap.runner_sha256 is not 64 hexadecimal digits", errInvalid)
	case !userRe.MatchString(d.RunnerUser) || d.RunnerUser == "root":
		return nil, fmt.Errorf("%w: bootstrap.runner_user %q is not an unprivileged user name", errInvalid, d.RunnerUser)
	case !strings.HasPrefix(d.RunnerURL, "https://") && !strings.HasPrefix(d.RunnerURL, "http://"):
		return nil, fmt.Errorf("%w: bootstrap.runner_download_url is not an http(s) URL", errInvalid)
	}
	text := builtin
	if b.StartupScript != "" {
		text = b.StartupScript
	}
	tmpl, err := template.New("startup").Option("missingkey=error").Funcs(template.FuncMap{
		"shellquote": shellquoteAny,
	}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap.startup_script: %v", errInvalid, err)
	}
	return &Script{tmpl: tmpl, base: d}, nil
}

// IsInvalid tells whether err is a configuration error of New.
func IsInvalid(err error) bool { return errors.Is(err, errInvalid) }

// Render returns the script of one runner. Its errors never contain the JIT
// configuration.
func (s *Script) Render(v Vars) (string, error) {
	d := s.base
	d.Cloud, d.RunnerName, d.Group = v.Cloud, v.RunnerName, v.Group
	switch v.Cloud {
	case AWS:
		if !v.JITConfig.IsSet() {
			return "", errors.New("render startup script: empty JIT configuration")
		}
		d.JITConfig = v.JITConfig.Value()
	case GCP:
		if !metaKeyRe.MatchString(v.JITConfigMetadataKey) {
			return "", fmt.Errorf("render startup script: invalid metadata key %q", v.JITConfigMetadataKey)
		}
		d.JITConfigMetadataKey = v.JITConfigMetadataKey
	default:
		return "", fmt.Errorf("render startup script: unknown cloud %q", v.Cloud)
	}
	var sb strings.Builder
	if err := s.tmpl.Execute(&sb, d); err != nil {
		// text/template errors name the template position and field, never
		// the values; still, keep only the first line.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		if d.JITConfig != "" && strings.Contains(msg, d.JITConfig) {
			msg = "template execution failed"
		}
		return "", fmt.Errorf("render startup script: %s", msg)
	}
	return sb.String(), nil
}

// shellquoteAny is the template's shellquote: it quotes any value (a Cloud,
// a bool) as the text it prints.
func shellquoteAny(v any) string { return ShellQuote(fmt.Sprint(v)) }

// ShellQuote quotes s as one word for a POSIX shell: inside single quotes,
// an embedded single quote closes them, adds an escaped quote and reopens them.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
