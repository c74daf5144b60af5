package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a password-protected redis-server master watched by one
// redis-sentinel, both owned by one test on free loopback ports.
type Sentinel struct {
	// MasterName is the name the Sentinel knows the master by.
	MasterName string
	// MasterAddr and SentinelAddr are host:port.
	MasterAddr   string
	SentinelAddr string
	// MasterPassword is the master's requirepass; SentinelPassword the
	// Sentinel's own requirepass (empty: none).
	MasterPassword   string
	SentinelPassword string
}

// StartSentinel starts a redis-server with requirepass masterPassword and a
// redis-sentinel (requirepass sentinelPassword when not empty) monitoring it
// as "mymaster", waits until the Sentinel names the master, and stops both at
// cleanup.
func StartSentinel(t testing.TB, masterPassword, sentinelPassword string) *Sentinel {
	t.Helper()
	for _, bin := range []string{Bin, "redis-sentinel"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (apt-get install -y redis-server redis-sentinel, or run scripts/install-deps.sh): %v", bin, err)
		}
	}
	dir := t.TempDir()
	s := &Sentinel{
		MasterName:       "mymaster",
		MasterAddr:       "127.0.0.1:" + strconv.Itoa(freePort(t)),
		SentinelAddr:     "127.0.0.1:" + strconv.Itoa(freePort(t)),
		MasterPassword:   masterPassword,
		SentinelPassword: sentinelPassword,
	}
	_, masterPort, _ := net.SplitHostPort(s.MasterAddr)
	port, _ := strconv.Atoi(masterPort)
	master := Config{Port: port, Dir: dir, LogFile: filepath.Join(dir, "master.log")}
	startProcess(t, Bin, append(master.Args(), "--requirepass", masterPassword)...)
	waitPing(t, &redis.Options{Addr: s.MasterAddr, Password: masterPassword}, "redis-server")

	// redis-sentinel rewrites its configuration file: it must be its own.
	_, sentinelPort, _ := net.SplitHostPort(s.SentinelAddr)
	conf := fmt.Sprintf(`port %s
bind 127.0.0.1
protected-mode no
daemonize no
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %s 1
sentinel auth-pass %s %s
sentinel down-after-milliseconds %s 5000
`, sentinelPort, dir, filepath.Join(dir, "sentinel.log"), s.MasterName, masterPort, s.MasterName, masterPassword, s.MasterName)
	if sentinelPassword != "" {
		conf += "requirepass " + sentinelPassword + "\n"
	}
	confPath := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatalf("write sentinel.conf: %v", err)
	}
	startProcess(t, "redis-sentinel", confPath)

	sc := redis.NewSentinelClient(&redis.Options{Addr: s.SentinelAddr, Password: sentinelPassword})
	defer sc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		cancel()
		if err == nil && len(addr) == 2 && addr[0]+":"+addr[1] == s.MasterAddr {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-sentinel on %s does not name the master %s: %v %v (log: %s)", s.SentinelAddr, s.MasterAddr, addr, err, filepath.Join(dir, "sentinel.log"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startProcess starts a process that is killed at cleanup.
func startProcess(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

func waitPing(t testing.TB, opt *redis.Options, what string) {
	t.Helper()
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s did not answer: %v", what, opt.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
