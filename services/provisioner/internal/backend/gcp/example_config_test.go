package gcp

import (
	"os"
	"testing"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Every gcp group of deploy/config.example.yaml builds a Backend.
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
	f := NewFactory(cfg.Name, clientOpts())
	t.Cleanup(func() { _ = f.Close() })
	if err := Preload(f, cfg); err != nil {
		t.Fatalf("Preload: %v", err)
	}
	if len(f.backends) == 0 {
		t.Fatal("the example has no gcp group")
	}
}
