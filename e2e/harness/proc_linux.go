package harness

import "syscall"

// sysProcAttr puts a service in its own process group (signals meant for the
// test do not reach it) and has the kernel kill it with the test binary, even
// when that panics on go test's -timeout: a service left running would go on
// creating containers.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
