//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package transport

import (
	"crypto/tls"
	"net"
	"os"
	"syscall"
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
	peek  func(fd uintptr) bool

	out    []byte // what sendWait still has to write
	werr   error
	waited bool
	send   func(fd uintptr) bool
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
	s.send = s.sendFd
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
	if err := s.rc.Read(s.peek); err != nil {
		return false
	}
	return s.alive
}

func (s *sock) peekFd(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), s.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	s.alive = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
	return true
}

// canSendWait reports whether sendWait works on this connection.
func (s *sock) canSendWait() bool { return s != nil && s.plain }

// sendWait writes p, the last bytes of a request, and then waits until the
// socket is readable (the response is coming), or the read deadline
// passes, or the connection is aborted. It returns how much of p it wrote
// and the write's error; the caller writes the rest (n < len(p), err nil:
// the socket buffer was full) the ordinary way. Whatever ended the wait,
// the caller's next read tells (it reports a deadline or abort itself).
//
// Why: the net package's read tries the system call first and waits for
// readiness only after it failed; right after sending a request that read
// always fails (the upstream has not answered yet): one wasted system call
// per request. A raw read callback runs after the runtime reset the
// socket's readiness, so a write made in it and then a wait catch every
// byte the upstream sends in reply: nothing can be missed, and the read
// that follows finds the response.
func (s *sock) sendWait(p []byte) (int, error) {
	s.out, s.werr, s.waited = p, nil, false
	s.rc.Read(s.send)
	n := len(p) - len(s.out)
	s.out = nil
	if s.werr == syscall.EAGAIN {
		return n, nil
	}
	if s.werr != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", s.werr)}
	}
	return n, nil
}

// sendFd is sendWait's callback: the first call writes, a later one (the
// socket became readable) ends the wait.
func (s *sock) sendFd(fd uintptr) bool {
	if s.waited {
		return true
	}
	for len(s.out) > 0 {
		n, err := syscall.Write(int(fd), s.out)
		if n > 0 {
			s.out = s.out[n:]
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			s.werr = err
			return true
		}
	}
	s.waited = true
	return false
}
