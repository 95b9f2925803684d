//go:build unix

package upgrade

import "syscall"

func setNonblockFd(fd uintptr) { syscall.SetNonblock(int(fd), true) }
