//go:build unix

package main

import "syscall"

// The signals that reopen the access log and start a graceful upgrade.
const (
	sigReopen  = syscall.SIGUSR1
	sigUpgrade = syscall.SIGUSR2
)
