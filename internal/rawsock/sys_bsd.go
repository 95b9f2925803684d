//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package rawsock

import "syscall"

// Elsewhere plain read(2) and write(2); the extra arguments are ignored.
const (
	sysRead       = syscall.SYS_READ
	sysWrite      = syscall.SYS_WRITE
	sysWriteFlags = 0
)
