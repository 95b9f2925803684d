package rawsock

import "syscall"

// On Linux the socket calls proper: recvfrom and sendto go to the socket
// layer without the file layer's position handling that read and write
// pass through, and MSG_NOSIGNAL turns a write to a reset connection into
// EPIPE without a SIGPIPE for the runtime to field. The unused arguments
// (a nil address) make them read(2) and write(2) on a connected socket.
const (
	sysRead       = syscall.SYS_RECVFROM
	sysWrite      = syscall.SYS_SENDTO
	sysWriteFlags = syscall.MSG_NOSIGNAL
)
