package server

import (
	"context"
	"sync"
	"time"
)

// watchDelay is how long an HTTP/1.1 request without a body may run before
// the connection is watched for a client disconnect. Fast requests (the
// common case) finish before it and cost one timer reset and stop; a slow
// one gets a goroutine blocked in a 1-byte read on the connection, which
// sees the client's EOF or reset and cancels the request's context (the
// proxy then answers 499 and releases the upstream attempt, a limit slot,
// a mock delay...).
const watchDelay = 100 * time.Millisecond

// aLongTimeAgo is a read deadline in the past: it unblocks the watcher's
// read at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch is the disconnect watcher of one HTTP/1 connection, allocated on
// its first request and reused for all later ones. It is
// also the request's context (reqCtx), so that the context the proxy and
// the plugins hold is the one the watcher cancels.
type watch struct {
	c     *conn
	timer *time.Timer // runs fire; reused, never stopped (see fire)

	mu      sync.Mutex
	active  bool  // a request is being handled: fire may start a read
	due     bool  // ... and may be watched from since+watchDelay on
	since   int64 // when it became watchable, ns since Server.epoch
	armed   bool  // the timer will run fire
	reading bool  // fire is in its read
	ended   chan struct{}
	got     bool    // the read returned a byte (pipelined input)
	one     [1]byte // that byte
	ctx     reqCtx
}

// startWatch arms the watcher for a request whose handler is about to
// run, and returns the request's context.
//
// A request without a body is watched from watchDelay on (armed). One with
// a body is armed by BodyEOF once the handler has read the whole body:
// until then the handler's own reads see a client that goes away, and the
// watcher must not read the connection under them.
//
// The timer is not reset and stopped per request (two runtime timer
// updates): armed once, it stays armed across fast requests, and when it
// runs, fire re-arms it for whatever is left of the current request's
// delay, or lets it lapse when no request is watchable. A busy connection
// thus costs one timer run per watchDelay, not two updates per request.
func (c *conn) startWatch(armed bool) context.Context {
	w := c.watch
	if w == nil {
		w = &watch{c: c, ended: make(chan struct{}, 1)}
		w.ctx.stop = w.ctx.stopSlot
		w.timer = time.AfterFunc(time.Hour, w.fire)
		w.timer.Stop()
		c.watch = w
	}
	w.ctx.reset()
	w.mu.Lock()
	w.active = true
	w.due = armed
	if armed {
		// The request's start: a clock reading the server made already.
		w.since = int64(c.ctx.Start.Sub(c.srv.epoch))
		w.armLocked(watchDelay)
	}
	w.mu.Unlock()
	return &w.ctx
}

// armLocked makes sure fire runs within d (w.mu held).
func (w *watch) armLocked(d time.Duration) {
	if !w.armed {
		w.armed = true
		w.timer.Reset(d)
	}
}

// BodyEOF implements httpx.BodyEOFHook: the request's body was read to its
// end, so nothing reads the connection until the response is done; watch
// it from watchDelay on, as a request without a body.
func (w *watch) BodyEOF() {
	w.mu.Lock()
	w.due = true
	w.since = w.c.srv.mono()
	w.armLocked(watchDelay)
	w.mu.Unlock()
}

// fire runs on the timer's goroutine once a request took watchDelay: it
// reads one byte from the connection until the request ends (stopWatch
// moves the read deadline into the past). EOF or an error other than that
// timeout means the client went away: the request's context is cancelled.
func (w *watch) fire() {
	w.mu.Lock()
	w.armed = false
	if !w.active || !w.due || w.reading {
		w.mu.Unlock()
		return
	}
	if left := watchDelay - time.Duration(w.c.srv.mono()-w.since); left > 0 {
		// A later request than the one that armed the timer.
		w.armLocked(left)
		w.mu.Unlock()
		return
	}
	w.reading = true
	rwc := w.c.rwc
	// The head's read deadline must not end the watch early. Cleared under
	// mu, so that stopWatch's past deadline always comes after it.
	rwc.SetReadDeadline(time.Time{})
	w.mu.Unlock()
	n, err := rwc.Read(w.one[:])
	w.mu.Lock()
	stopped := !w.active
	w.mu.Unlock()
	switch {
	case n > 0:
		w.got = true // the next (pipelined) request: no disconnect
	case err != nil && !(stopped && isTimeout(err)):
		w.ctx.cancel()
	}
	w.ended <- struct{}{}
}

