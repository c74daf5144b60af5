package config_test

import (
	"errors"
	"fmt"

	"github.com/runner-manager/runner-manager/libs/config"
)

func ExampleParse_problems() {
	doc := `name: Runner_Manager
runner_groups:
  - name: small
    organization: my-org
    max_runners: 0
    labels: [linux]
    backend:
      type: docker
      docker:
        memroy: 4g
time_to_start: 0s
`
	secrets := config.Secrets{GitHubToken: "t", WebhookSecret: "w"}
	_, err := config.Parse([]byte(doc), secrets)
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Println(p)
		}
	}
	// Output:
	// line 1: name: "Runner_Manager" is not a lowercase DNS label (a-z, 0-9, '-', not at either end)
	// line 5: runner_groups[0].max_runners: must be at least 1, got 0
	// line 10: runner_groups[0].backend.docker.memroy: unknown key
	// line 11: time_to_start: must be a positive duration, got 0s
}

func ExampleConfig_MatchGroup() {
	cfg := &config.Config{RunnerGroups: []config.RunnerGroup{
		{Name: "gpu", Organization: "my-org", Labels: []string{"linux", "gpu"}},
		{Name: "small", Organization: "my-org", Labels: []string{"self-hosted", "linux"}},
	}}
	fmt.Println(cfg.MatchGroup("my-org", "app", "CI", []string{"self-hosted", "Linux"}).Name)
	fmt.Println(cfg.MatchGroup("my-org", "app", "CI", []string{"gpu"}).Name)
	fmt.Println(cfg.MatchGroup("my-org", "app", "CI", []string{"arm64"}) == nil)
	// Output:
	// small
	// gpu
	// true
}

func ExampleRunnerName() {
	name := config.RunnerName("runner-manager", "small", config.NewRunnerSuffix())
	fmt.Println(len(name) <= config.MaxRunnerNameLen, len(name))
	// Output: true 29
}
