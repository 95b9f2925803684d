//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package rawsock

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// IO reads and writes a non-blocking socket through its RawConn with raw
// system calls: the runtime's deadlines, readiness waits and fd locking
// are the net package's (RawConn.Read and Write), but the calls
// themselves skip the scheduler's system-call bookkeeping
// (entersyscall/exitsyscall), which also wakes the runtime's monitor
// thread whenever the process was idle: about one futex wake-up and
// thread switch per request at a moderate request rate. A call on a
// non-blocking socket never blocks, which is what RawSyscall requires.
//
// One IO serves one goroutine's reads and one goroutine's writes at a
// time (like a net.Conn's); it allocates nothing per call.
type IO struct {
	rc syscall.RawConn

	rp   []byte
	rn   int
	rerr syscall.Errno
	rfn  func(fd uintptr) bool

	wp   []byte
	wn   int
	werr syscall.Errno
	wfn  func(fd uintptr) bool

	// SendRead's state (besides the read's): what is left to write, the
	// write's error, whether it waited. SendRead is a read and a write: no
	// other Read or Write may run meanwhile.
	out    []byte
	serr   syscall.Errno
	waited bool
	sfn    func(fd uintptr) bool
}

// NewIO returns an IO for rc.
func NewIO(rc syscall.RawConn) *IO {
	c := &IO{}
	c.init(rc)
	return c
}

func (c *IO) init(rc syscall.RawConn) {
	c.rc = rc
	c.rfn = c.readFd
	c.wfn = c.writeFd
	c.sfn = c.sendReadFd
}

// Conn is a TCP connection whose Read and Write go through an IO; the
// rest (deadlines, addresses, CloseWrite, SyscallConn) is the
// *net.TCPConn's. It is what a TLS connection is layered on, so that the
// records it reads and writes take the raw path too.
type Conn struct {
	*net.TCPConn
	io IO
}

// WrapTCP returns nc as a Conn when it is a *net.TCPConn, else nc.
func WrapTCP(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &Conn{TCPConn: tc}
	c.io.init(rc)
	return c
}

func (c *Conn) Read(p []byte) (int, error)  { return c.io.Read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.io.Write(p) }

// Read reads like net.Conn.Read: it waits (within the read deadline)
// until some bytes came, and reports io.EOF at the end of the stream.
func (c *IO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rp, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.rfn)
	n, errno := c.rn, c.rerr
	c.rp = nil
	switch {
	case err != nil:
		return 0, err // deadline or closed: the net package's error
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *IO) readFd(fd uintptr) bool {
	for {
		r, e := read(fd, c.rp)
		switch e {
		case 0:
			c.rn = r
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rerr = e
		return true
	}
}

// SendRead writes out, the last bytes of a message, then waits until the
// socket is readable (the reply), its read deadline passes or it is
// closed, and reads into p like Read: one step (see the package doc). It
// returns how many bytes it read and how many of out it wrote.
//
// sent < len(out) with a nil error means the socket buffer was full or
// the wait could not start (deadline passed, closed): nothing was read,
// and the caller writes the rest and then reads the ordinary way. A write
// error is returned as such (with n = 0); otherwise the error is the
// read's. Waited tells afterwards whether the step waited.
func (c *IO) SendRead(out, p []byte) (n, sent int, err error) {
	if len(p) == 0 {
		return 0, 0, nil
	}
	c.out, c.waited = out, false
	c.rp, c.rn, c.rerr, c.serr = p, 0, 0, 0
	err = c.rc.Read(c.sfn)
	n, sent = c.rn, len(out)-len(c.out)
	rerr, werr := c.rerr, c.serr
	c.rp, c.out = nil, nil
	switch {
	case werr != 0 && werr != syscall.EAGAIN:
		return 0, sent, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", werr)}
	case sent < len(out):
		return 0, sent, nil
	case err != nil:
		return 0, sent, err // deadline or closed: the net package's error
	case rerr != 0:
		return 0, sent, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return 0, sent, io.EOF
	}
	return n, sent, nil
}

// Waited reports whether the last SendRead waited for the reply after
// writing (false when it could not write everything).
func (c *IO) Waited() bool { return c.waited }

// sendReadFd is SendRead's read callback: the first call writes and
// starts the wait, a later one (the socket became readable) reads.
func (c *IO) sendReadFd(fd uintptr) bool {
	if c.waited {
		return c.readFd(fd)
	}
	for len(c.out) > 0 {
		n, e := write(fd, c.out)
		switch e {
		case 0:
			c.out = c.out[n:]
			continue
		case syscall.EINTR:
			continue
		}
		c.serr = e // EAGAIN included: the caller writes the rest
		return true
	}
	// The peer has not answered yet (its answer to bytes just written):
	// wait without trying the read.
	c.waited = true
	return false
}

// Write writes all of p like net.Conn.Write, waiting (within the write
// deadline) while the socket buffer is full.
func (c *IO) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wp, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.wfn)
	n, errno := c.wn, c.werr
	c.wp = nil
	switch {
	case errno != 0:
		return n, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", errno)}
	case err != nil:
		return n, err
	}
	return n, nil
}

func (c *IO) writeFd(fd uintptr) bool {
	for c.wn < len(c.wp) {
		r, e := write(fd, c.wp[c.wn:])
		switch e {
		case 0:
			c.wn += r
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.werr = e
		return true
	}
	return true
}

// read and write are the raw system calls. Under the race detector they
// go through package syscall, whose calls tell the detector about the
// bytes and about the ordering a write and the read that gets its bytes
// imply (the raw calls would make every test that synchronises through a
// loopback socket look racy).
func read(fd uintptr, p []byte) (int, syscall.Errno) {
	if raceEnabled {
		n, err := syscall.Read(int(fd), p)
		return n, errnoOf(err)
	}
	r, _, e := syscall.RawSyscall6(sysRead, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	return int(r), e
}

func write(fd uintptr, p []byte) (int, syscall.Errno) {
	if raceEnabled {
		n, err := syscall.Write(int(fd), p)
		if n < 0 {
			n = 0
		}
		return n, errnoOf(err)
	}
	r, _, e := syscall.RawSyscall6(sysWrite, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), sysWriteFlags, 0, 0)
	return int(r), e
}

// Peek looks at what the socket holds without taking it and without
// waiting (recvfrom with MSG_PEEK|MSG_DONTWAIT), as a raw system call
// like IO's: n > 0 means bytes are waiting, n == 0 with no error the
// peer's FIN, EAGAIN nothing yet. Callers run it under the socket's fd
// lock (RawConn.Control).
func Peek(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, syscall.EINVAL
	}
	if raceEnabled {
		n, _, err := syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if n < 0 {
			n = 0
		}
		return n, errnoOf(err)
	}
	r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}

// ReadsCounted reports whether the raw reads are read(2) calls, which the
// kernel counts in /proc/self/io (syscr): under the race detector, and off
// Linux. Tests that pin a read budget by that count run where it holds
// (make test runs the suite under -race).
const ReadsCounted = raceEnabled || sysRead == syscall.SYS_READ
