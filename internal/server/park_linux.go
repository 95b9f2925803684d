//go:build linux

package server

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pingap-go/pingap/internal/rawsock"
)

// parkState is a connection's epoll parking state (see park.go).
type parkState struct {
	parkCommon
	slot  uint32      // 1 + the connection's index in poller.slots; 0: none yet
	added atomic.Bool // the fd is in the epoll set (later parks use MOD)
	gone  bool        // what peek found; owner only
	ev    syscall.EpollEvent
	rc    syscall.RawConn  // the socket's, for epoll_ctl under its fd lock
	ctl   func(fd uintptr) // c.epollCtl, made once
	peek  func(fd uintptr) // c.peekFd, made once
}

// The Control callbacks run while the connection may already belong to
// another goroutine (the poller resumes it as soon as epoll_ctl
// succeeded): epollCtl reads only fields written once before the first
// park (ev, srv.poll) or atomics (added, deadline, state).

// poller is a server's epoll set of parked connections and the goroutine
// that resumes them. The epoll fd is itself registered in Go's network
// poller (an epoll fd is readable while it has ready events), so the
// poller goroutine waits like any network read: no thread is blocked in
// epoll_wait.
//
// An event names its connection by slot and generation (the event's data),
// never by pointer or fd: a connection's slot is freed (generation bumped)
// when it finishes, so an event that was already on its way for a closed
// connection (or for an fd number since reused) finds a stale generation
// and is dropped. Closing a socket removes it from the epoll set.
type poller struct {
	f    *os.File // the epoll fd, in Go's network poller
	epfd int      // f's fd (f.Fd would make it blocking); open while any conn lives

	mu    sync.Mutex
	slots []pollSlot
	free  []uint32
}

type pollSlot struct {
	c   *conn
	gen uint32
}

// errNoEpoll: the epoll fd could not be watched by Go's network poller.
var errNoEpoll = errors.New("server: epoll fd not pollable")

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "pingap-epoll")
	// Only a file in the network poller supports deadlines: that is the
	// check that RawConn.Read below will wait there.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, errNoEpoll
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &poller{f: f, epfd: fd}
	go p.run(rc)
	return p, nil
}

// run waits for parked connections to become readable and resumes them,
// until the poller is closed.
func (p *poller) run(rc syscall.RawConn) {
	events := make([]syscall.EpollEvent, 128)
	var failed error
	wait := func(fd uintptr) bool {
		for {
			n, err := epollWaitNow(fd, events)
			if err == syscall.EINTR {
				continue
			}
			if err != 0 {
				failed = err
				return true
			}
			if n == 0 {
				return false // drained: wait in the network poller
			}
			for i := range events[:n] {
				p.wake(uint32(events[i].Fd), uint32(events[i].Pad), events[i].Events)
			}
		}
	}
	for failed == nil {
		if err := rc.Read(wait); err != nil {
			return // closed
		}
	}
}

// epollWaitNow collects the ready events without waiting, as a raw system
// call. syscall.EpollWait goes through the runtime's entersyscall, which
// wakes the monitor thread (sysmon) whenever the process was idle: with
// many connections that each send a request now and then, that was a
// sysmon wake-up per poller wake-up (entersyscallWakeSysmon) and sysmon
// kept polling at its shortest interval. A call that cannot block needs
// none of it.
func epollWaitNow(epfd uintptr, events []syscall.EpollEvent) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, epfd,
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(r), e
}

// wake resumes the connection of an event, unless the event is stale or
// the connection was claimed already (idle timeout, Shutdown). A client
// that closed while parked is finished right here: no goroutine and no
// buffers just to read its EOF (10K clients leaving at once would
// otherwise take 10K goroutines and 90 MB for a moment).
func (p *poller) wake(slot, gen, events uint32) {
	var c *conn
	p.mu.Lock()
	if int(slot) < len(p.slots) && p.slots[slot].gen == gen {
		c = p.slots[slot].c
	}
	p.mu.Unlock()
	if c == nil || !c.unpark() {
		return
	}
	c.pk.timer.Stop()
	if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 && c.peerGone() {
		c.finish()
		return
	}
	go c.resumeParked()
}

// peerGone reports whether a connection its caller owns has nothing left
// to read: EOF or an error, without a request byte before it (a client may
// half-close after its request). It peeks without blocking.
func (c *conn) peerGone() bool {
	err := c.pk.rc.Control(c.pk.peek)
	return err != nil || c.pk.gone
}

// peekFd is peerGone's look at the socket.
func (c *conn) peekFd(fd uintptr) {
	n, e := rawsock.Peek(fd, c.cr.one[:])
	c.pk.gone = e == 0 && n == 0 || e != 0 && e != syscall.EAGAIN && e != syscall.EINTR
}

