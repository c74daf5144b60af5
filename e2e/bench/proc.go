// Package bench holds the measurements the load programs of
// docs/benchmarks.md share (stream entry ids, Redis memory, resident memory
// and CPU time of processes). The programs start the system with the e2e
// harness (harness.Start: the real binaries, the provisioner-bench binary as
// the provisioner), as the scenarios do.
//
// Everything runs on loopback; every wait is bounded by a deadline.
package bench

import (
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RSS returns the resident memory of process pid (VmRSS of /proc/<pid>/status), in bytes.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read the status of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("VmRSS of process %d: %w", pid, err)
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// CPU returns the user + system CPU time process pid has used
// (utime + stime of /proc/<pid>/stat).
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read the stat of process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: fields count from after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat of process %d", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat of process %d", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat of process %d", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// LoadAvg returns the 1, 5 and 15 minute load averages as /proc/loadavg prints them.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// RSSPeak samples the resident memory of a set of processes every interval
// and keeps the highest value of each.
type RSSPeak struct {
	mu   sync.Mutex
	peak map[string]int64
	stop chan struct{}
	done chan struct{}
}

// WatchRSS starts sampling procs (name → pid) until Stop.
func WatchRSS(procs map[string]int, interval time.Duration) *RSSPeak {
	w := &RSSPeak{peak: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	sample := func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for name, pid := range procs {
			if v, err := RSS(pid); err == nil && v > w.peak[name] {
				w.peak[name] = v
			}
		}
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			sample()
			select {
			case <-w.stop:
				sample()
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// Stop ends the sampling and returns the peaks, in bytes.
func (w *RSSPeak) Stop() map[string]int64 {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int64, len(w.peak))
	for k, v := range w.peak {
		out[k] = v
	}
	return out
}

// Machine describes this machine: logical CPUs, memory, CPU model, Redis's version.
func Machine() string {
	cpus := runtimeNumCPU()
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) == 2 {
					if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
						mem = strconv.FormatFloat(float64(kb)/(1<<20), 'f', 1, 64) + " GiB"
					}
				}
			}
		}
	}
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s of memory, %s", cpus, mem, model)
}

func runtimeNumCPU() int { return goruntime.NumCPU() }
