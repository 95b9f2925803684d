package server

import (
	"sync/atomic"
	"time"
)

// Parking an idle connection without a goroutine.
//
// A keep-alive HTTP/1.1 connection idle past idleRelease (and a new one
// waiting for its first byte) has no buffers and no request state; what
// is left is its goroutine, blocked in a read. On Linux a plain-TCP
// connection gives that up too: it is registered, one-shot, in the
// server's epoll set (park_linux.go) and its goroutine exits. The poller
// (one goroutine per server, itself waiting in Go's network poller) starts
// a new goroutine that serves the connection once it becomes readable
// (a request, or the client's close). A per-connection timer, reused
// across parks, closes it at the idle deadline. TLS connections (a
// tls.Conn may hold a buffered record) and other systems keep the
// goroutine park (conn.resume).
//
// Ownership: while parked no goroutine owns the connection. Whoever
// swaps pk.state from parkParked to parkOwned owns it: the poller (it
// resumes), the timer (it finishes: idle timeout) or Shutdown/Close (they
// finish it).

// Values of parkState.state.
const (
	parkOwned  uint32 = iota // a goroutine serves or waits on the connection
	parkParked               // in the epoll set: the first to claim it owns it
)

// unpark claims a parked connection; it reports whether the caller now
// owns it.
func (c *conn) unpark() bool {
	if c.pk.state.CompareAndSwap(parkParked, parkOwned) {
		c.srv.parked.Add(-1)
		return true
	}
	return false
}

// parkExpired runs on the park timer: a connection still parked at its
// idle deadline is closed. A late run for an earlier park (the timer was
// reset since) finds a deadline in the future and does nothing.
func (c *conn) parkExpired() {
	if c.srv.mono() < c.pk.deadline.Load() {
		return
	}
	if c.unpark() {
		c.finish()
	}
}

// resumeParked continues a connection the poller found readable, on a new
// goroutine: the first bytes of the next request (or the client's EOF)
// go straight into fresh buffers, then the connection loop runs on.
func (c *conn) resumeParked() {
	deadline := c.srv.epoch.Add(time.Duration(c.pk.deadline.Load()))
	if c.waitReadable(deadline) && c.serveH1(time.Time{}, true) {
		return // parked again
	}
	c.finish()
}

// waitReadable reads the first bytes of a request into fresh buffers, by
// deadline (the poller said the socket is readable: this does not wait,
// unless the wake-up was spurious).
func (c *conn) waitReadable(deadline time.Time) bool {
	c.acquireBuffers()
	c.setReadDeadline(deadline)
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	c.setReadDeadline(time.Now().Add(c.srv.opts.Load().ReadHeaderTimeout))
	return true
}

// park parks an idle connection that holds no buffers until its next
// request, until deadline: in the epoll set where available, else on a
// fresh goroutine blocked in a 1-byte read (resume). The caller gives the
// connection up either way.
func (c *conn) park(deadline time.Time) {
	if c.tlsState == nil && !c.opts.noEpoll && c.parkEpoll(deadline) {
		return
	}
	go c.resume(deadline)
}

// armPark records the idle deadline of a park and (re)arms the timer that
// enforces it; it publishes the connection as parked last.
func (c *conn) armPark(deadline time.Time) {
	c.pk.deadline.Store(int64(deadline.Sub(c.srv.epoch)))
	d := time.Until(deadline)
	if c.pk.timer == nil {
		c.pk.timer = time.AfterFunc(d, c.parkExpired)
	} else {
		c.pk.timer.Reset(d)
	}
	c.srv.parked.Add(1)
	c.pk.state.Store(parkParked)
}

// parkCommon is the part of parkState every system has.
type parkCommon struct {
	state    atomic.Uint32
	deadline atomic.Int64 // the idle deadline, ns since Server.epoch
	timer    *time.Timer  // runs parkExpired; made at the first park, reused
}

func (c *conn) stopParkTimer() {
	if c.pk.timer != nil {
		c.pk.timer.Stop()
	}
}
