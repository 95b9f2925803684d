//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package transport

import (
	"net"

	"github.com/pingap-go/pingap/internal/rawsock"
)

// sock is a no-op where raw socket calls are not available: stale
// connections are then only detected (and retried) for requests without a
// body, and requests are written the ordinary way.
type sock struct{ raw *rawsock.IO }

func newSock(net.Conn) *sock { return nil }

func (s *sock) Alive() bool       { return true }
func (s *sock) canSendRead() bool { return false }
