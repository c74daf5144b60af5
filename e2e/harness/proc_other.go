//go:build unix && !linux

package harness

import "syscall"

// sysProcAttr puts a service in its own process group. Outside Linux there is
// no parent-death signal: a test binary that panics leaves its services running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
