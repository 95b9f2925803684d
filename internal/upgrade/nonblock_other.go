//go:build !unix

package upgrade

// setNonblockFd does nothing where sockets are not handed to a child
// process as file descriptors (the hand-over needs Unix).
func setNonblockFd(fd uintptr) {}
