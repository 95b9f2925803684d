//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package rawsock

import "syscall"

// Sender writes nothing where raw socket calls are not available: callers
// write the ordinary way (n = 0).
type Sender struct{}

// SendWait writes nothing and does not wait.
func (s *Sender) SendWait(rc syscall.RawConn, p []byte) (n int, waited bool, err error) {
	return 0, false, nil
}
