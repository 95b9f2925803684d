//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package transport

import (
	"io"
	"net"
)

// sock is a no-op where raw socket calls are not available: stale
// connections are then only detected (and retried) for requests without a
// body, and requests are written the ordinary way.
type sock struct{ raw io.ReadWriter }

func newSock(net.Conn) *sock { return nil }

func (s *sock) Alive() bool                    { return true }
func (s *sock) canSendWait() bool              { return false }
func (s *sock) sendWait(p []byte) (int, error) { return 0, nil }
