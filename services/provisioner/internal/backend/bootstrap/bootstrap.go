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

	"github.com/runner-manager/runner-manager/libs/backend"
	"github.com/runner-manager/runner-manager/libs/config"
)

// Defaults of config.RunnerBootstrap.
const (
	// DefaultRunnerDownloadURL is GitHub's release asset of a pinned
	// runner_version; {version} and {arch} (x64, arm64) are replaced.
	DefaultRunnerDownloadURL = "https://github.com/actions/runner/releases/download/v{version}/actions-runner-linux-{arch}-{version}.tar.gz"
	DefaultRunnerUser        = "runner"
)

// Download is the runner package a VM installs: without a pinned
// runner_version, the one GitHub's downloads API offers for the group's
// architecture (the provisioner runtime resolves it for each create).
type Download = backend.RunnerPackage

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
	// Runner is the package to install when the bootstrap pins no
	// runner_version (required then; ignored with a pin).
	Runner *Download
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
	tmpl   *template.Template
	base   Data
	pinned bool
}

// New is NewArch for x64.
func New(b config.RunnerBootstrap) (*Script, error) { return NewArch(b, config.ArchX64) }

// NewArch checks the group's bootstrap settings, applies the defaults and
// parses the template; arch (config.ArchX64, config.ArchARM64, "" for x64)
// picks the archive of a pinned runner_version. A pinned runner_version
// needs its runner_sha256; without a pin, each Render takes the package
// GitHub offers (Vars.Runner): the script never installs an unverified
// archive. Errors wrap config-free messages only.
func NewArch(b config.RunnerBootstrap, arch string) (*Script, error) {
	if arch == "" {
		arch = config.ArchX64
	}
	if arch != config.ArchX64 && arch != config.ArchARM64 {
		return nil, fmt.Errorf("%w: architecture %q is not x64 or arm64", errInvalid, arch)
	}
	d := Data{
		RunnerVersion:       b.RunnerVersion,
		RunnerSHA256:        strings.ToLower(b.RunnerSHA256),
		RunnerUser:          b.RunnerUser,
		BlockMetadataServer: b.BlocksMetadataServer(),
	}
	pinned := b.RunnerVersion != ""
	if pinned {
		url := b.RunnerDownloadURL
		if url == "" {
			url = DefaultRunnerDownloadURL
		}
		d.RunnerURL = strings.NewReplacer("{version}", d.RunnerVersion, "{arch}", arch).Replace(url)
	}
	if d.RunnerUser == "" {
		d.RunnerUser = DefaultRunnerUser
	}
	switch {
	case !pinned && b.RunnerDownloadURL != "":
		return nil, fmt.Errorf("%w: bootstrap.runner_download_url needs runner_version (without it the runner comes from GitHub's downloads API)", errInvalid)
	case pinned && d.RunnerSHA256 == "" && b.StartupScript == "":
		return nil, fmt.Errorf("%w: bootstrap.runner_sha256 is required with a pinned runner_version", errInvalid)
	case d.RunnerSHA256 != "" && !sha256Re.MatchString(d.RunnerSHA256):
		return nil, fmt.Errorf("%w: bootstrap.runner_sha256 is not 64 hexadecimal digits", errInvalid)
	case !userRe.MatchString(d.RunnerUser) || d.RunnerUser == "root":
		return nil, fmt.Errorf("%w: bootstrap.runner_user %q is not an unprivileged user name", errInvalid, d.RunnerUser)
	case pinned && !strings.HasPrefix(d.RunnerURL, "https://") && !strings.HasPrefix(d.RunnerURL, "http://"):
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
	return &Script{tmpl: tmpl, base: d, pinned: pinned}, nil
}

// Pinned tells whether the bootstrap pins a runner_version: its renderings
// need no Vars.Runner.
func (s *Script) Pinned() bool { return s.pinned }

// IsInvalid tells whether err is a configuration error of New.
func IsInvalid(err error) bool { return errors.Is(err, errInvalid) }

// Render returns the script of one runner. Its errors never contain the JIT
// configuration.
func (s *Script) Render(v Vars) (string, error) {
	d := s.base
	d.Cloud, d.RunnerName, d.Group = v.Cloud, v.RunnerName, v.Group
	if !s.pinned {
		switch {
		case v.Runner == nil:
			return "", errors.New("render startup script: no runner package (no runner_version pinned and none from GitHub)")
		case !sha256Re.MatchString(strings.ToLower(v.Runner.SHA256)):
			return "", errors.New("render startup script: the runner package has no valid SHA-256 checksum")
		case !strings.HasPrefix(v.Runner.URL, "https://") && !strings.HasPrefix(v.Runner.URL, "http://"):
			return "", errors.New("render startup script: the runner package URL is not http(s)")
		}
		d.RunnerVersion, d.RunnerURL, d.RunnerSHA256 = v.Runner.Version, v.Runner.URL, strings.ToLower(v.Runner.SHA256)
	}
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
