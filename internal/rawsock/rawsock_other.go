//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package rawsock

import (
	"net"
	"syscall"
)

// IO is never made where raw socket calls are not available (callers
// keep a nil *IO and use the net.Conn).
type IO struct{}

// Read is never called on this system.
func (c *IO) Read(p []byte) (int, error) { return 0, syscall.EINVAL }

// SendRead is never called on this system.
func (c *IO) SendRead(out, p []byte) (n, sent int, err error) { return 0, 0, syscall.EINVAL }

// Waited is never called on this system.
func (c *IO) Waited() bool { return false }

// Write is never called on this system.
func (c *IO) Write(p []byte) (int, error) { return 0, syscall.EINVAL }

// WrapTCP returns nc: no raw path on this system.
func WrapTCP(nc net.Conn) net.Conn { return nc }
