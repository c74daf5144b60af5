package bootstrap

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runner-manager/runner-manager/libs/config"
)

const jit = "eyJydW5uZXIiOiJ0ZXN0In0=secret'with\"quotes$(x)`y`"

func render(t *testing.T, b config.RunnerBootstrap, v Vars) string {
	t.Helper()
	s, err := New(b)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	out, err := s.Render(v)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return out
}

// check runs bash -n and shellcheck on the script; both must be installed
// (CI installs shellcheck; the test never skips).
func check(t *testing.T, script string) {
	t.Helper()
	for _, args := range [][]string{{"bash", "-n"}, {"shellcheck", "--shell=bash", "--severity=style", "-"}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = strings.NewReader(script)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
}

func TestBuiltinTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		bootstrap config.RunnerBootstrap
		vars      Vars
		contains  []string
		excludes  []string
	}{
		{
			name: "aws embeds the JIT config, quoted",
			vars: Vars{Cloud: AWS, RunnerName: "rm-g-abc", Group: "g", JITConfig: jit},
			contains: []string{
				"JITCONFIG=" + ShellQuote(jit),
				"RUNNER_SHA256='" + DefaultRunnerSHA256 + "'",
				"RUNNER_URL='https://github.com/actions/runner/releases/download/v2.321.0/actions-runner-linux-x64-2.321.0.tar.gz'",
				"RUNNER_USER='runner'",
				"rm -f /var/lib/cloud/instance/user-data.txt",
				"ExecStopPost=+$SYSTEMCTL poweroff",
				"export ACTIONS_RUNNER_INPUT_JITCONFIG",
				"exec ./run.sh\n",
			},
			excludes: []string{"metadata.google.internal", "iptables"},
		},
		{
			name: "gcp fetches the JIT config from the metadata server",
			bootstrap: config.RunnerBootstrap{
				RunnerVersion:       "2.330.1",
				RunnerDownloadURL:   "https://mirror.example/runner-{version}.tar.gz",
				RunnerSHA256:        strings.Repeat("AB", 32),
				RunnerUser:          "ci",
				BlockMetadataServer: true,
			},
			vars: Vars{Cloud: GCP, RunnerName: "rm-g-abc", Group: "g", JITConfigMetadataKey: "runner-jitconfig", JITConfig: jit},
			contains: []string{
				"http://metadata.google.internal/computeMetadata/v1/instance/attributes/runner-jitconfig",
				"RUNNER_URL='https://mirror.example/runner-2.330.1.tar.gz'",
				"RUNNER_SHA256='" + strings.Repeat("ab", 32) + "'",
				"RUNNER_USER='ci'",
				"iptables -I OUTPUT -d 169.254.169.254",
			},
			excludes: []string{jit, "JITCONFIG='", "/var/lib/cloud"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			script := render(t, tt.bootstrap, tt.vars)
			check(t, script)
			for _, s := range tt.contains {
				if !strings.Contains(script, s) {
					t.Errorf("script lacks %q", s)
				}
			}
			for _, s := range tt.excludes {
				if strings.Contains(script, s) {
					t.Errorf("script contains %q", s)
				}
			}
			// The JIT config is never on a command line: only the variable
			// assignment carries it.
			if tt.vars.Cloud == AWS && strings.Count(script, ShellQuote(jit)) != 1 {
				t.Errorf("the JIT config appears %d times, want once", strings.Count(script, ShellQuote(jit)))
			}
		})
	}
}

func TestDefaultVersionNeedsNoChecksum(t *testing.T) {
	t.Parallel()
	script := render(t, config.RunnerBootstrap{RunnerVersion: DefaultRunnerVersion}, Vars{Cloud: AWS, JITConfig: "x"})
	if !strings.Contains(script, "RUNNER_SHA256='"+DefaultRunnerSHA256+"'") {
		t.Errorf("the default version is not checked against its known checksum")
	}
}

func TestCustomTemplate(t *testing.T) {
	t.Parallel()
	b := config.RunnerBootstrap{StartupScript: "#!/bin/bash\necho {{shellquote .RunnerName}} {{.Cloud}} {{.RunnerUser}}\nJIT={{shellquote .JITConfig}}\nexport JIT\n"}
	script := render(t, b, Vars{Cloud: AWS, RunnerName: "r1", JITConfig: "eyJhIjoxfQ=="})
	if want := "#!/bin/bash\necho 'r1' aws runner\nJIT='eyJhIjoxfQ=='\nexport JIT\n"; script != want {
		t.Errorf("script = %q, want %q", script, want)
	}
	check(t, script)
}

func TestShellQuoteRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "it's", `a"b$c\d` + "`e`", "'''", "new\nline"} {
		out, err := exec.Command("bash", "-c", "printf %s "+ShellQuote(s)).Output()
		if err != nil {
			t.Fatalf("bash: %v", err)
		}
		if string(out) != s {
			t.Errorf("ShellQuote(%q) through bash = %q", s, out)
		}
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		b    config.RunnerBootstrap
		want string
	}{
		{"own version without checksum", config.RunnerBootstrap{RunnerVersion: "2.330.0"}, "runner_sha256 is required"},
		{"default version, another checksum", config.RunnerBootstrap{RunnerVersion: DefaultRunnerVersion, RunnerSHA256: "zz"}, "64 hexadecimal"},
		{"own URL without checksum", config.RunnerBootstrap{RunnerDownloadURL: "https://x/{version}"}, "runner_sha256 is required"},
		{"bad checksum", config.RunnerBootstrap{RunnerSHA256: "abc"}, "64 hexadecimal"},
		{"root user", config.RunnerBootstrap{RunnerUser: "root"}, "unprivileged"},
		{"odd user", config.RunnerBootstrap{RunnerUser: "a b"}, "unprivileged"},
		{"not http", config.RunnerBootstrap{RunnerDownloadURL: "file:///x", RunnerSHA256: DefaultRunnerSHA256}, "http(s)"},
		{"bad template", config.RunnerBootstrap{StartupScript: "{{.Nope"}, "startup_script"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !IsInvalid(err) {
				t.Errorf("New: %v, want an invalid-configuration error with %q", err, tt.want)
			}
		})
	}
}

func TestRenderErrorsHideTheJITConfig(t *testing.T) {
	t.Parallel()
	s, err := New(config.RunnerBootstrap{StartupScript: "{{.JITConfig}}{{.Missing}}"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, err = s.Render(Vars{Cloud: AWS, JITConfig: jit})
	if err == nil {
		t.Fatal("Render of a template with an unknown field succeeded")
	}
	if strings.Contains(err.Error(), jit) {
		t.Errorf("error contains the JIT config: %v", err)
	}
	if _, err := s.Render(Vars{Cloud: AWS}); err == nil {
		t.Error("Render without a JIT config succeeded")
	}
	if _, err := s.Render(Vars{Cloud: GCP, JITConfigMetadataKey: "a/b"}); err == nil {
		t.Error("Render with an invalid metadata key succeeded")
	}
}

// The wrapper the runner user runs: it moves the JIT config from its file
// into ACTIONS_RUNNER_INPUT_JITCONFIG, deletes the file, and runs run.sh with
// no argument (nothing on a command line).
func TestWrapperPassesTheJITConfigThroughTheEnvironment(t *testing.T) {
	t.Parallel()
	script := render(t, config.RunnerBootstrap{}, Vars{Cloud: AWS, RunnerName: "r", JITConfig: "eyJhIjoxfQ=="})
	_, rest, ok := strings.Cut(script, "<<'WRAPPER'\n")
	wrapper, _, ok2 := strings.Cut(rest, "\nWRAPPER\n")
	if !ok || !ok2 {
		t.Fatal("no wrapper in the script")
	}
	state, runner := t.TempDir(), t.TempDir()
	wrapper = strings.ReplaceAll(wrapper, "/run/actions-runner", state)
	wrapper = strings.ReplaceAll(wrapper, "/opt/actions-runner", runner)
	if err := os.WriteFile(filepath.Join(state, "jitconfig"), []byte("eyJhIjoxfQ=="), 0o400); err != nil {
		t.Fatal(err)
	}
	runSh := "#!/bin/bash\nprintf '%s|%d|%s' \"$ACTIONS_RUNNER_INPUT_JITCONFIG\" \"$#\" \"$(cat /proc/$$/cmdline | tr '\\0' ' ')\"\n"
	if err := os.WriteFile(filepath.Join(runner, "run.sh"), []byte(runSh), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", wrapper).CombinedOutput()
	if err != nil {
		t.Fatalf("wrapper: %v\n%s", err, out)
	}
	parts := strings.SplitN(string(out), "|", 3)
	if len(parts) != 3 || parts[0] != "eyJhIjoxfQ==" || parts[1] != "0" {
		t.Fatalf("run.sh saw %q, want the JIT config in its environment and no argument", out)
	}
	if strings.Contains(parts[2], "eyJhIjoxfQ==") {
		t.Errorf("the JIT config is on run.sh's command line: %s", parts[2])
	}
	if _, err := os.Stat(filepath.Join(state, "jitconfig")); !os.IsNotExist(err) {
		t.Errorf("the JIT config file is still there: %v", err)
	}
}
