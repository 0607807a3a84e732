//go:build !linux

package testenv

import "syscall"

// kubeRayProcAttr is empty where there is no parent-death signal: Stop is then the only
// way the operator ends.
func kubeRayProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
