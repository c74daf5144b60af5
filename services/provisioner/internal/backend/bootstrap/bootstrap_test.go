package bootstrap

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template/parse"

	"github.com/runner-manager/runner-manager/libs/config"
)

const jit = "eyJydW5uZXIiOiJ0ZXN0In0=secret'with\"quotes$(x)`y`"

// latest is a runner package as GitHub's downloads API gives it.
var latest = &Download{
	Version: "2.330.0",
	URL:     "https://github.com/actions/runner/releases/download/v2.330.0/actions-runner-linux-x64-2.330.0.tar.gz",
	SHA256:  strings.Repeat("c4", 32),
}

func render(t *testing.T, b config.RunnerBootstrap, v Vars) string {
	t.Helper()
	s, err := New(b)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if v.Runner == nil {
		v.Runner = latest
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
			vars: Vars{Cloud: AWS, RunnerName: "rm-g-abc", Group: "g", JITConfig: jit, Runner: latest},
			contains: []string{
				"JITCONFIG=" + ShellQuote(jit),
				"RUNNER_SHA256='" + latest.SHA256 + "'",
				"RUNNER_URL='" + latest.URL + "'",
				"RUNNER_USER='runner'",
				"rm -f /var/lib/cloud/instance/user-data.txt",
				"ExecStopPost=+$SYSTEMCTL poweroff",
				"export ACTIONS_RUNNER_INPUT_JITCONFIG",
				"exec ./run.sh\n",
				"block_metadata iptables 169.254.169.254", // on by default
			},
			excludes: []string{"metadata.google.internal"},
		},
		{
			name: "gcp fetches the JIT config from the metadata server",
			bootstrap: config.RunnerBootstrap{
				RunnerVersion:       "2.330.1",
				RunnerDownloadURL:   "https://mirror.example/runner-{version}.tar.gz",
				RunnerSHA256:        strings.Repeat("AB", 32),
				RunnerUser:          "ci",
				BlockMetadataServer: config.Bool(true),
			},
			vars: Vars{Cloud: GCP, RunnerName: "rm-g-abc", Group: "g", JITConfigMetadataKey: "runner-jitconfig", JITConfig: jit},
			contains: []string{
				"JIT_METADATA_KEY='runner-jitconfig'\n",
				`"http://metadata.google.internal/computeMetadata/v1/instance/attributes/$JIT_METADATA_KEY"`,
				"RUNNER_URL='https://mirror.example/runner-2.330.1.tar.gz'",
				"RUNNER_SHA256='" + strings.Repeat("ab", 32) + "'",
				"RUNNER_USER='ci'",
				"block_metadata iptables 169.254.169.254",
				"block_metadata ip6tables fd00:ec2::254 fd20:ce::254",
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

// Without runner_version, the package comes with each rendering (from
// GitHub's downloads API); a rendering without it fails: the script never
// installs an unverified archive.
func TestUnpinnedTakesThePackageOfTheRendering(t *testing.T) {
	t.Parallel()
	s, err := New(config.RunnerBootstrap{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if s.Pinned() {
		t.Error("a bootstrap without runner_version is pinned")
	}
	if _, err := s.Render(Vars{Cloud: AWS, JITConfig: "x"}); err == nil || !strings.Contains(err.Error(), "no runner package") {
		t.Errorf("Render without a package: %v, want a no-runner-package error", err)
	}
	if _, err := s.Render(Vars{Cloud: AWS, JITConfig: "x", Runner: &Download{Version: "2.330.0", URL: latest.URL}}); err == nil {
		t.Error("Render with a package without checksum succeeded")
	}
	script, err := s.Render(Vars{Cloud: AWS, JITConfig: "x", Runner: latest})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	for _, want := range []string{"RUNNER_URL='" + latest.URL + "'", "RUNNER_SHA256='" + latest.SHA256 + "'"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q", want)
		}
	}
}

// A pinned version ignores the package of the rendering and takes the
// archive of the group's architecture.
func TestPinnedVersionOfTheArchitecture(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("0a", 32)
	for arch, file := range map[string]string{"": "linux-x64", "x64": "linux-x64", "arm64": "linux-arm64"} {
		s, err := NewArch(config.RunnerBootstrap{RunnerVersion: "2.321.0", RunnerSHA256: sum}, arch)
		if err != nil {
			t.Fatalf("NewArch(%q): %v", arch, err)
		}
		if !s.Pinned() {
			t.Errorf("runner_version %q is not pinned", "2.321.0")
		}
		script, err := s.Render(Vars{Cloud: AWS, JITConfig: "x", Runner: latest})
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		want := "RUNNER_URL='https://github.com/actions/runner/releases/download/v2.321.0/actions-runner-" + file + "-2.321.0.tar.gz'"
		if !strings.Contains(script, want) || !strings.Contains(script, "RUNNER_SHA256='"+sum+"'") {
			t.Errorf("arch %q: script lacks %q or the pinned checksum", arch, want)
		}
	}
	if _, err := NewArch(config.RunnerBootstrap{}, "sparc"); err == nil || !IsInvalid(err) {
		t.Errorf("NewArch(sparc): %v, want an invalid-configuration error", err)
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
	for _, s := range []string{"", "plain", "it's", `a"b$c\d` + "`e`", "'''", "new\nline", "$(touch /tmp/x)", "`id`", "a'$(b)'\n`c`\\"} {
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
		{"pinned version without checksum", config.RunnerBootstrap{RunnerVersion: "2.321.0"}, "runner_sha256 is required"},
		{"pinned version, bad checksum", config.RunnerBootstrap{RunnerVersion: "2.321.0", RunnerSHA256: "zz"}, "64 hexadecimal"},
		{"own URL without a version", config.RunnerBootstrap{RunnerDownloadURL: "https://x/{version}", RunnerSHA256: strings.Repeat("ab", 32)}, "runner_download_url needs runner_version"},
		{"bad checksum", config.RunnerBootstrap{RunnerSHA256: "abc"}, "64 hexadecimal"},
		{"root user", config.RunnerBootstrap{RunnerUser: "root"}, "unprivileged"},
		{"odd user", config.RunnerBootstrap{RunnerUser: "a b"}, "unprivileged"},
		{"not http", config.RunnerBootstrap{RunnerVersion: "2.321.0", RunnerDownloadURL: "file:///x", RunnerSHA256: strings.Repeat("ab", 32)}, "http(s)"},
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

// Every value the built-in template writes into the script goes through
// shellquote: an action that prints anything else (in a comment too: a
// newline ends the comment) would let a value become a command.
func TestBuiltinTemplateQuotesEveryValue(t *testing.T) {
	t.Parallel()
	trees, err := parse.Parse("startup", Builtin(), "", "", map[string]any{"shellquote": shellquoteAny})
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			cmds := n.Pipe.Cmds
			last := cmds[len(cmds)-1]
			if id, ok := last.Args[0].(*parse.IdentifierNode); !ok || id.Ident != "shellquote" || len(n.Pipe.Decl) > 0 {
				t.Errorf("line %d: %s is not quoted with shellquote", n.Line, n)
			}
		case *parse.IfNode:
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.List)
			walk(n.ElseList)
		}
	}
	for _, tree := range trees {
		walk(tree.Root)
	}
}

// Hostile values (a runner name or group with quotes, $(), backticks and
// newlines) stay one word: each appears once, inside its quoted assignment,
// and the script still parses.
func TestHostileValuesStayQuoted(t *testing.T) {
	t.Parallel()
	hostile := "x'\n$(touch /tmp/pwned)`id`\"\n; rm -rf / #"
	for _, v := range []Vars{
		{Cloud: AWS, RunnerName: hostile + "name", Group: hostile + "group", JITConfig: config.Secret(hostile + "jit")},
		{Cloud: GCP, RunnerName: hostile + "name", Group: hostile + "group", JITConfigMetadataKey: "runner-jitconfig"},
	} {
		script := render(t, config.RunnerBootstrap{}, v)
		check(t, script)
		values := map[string]string{"RUNNER_NAME=": v.RunnerName, "RUNNER_GROUP=": v.Group}
		if v.Cloud == AWS {
			values["JITCONFIG="] = v.JITConfig.Value()
		}
		for assign, value := range values {
			if want := assign + ShellQuote(value) + "\n"; !strings.Contains(script, want) {
				t.Errorf("%s: the script lacks %q", v.Cloud, want)
			}
			if n := strings.Count(script, ShellQuote(value)); n != 1 {
				t.Errorf("%s: %q appears %d times, want once (its quoted assignment)", v.Cloud, value, n)
			}
			script = strings.ReplaceAll(script, ShellQuote(value), "")
		}
		if strings.Contains(script, "touch /tmp/pwned") {
			t.Errorf("%s: a hostile value is in the script outside its quoted assignment", v.Cloud)
		}
	}
}

// The metadata block of the built-in script, run in a network namespace of
// its own (unshare -rn): with iptables it rejects TCP to the metadata
// addresses (IPv4 and both IPv6 ones) but port 53, from the runner user
// (OUTPUT) and from what a job starts (FORWARD, DOCKER-USER); with only nft
// it installs the same rules as one table; with neither it fails.
func TestMetadataBlockInstallsTheRules(t *testing.T) {
	t.Parallel()
	script := render(t, config.RunnerBootstrap{BlockMetadataServer: config.Bool(true)}, Vars{Cloud: GCP, JITConfigMetadataKey: "k"})
	_, rest, ok := strings.Cut(script, "# BEGIN metadata block\n")
	block, _, ok2 := strings.Cut(rest, "# END metadata block\n")
	if !ok || !ok2 {
		t.Fatal("no metadata block in the script")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal(err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, path, after string) (string, error) {
		t.Helper()
		prog := "set -Eeuo pipefail\nlog() { echo \"LOG: $*\"; }\nfail() { echo FAIL; exit 3; }\nRUNNER_UID=0\n" +
			"PATH=" + ShellQuote(path) + "\n" + block + "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n" + after
		out, err := exec.Command(unshare, "-rn", bash, "-c", prog).CombinedOutput()
		return string(out), err
	}
	sbin := func(t *testing.T, names ...string) string {
		t.Helper()
		dir := t.TempDir()
		for _, n := range names {
			p, err := exec.LookPath(n)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(p, filepath.Join(dir, n)); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}

	t.Run("iptables", func(t *testing.T) {
		t.Parallel()
		out, err := run(t, os.Getenv("PATH")+":/usr/sbin:/sbin", "iptables -S; ip6tables -S")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, addr := range []string{"169.254.169.254/32", "fd00:ec2::254/128", "fd20:ce::254/128"} {
			for _, rule := range []string{
				"-A OUTPUT -d " + addr + " -p tcp -m tcp ! --dport 53 -m owner --uid-owner 0 -j REJECT --reject-with tcp-reset",
				"-A FORWARD -d " + addr + " -p tcp -m tcp ! --dport 53 -j REJECT --reject-with tcp-reset",
				"-A DOCKER-USER -d " + addr + " -p tcp -m tcp ! --dport 53 -j REJECT --reject-with tcp-reset",
			} {
				if !strings.Contains(out, rule+"\n") {
					t.Errorf("no rule %q in:\n%s", rule, out)
				}
			}
		}
	})
	t.Run("nft only", func(t *testing.T) {
		t.Parallel()
		out, err := run(t, sbin(t, "nft"), "nft list table inet runner_manager_metadata")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, rule := range []string{
			"meta skuid 0 ip daddr 169.254.169.254 tcp dport != 53 reject with tcp reset",
			"meta skuid 0 ip6 daddr { fd00:ec2::254, fd20:ce::254 } tcp dport != 53 reject with tcp reset",
			"ip daddr 169.254.169.254 tcp dport != 53 reject with tcp reset",
			"type filter hook forward",
		} {
			if !strings.Contains(out, rule) {
				t.Errorf("no %q in:\n%s", rule, out)
			}
		}
	})
	t.Run("neither", func(t *testing.T) {
		t.Parallel()
		out, err := run(t, t.TempDir(), "")
		if err == nil || !strings.Contains(out, "neither iptables nor nft") || !strings.Contains(out, "FAIL") {
			t.Errorf("the block did not fail without iptables and nft: %v\n%s", err, out)
		}
	})
}

// block_metadata_server is on unless the group turns it off.
func TestMetadataBlockIsOnByDefault(t *testing.T) {
	t.Parallel()
	on := render(t, config.RunnerBootstrap{}, Vars{Cloud: AWS, JITConfig: "x"})
	if !strings.Contains(on, "# BEGIN metadata block") {
		t.Error("the default script does not block the metadata server")
	}
	off := render(t, config.RunnerBootstrap{BlockMetadataServer: config.Bool(false)}, Vars{Cloud: AWS, JITConfig: "x"})
	if strings.Contains(off, "metadata block") || strings.Contains(off, "iptables") {
		t.Error("block_metadata_server: false still blocks")
	}
}
