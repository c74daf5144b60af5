package harness

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMain is also the helper process of TestServiceDiesWithTheTestBinary:
// with HARNESS_HELPER_DIR set, it starts a service, prints its pid and exits
// abruptly, as a test binary does when it panics on go test's -timeout.
func TestMain(m *testing.M) {
	dir := os.Getenv("HARNESS_HELPER_DIR")
	if dir == "" {
		os.Exit(m.Run())
	}
	p := &Proc{Name: "sleeper", Bin: "sleep", Args: []string{"300"}, Log: filepath.Join(dir, "sleeper.log")}
	if err := p.Start(context.Background()); err != nil {
		os.Exit(3)
	}
	os.Stdout.WriteString(strconv.Itoa(p.Pid()) + "\n")
	os.Exit(2)
}

func TestServiceDiesWithTheTestBinary(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HARNESS_HELPER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "the helper printed the service's pid")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	require.Error(t, cmd.Wait(), "the helper exited abruptly")

	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = exec.Command("kill", "-9", strconv.Itoa(pid)).Run()
			t.Fatalf("service %d outlived the test binary that started it", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive tells whether pid runs (a zombie waiting to be reaped is dead).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
