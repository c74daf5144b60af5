package scenarios

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckConfig runs --check-config of every service binary on a valid and
// an invalid file: exit 0 and 1, every problem with its line, no secret.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	valid := `name: rm-check
runner_groups:
  - name: small
    organization: acme
    max_runners: 3
    labels: [linux]
    backend:
      type: docker
`
	invalid := `name: RM_Check
runner_groups:
  - name: small
    organization: acme
    max_runners: 0
    labels: [linux]
    backend:
      type: dockr
  - name: small
    organization: acme
    max_runners: 2
    labls: [linux]
    backend:
      type: docker
`
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	validPath, invalidPath := write("valid.yaml", valid), write("invalid.yaml", invalid)
	env := append(os.Environ(), "RM_GITHUB_TOKEN=ghp_check_config_secret", "RM_GITHUB_WEBHOOK_SECRET=whsec_check_config_secret")
	for _, bin := range []string{"ingress", "scheduler", "provisioner-docker", "provisioner-aws", "provisioner-gcp"} {
		t.Run(bin, func(t *testing.T) {
			run := func(path string) (int, string) {
				cmd := exec.Command(filepath.Join(binDir, bin), "--config", path, "--check-config")
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else {
					require.NoError(t, err)
				}
				return code, string(out)
			}
			code, out := run(validPath)
			require.Equal(t, 0, code, out)
			code, out = run(invalidPath)
			require.Equal(t, 1, code, out)
			for _, want := range []string{"line 1", "line 5", "line 8", "line 9", "line 12"} {
				require.Contains(t, out, want, out)
			}
			require.NotContains(t, out, "check_config_secret")
			require.GreaterOrEqual(t, strings.Count(out, "\n"), 5, out)
		})
	}
}
