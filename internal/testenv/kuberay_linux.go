package testenv

import "syscall"

// kubeRayProcAttr has the kernel kill the operator when the thread that started it
// dies, so that a test binary that panics or is killed leaves no operator behind.
func kubeRayProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
