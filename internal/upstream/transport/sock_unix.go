//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package transport

import (
	"crypto/tls"
	"net"
	"syscall"

	"github.com/pingap-go/pingap/internal/rawsock"
)

// sock is the raw socket under an upstream connection, for what the net
// package cannot do without an extra system call. It allocates nothing per
// use: the callbacks are made once per connection.
type sock struct {
	rc syscall.RawConn
	// plain: nc is the socket itself (no TLS over it), so bytes written
	// here are the request's bytes.
	plain bool

	buf   [1]byte
	alive bool
	peek  func(fd uintptr)

	raw *rawsock.IO // reads and writes of a plain socket; nil under TLS
}

func newSock(nc net.Conn) *sock {
	plain := true
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
		plain = false
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &sock{rc: rc, plain: plain}
	s.peek = s.peekFd
	if plain {
		s.raw = rawsock.NewIO(rc)
	}
	return s
}

// Alive tells whether an idle connection is still usable without reading
// it: a non-blocking MSG_PEEK finds a FIN (0 bytes), a reset, or bytes the
// peer should not have sent. It is used before sending a body on a pooled
// connection, because a stale connection can only be retried while the
// body has not been read from. A nil sock (unsupported connection)
// reports true.
func (s *sock) Alive() bool {
	if s == nil {
		return true
	}
	if err := s.rc.Control(s.peek); err != nil {
		return false
	}
	return s.alive
}

func (s *sock) peekFd(fd uintptr) {
	_, e := rawsock.Peek(fd, s.buf[:])
	s.alive = e == syscall.EAGAIN || e == syscall.EWOULDBLOCK
}

// canSendRead reports whether reads may send a request's end
// (respReader, rawsock.IO.SendRead) on this connection.
func (s *sock) canSendRead() bool { return s != nil && s.raw != nil }