// assign gives c a slot (for life) and returns the event data naming it.
func (p *poller) assign(c *conn) {
	p.mu.Lock()
	var i uint32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		i = uint32(len(p.slots))
		p.slots = append(p.slots, pollSlot{})
	}
	p.slots[i].c = c
	c.pk.slot = i + 1
	c.pk.ev.Fd = int32(i)
	c.pk.ev.Pad = int32(p.slots[i].gen)
	p.mu.Unlock()
}

// release frees c's slot; a later event for it is stale.
func (p *poller) release(c *conn) {
	if c.pk.slot == 0 {
		return
	}
	i := c.pk.slot - 1
	p.mu.Lock()
	p.slots[i].c = nil
	p.slots[i].gen++
	p.free = append(p.free, i)
	p.mu.Unlock()
	c.pk.slot = 0
}

func (p *poller) close() { p.f.Close() }

// releaseSlot frees the connection's slot in the epoll set, if it has one
// (then it made the poller: reading srv.poll is ordered after that).
func (c *conn) releaseSlot() {
	if c.pk.slot != 0 {
		c.srv.poll.release(c)
	}
}

// parkEpoll parks c in the server's epoll set until it is readable or
// deadline passes. It reports false, with c untouched and still the
// caller's, when that is not possible (no epoll, not a socket); true means
// the caller has given c up.
func (c *conn) parkEpoll(deadline time.Time) bool {
	p := c.srv.poller()
	if p == nil {
		return false
	}
	if c.pk.slot == 0 {
		if !c.raw() {
			return false
		}
		c.pk.ev.Events = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT
		p.assign(c)
	}
	c.armPark(deadline)
	// epoll_ctl runs under the socket's fd lock: the fd cannot be closed
	// (and its number reused) under it. From the moment it succeeds the
	// poller may resume c on another goroutine: nothing here touches c
	// after that.
	if err := c.pk.rc.Control(c.pk.ctl); err != nil && c.unpark() {
		// Closed under us (Shutdown): the goroutine park's read fails at
		// once and finishes the connection.
		c.pk.timer.Stop()
		go c.resume(deadline)
	}
	return true
}

// epollCtl adds or re-arms the parked connection's fd in the epoll set. If
// that fails, the connection is claimed back and parked on a goroutine
// instead (unless the timer or Shutdown claimed it first).
func (c *conn) epollCtl(fd uintptr) {
	p := c.srv.poll
	op := syscall.EPOLL_CTL_MOD
	if !c.pk.added.Swap(true) {
		op = syscall.EPOLL_CTL_ADD
	}
	ev := c.pk.ev // a copy: the kernel writes nothing, but c is shared from here on
	err := syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	switch {
	case err == syscall.ENOENT && op == syscall.EPOLL_CTL_MOD:
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	case err == syscall.EEXIST && op == syscall.EPOLL_CTL_ADD:
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
	}
	if err != nil && c.unpark() {
		c.pk.added.Store(false)
		c.pk.timer.Stop()
		go c.resume(c.srv.epoch.Add(time.Duration(c.pk.deadline.Load())))
	}
}

// raw makes the socket's RawConn and the callbacks that use it, once; it
// reports false when the connection is not one of the net package's own
// sockets (a wrapper could hold bytes it read ahead, which neither epoll
// nor a raw read would see).
func (c *conn) raw() bool {
	if c.pk.rc != nil {
		return true
	}
	var sc syscall.Conn
	switch nc := c.nc.(type) {
	case *net.TCPConn:
		sc = nc
	case *net.UnixConn:
		sc = nc
	default:
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	c.pk.ctl = c.epollCtl
	c.pk.peek = c.peekFd
	c.pk.rc = rc
	if c.rwc == c.nc {
		c.io = rawsock.NewIO(rc)
	}
	return true
}

// canSendRead reports whether the end of a response may be left to the
// next read, which writes it, waits until the connection is readable (the
// next request), its read deadline passes or it is closed, and reads, in
// one step (connReader, rawsock.IO.SendRead).
//
// What the wait cannot see is input that came after the request was read
// and before that step: a pipelined request. It is found when the
// idle-release wait ends (waitForRequest asks pendingInput), and the
// connection is marked pipelined: it flushes the ordinary way from then
// on, as does every connection seen pipelining before. So a pipelined
// request that raced its predecessor's response waits idleRelease once
// per connection at most. TLS connections never come here (bytes written
// here would bypass TLS).
func (c *conn) canSendRead() bool {
	return c.rwc == c.nc && c.raw() && c.io != nil
}

// pendingInput reports whether the client sent bytes not read yet (a
// non-blocking peek).
func (c *conn) pendingInput() bool {
	var n int
	err := c.pk.rc.Control(func(fd uintptr) {
		n, _ = rawsock.Peek(fd, c.cr.one[:])
	})
	return err == nil && n > 0
}
