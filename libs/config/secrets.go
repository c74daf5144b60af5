package config

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// Secret is a string that never prints itself: fmt, slog and JSON all show
// "[redacted]". Use Value() where the secret is really needed.
type Secret string

const redacted = "[redacted]"

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// IsSet tells whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON keeps the secret out of JSON output.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText keeps the secret out of text encodings (YAML among them).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Secrets are read from the environment with the prefix RM_.
type Secrets struct {
	// RedisURL overrides redis.url (RM_REDIS_URL); it may carry a password.
	RedisURL Secret `envconfig:"REDIS_URL"`
	// RedisPassword is the password of the Redis servers; it wins over one in
	// the URL.
	RedisPassword Secret `envconfig:"REDIS_PASSWORD"`
	// RedisSentinelPassword is the Sentinels' own password (their
	// requirepass), with a Sentinel URL or redis.sentinel_*; empty: none.
	RedisSentinelPassword Secret `envconfig:"REDIS_SENTINEL_PASSWORD"`
	GitHubToken           Secret `envconfig:"GITHUB_TOKEN"`
	// GitHubAppID and GitHubAppInstallationID are read by LoadSecrets itself
	// (ignored by envconfig) so that a variable set but empty means unset.
	GitHubAppID int64 `envconfig:"GITHUB_APP_ID" ignored:"true"`
	// GitHubAppInstallationID of the App's installation in the organization.
	GitHubAppInstallationID int64  `envconfig:"GITHUB_APP_INSTALLATION_ID" ignored:"true"`
	GitHubAppPrivateKey     Secret `envconfig:"GITHUB_APP_PRIVATE_KEY"`
	// GitHubAppPrivateKeyFile is read into GitHubAppPrivateKey when that is empty.
	GitHubAppPrivateKeyFile string `envconfig:"GITHUB_APP_PRIVATE_KEY_FILE"`
	WebhookSecret           Secret `envconfig:"GITHUB_WEBHOOK_SECRET"`
	// WebhookSecretPrevious is still accepted during a rotation.
	WebhookSecretPrevious Secret `envconfig:"GITHUB_WEBHOOK_SECRET_PREVIOUS"`
	// APIToken guards the scheduler's admin API.
	APIToken Secret `envconfig:"API_TOKEN"`
}

// HasApp tells whether GitHub App credentials are configured.
func (s Secrets) HasApp() bool {
	return s.GitHubAppID != 0 || s.GitHubAppInstallationID != 0 || s.GitHubAppPrivateKey.IsSet()
}

// LoadSecrets reads the RM_ environment. A private key file is read here; its
// content never appears in an error. A variable that cannot be used (a
// number that does not parse, an unreadable key file) is returned as a
// Problems naming the variable, never showing a value.
func LoadSecrets() (Secrets, error) {
	var s Secrets
	if err := envconfig.Process("RM", &s); err != nil {
		// Every field envconfig handles is a string: this is not expected.
		return s, fmt.Errorf("read environment: %w", err)
	}
	var ps Problems
	for _, id := range []struct {
		name string
		dst  *int64
	}{
		{"RM_GITHUB_APP_ID", &s.GitHubAppID},
		{"RM_GITHUB_APP_INSTALLATION_ID", &s.GitHubAppInstallationID},
	} {
		v := strings.TrimSpace(os.Getenv(id.name))
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			ps = append(ps, Problem{Path: id.name, Message: "not an integer"})
			continue
		}
		*id.dst = n
	}
	if !s.GitHubAppPrivateKey.IsSet() && s.GitHubAppPrivateKeyFile != "" {
		b, err := os.ReadFile(s.GitHubAppPrivateKeyFile)
		if err != nil {
			ps = append(ps, Problem{Path: "RM_GITHUB_APP_PRIVATE_KEY_FILE", Message: err.Error()})
		} else {
			s.GitHubAppPrivateKey = Secret(strings.TrimSpace(string(b)))
		}
	}
	if len(ps) > 0 {
		return s, ps
	}
	return s, nil
}
