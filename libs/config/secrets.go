package config

import (
	"fmt"
	"log/slog"
	"os"
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
	RedisURL      Secret `envconfig:"REDIS_URL"`
	RedisPassword Secret `envconfig:"REDIS_PASSWORD"`
	GitHubToken   Secret `envconfig:"GITHUB_TOKEN"`
	GitHubAppID   int64  `envconfig:"GITHUB_APP_ID"`
	// GitHubAppInstallationID of the App's installation in the organization.
	GitHubAppInstallationID int64  `envconfig:"GITHUB_APP_INSTALLATION_ID"`
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
// content never appears in an error.
func LoadSecrets() (Secrets, error) {
	var s Secrets
	if err := envconfig.Process("RM", &s); err != nil {
		// envconfig's errors name the variable and the value it could not
		// parse; only numeric fields can fail, so no secret leaks here.
		return s, fmt.Errorf("environment: %w", err)
	}
	if !s.GitHubAppPrivateKey.IsSet() && s.GitHubAppPrivateKeyFile != "" {
		b, err := os.ReadFile(s.GitHubAppPrivateKeyFile)
		if err != nil {
			return s, fmt.Errorf("RM_GITHUB_APP_PRIVATE_KEY_FILE: %w", err)
		}
		s.GitHubAppPrivateKey = Secret(strings.TrimSpace(string(b)))
	}
	return s, nil
}
