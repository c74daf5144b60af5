package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"sync"
	"testing"
)

// testKeyPEM is an RSA private key in PKCS #1 PEM, generated once.
var testKeyPEM = sync.OnceValue(func() string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
})

// validSecrets authenticate with a token and verify webhooks.
func validSecrets() Secrets {
	return Secrets{GitHubToken: "ghp_token", WebhookSecret: "webhook-secret"}
}

// markedLine returns the 1-based line of doc that carries the comment "#<",
// 0 when none does.
func markedLine(t *testing.T, doc string) int {
	t.Helper()
	line := 0
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, "#<") {
			if line != 0 {
				t.Fatalf("two #< markers in the document")
			}
			line = i + 1
		}
	}
	return line
}

// clearEnv unsets every RM_ variable for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"RM_REDIS_URL", "RM_REDIS_PASSWORD", "RM_GITHUB_TOKEN", "RM_GITHUB_APP_ID",
		"RM_GITHUB_APP_INSTALLATION_ID", "RM_GITHUB_APP_PRIVATE_KEY", "RM_GITHUB_APP_PRIVATE_KEY_FILE",
		"RM_GITHUB_WEBHOOK_SECRET", "RM_GITHUB_WEBHOOK_SECRET_PREVIOUS", "RM_API_TOKEN",
	} {
		t.Setenv(k, "") // restores the variable after the test
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}
