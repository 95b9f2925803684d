//go:build !unix

package main

import "syscall"

// No SIGUSR1/SIGUSR2 here: values no signal has. The access log is not
// reopened by a signal, and there is no binary hand-over (it passes Unix
// file descriptors to the new process).
const (
	sigReopen  = syscall.Signal(0x100)
	sigUpgrade = syscall.Signal(0x101)
)
