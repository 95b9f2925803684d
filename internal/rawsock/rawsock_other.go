//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package rawsock

import (
	"net"
	"syscall"
)

// Sender writes nothing where raw socket calls are not available: callers
// write the ordinary way (n = 0).
type Sender struct{}

// SendWait writes nothing and does not wait.
func (s *Sender) SendWait(rc syscall.RawConn, p []byte) (n int, waited bool, err error) {
	return 0, false, nil
}

// IO is never made where raw socket calls are not available (callers
// keep a nil *IO and use the net.Conn).
type IO struct{}

// Read is never called on this system.
func (c *IO) Read(p []byte) (int, error) { return 0, syscall.EINVAL }

// Write is never called on this system.
func (c *IO) Write(p []byte) (int, error) { return 0, syscall.EINVAL }

// WrapTCP returns nc: no raw path on this system.
func WrapTCP(nc net.Conn) net.Conn { return nc }