// stopWatch ends the watch of the request whose handler returned (or
// hijacked the connection): it stops the timer, or unblocks and waits for
// a running read, keeping the byte it read for the next request.
func (c *conn) stopWatch() {
	w := c.watch
	if w == nil {
		return
	}
	w.mu.Lock()
	if !w.active {
		w.mu.Unlock()
		return
	}
	w.active = false
	reading := w.reading
	w.reading = false
	w.mu.Unlock()
	if !reading {
		// The timer, if armed, stays so: fire sees !active, or the
		// next request.
		return
	}
	c.setReadDeadline(aLongTimeAgo)
	<-w.ended
	// Every later read sets its own deadline; clear the past one anyway.
	c.setReadDeadline(time.Time{})
	if w.got {
		w.got = false
		c.pipelined = true
		c.cr.one[0] = w.one[0]
		c.cr.pending = true
	}
}

// reqCtx is the context of an HTTP/1 request without a body: never done
// until the watcher sees the client go away. It is reused per connection;
// its Done channel is made only when asked for and kept until a cancel.
//
// It implements AfterFunc (the interface context.AfterFunc and the
// upstream transport look for), with one slot that allocates nothing, so
// that registering an abort for the upstream round trip stays free.
type reqCtx struct {
	mu   sync.Mutex
	done chan struct{}
	err  error
	f    func()      // the slot's function, run on cancel
	stop func() bool // stopSlot, made once
}

func (r *reqCtx) reset() {
	r.mu.Lock()
	if r.err != nil {
		r.err = nil
		r.done = nil // closed: made anew when asked for
	}
	r.f = nil
	r.mu.Unlock()
}

func (r *reqCtx) cancel() {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return
	}
	r.err = context.Canceled
	if r.done == nil {
		r.done = make(chan struct{})
	}
	close(r.done)
	f := r.f
	r.f = nil
	r.mu.Unlock()
	if f != nil {
		go f()
	}
}

// Deadline implements context.Context: there is none.
func (r *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context.
func (r *reqCtx) Done() <-chan struct{} {
	r.mu.Lock()
	if r.done == nil {
		r.done = make(chan struct{})
	}
	d := r.done
	r.mu.Unlock()
	return d
}

// Err implements context.Context.
func (r *reqCtx) Err() error {
	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	return err
}

// Value implements context.Context: it carries none.
func (r *reqCtx) Value(any) any { return nil }

// AfterFunc arranges for f to run in its own goroutine once the context is
// cancelled; stop prevents that and reports whether it did (the contract
// of context.AfterFunc). The first registration uses the allocation-free
// slot; more at once fall back to a goroutine.
func (r *reqCtx) AfterFunc(f func()) (stop func() bool) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if r.f == nil {
		r.f = f
		r.mu.Unlock()
		return r.stop
	}
	if r.done == nil {
		r.done = make(chan struct{})
	}
	done := r.done
	r.mu.Unlock()
	var once sync.Once
	stopped := make(chan struct{})
	go func() {
		select {
		case <-done:
			ran := false
			once.Do(func() { ran = true })
			if ran {
				f()
			}
		case <-stopped:
		}
	}()
	return func() bool {
		did := false
		once.Do(func() { did = true; close(stopped) })
		return did
	}
}

// stopSlot is the slot's stop function.
func (r *reqCtx) stopSlot() bool {
	r.mu.Lock()
	had := r.f != nil
	r.f = nil
	r.mu.Unlock()
	return had
}
