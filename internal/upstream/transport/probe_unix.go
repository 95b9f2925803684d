//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package transport

import (
	"crypto/tls"
	"net"
	"syscall"
)

// prober tells whether an idle connection is still usable without reading
// it: a non-blocking MSG_PEEK on the socket finds a FIN (0 bytes), a reset,
// or bytes the peer should not have sent. It is used before sending a body
// on a pooled connection, because a stale connection can only be retried
// while the body has not been read from. It allocates nothing per probe.
type prober struct {
	rc    syscall.RawConn
	buf   [1]byte
	alive bool
	fn    func(fd uintptr) bool
}

func newProber(nc net.Conn) *prober {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &prober{rc: rc}
	p.fn = func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		p.alive = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	}
	return p
}

// Alive reports whether the peer has neither closed nor written to the
// connection. A nil prober (unsupported connection) reports true.
func (p *prober) Alive() bool {
	if p == nil {
		return true
	}
	if err := p.rc.Read(p.fn); err != nil {
		return false
	}
	return p.alive
}
