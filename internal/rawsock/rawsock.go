//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

// Package rawsock does, on a socket's syscall.RawConn, what the net
// package cannot do without an extra system call.
//
// Sender writes the last bytes of a message and then waits until the
// socket is readable (the peer's reply), in one step. The net package's
// Read tries the system call before it waits on the network poller, so a
// read right after sending a request (or a response, on a keep-alive
// connection) always fails first: the peer has not answered yet. The
// wait cannot simply be entered without that read, because the runtime
// resets the socket's readiness at the start of every read and would
// miss bytes that came before. A raw read callback runs after that reset:
// written from the callback, the message's reply cannot be missed, and
// the read that follows the wait finds it.
//
// What arrived before the callback (after the caller's last read) is not
// seen by the wait: callers use Sender only where the peer sends nothing
// unasked (an upstream between responses), or detect it (the HTTP/1.1
// server's pipelining check).
package rawsock

import (
	"net"
	"os"
	"syscall"
)

// Sender holds the state of one SendWait at a time; it is reused, and the
// callback is made once, so SendWait allocates nothing.
type Sender struct {
	out    []byte
	err    error
	waited bool
	step   func(fd uintptr) bool
}

// SendWait writes p on rc's socket and waits until the socket is
// readable, its read deadline passes or it is closed. It returns how much
// of p it wrote, whether it waited, and the write's error. n < len(p)
// with a nil error means the socket buffer was full or the wait could not
// start (deadline passed, closed): the caller writes the rest the ordinary
// way. Whatever ended the wait, the caller's next read tells.
func (s *Sender) SendWait(rc syscall.RawConn, p []byte) (n int, waited bool, err error) {
	if s.step == nil {
		s.step = s.stepFd
	}
	s.out, s.err, s.waited = p, nil, false
	rc.Read(s.step)
	n, waited, err = len(p)-len(s.out), s.waited, s.err
	s.out, s.err = nil, nil
	if err == nil || err == syscall.EAGAIN {
		return n, waited, nil
	}
	return n, waited, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)}
}

// stepFd is the read callback: the first call writes, a later one (the
// socket became readable) ends the wait.
func (s *Sender) stepFd(fd uintptr) bool {
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
			s.err = err
			return true
		}
	}
	s.waited = true
	return false
}
