// Package redistest gives tests a real Redis: the one at REDIS_URL when set,
// otherwise a redis-server of their own on a free loopback port. Tests keep
// apart by using their own stream and key names (NewName).
//
// It is the one place that says how tests run redis-server (Config.Args):
// the unit tests through Start, the end-to-end harness and the benchmarks
// through their own process supervision (e2e/harness), with the same
// command line.
package redistest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Client returns a client of a real Redis for the test, closed at cleanup.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = Start(t).URL()
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// NewName returns a unique lowercase name for a test's streams and keys.
func NewName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Bin is the Redis server, Debian's redis-server (scripts/install-deps.sh).
const Bin = "redis-server"

// Config is one redis-server for tests, on loopback without a password.
type Config struct {
	// Port on 127.0.0.1.
	Port int
	// Dir holds the append-only file.
	Dir string
	// AppendFsync, when set, turns the append-only file on with this fsync
	// policy ("always": a crash loses nothing; "everysec": production's
	// default), so a restart keeps the data. Empty: no persistence.
	AppendFsync string
	// LogFile, when set, receives the server's log; otherwise it writes to
	// its standard output.
	LogFile string
}

// Args is the command line of Bin for c. No RDB snapshots: the append-only
// file, when on, is the only persistence.
func (c Config) Args() []string {
	args := []string{
		"--port", strconv.Itoa(c.Port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--dir", c.Dir, "--save", "", "--daemonize", "no",
	}
	if c.AppendFsync != "" {
		args = append(args, "--appendonly", "yes", "--appendfsync", c.AppendFsync)
	} else {
		args = append(args, "--appendonly", "no")
	}
	if c.LogFile != "" {
		args = append(args, "--logfile", c.LogFile)
	}
	return args
}

// Server is a redis-server owned by one test; it can be stopped and started
// again on the same port (to test reconnection).
type Server struct {
	t    testing.TB
	port int
	dir  string
	aof  bool
	cmd  *exec.Cmd
}

// Start starts a redis-server for the test on a free loopback port, without
// persistence, and stops it at cleanup.
func Start(t testing.TB) *Server { return start(t, false) }

// StartAOF is Start with the append-only file on, so a restart keeps the data.
func StartAOF(t testing.TB) *Server { return start(t, true) }

func start(t testing.TB, aof bool) *Server {
	t.Helper()
	if _, err := exec.LookPath(Bin); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install -y redis-server, or run scripts/install-deps.sh): %v", err)
	}
	s := &Server{t: t, port: freePort(t), dir: t.TempDir(), aof: aof}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is redis://host:port/0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop kills the server (SIGKILL, like a crash); Restart brings it back.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again (after Stop) on the same port and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	c := Config{Port: s.port, Dir: s.dir, LogFile: filepath.Join(s.dir, "redis.log")}
	if s.aof {
		c.AppendFsync = "always"
	}
	cmd := exec.Command(Bin, c.Args()...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	waitPing(s.t, &redis.Options{Addr: s.Addr()}, "redis-server")
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
