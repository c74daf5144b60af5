package aws

import (
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Every aws group of deploy/config.example.yaml builds a Backend.
func TestPreloadExampleConfig(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../../../deploy/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b, config.Secrets{GitHubToken: "t", WebhookSecret: "s"})
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	f := NewFactory(cfg.Name, WithCredentials(credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", "")))
	if err := Preload(f, cfg); err != nil {
		t.Fatalf("Preload: %v", err)
	}
	if len(f.backends) == 0 {
		t.Fatal("the example has no aws group")
	}
}
