package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// watchDelay is how long an HTTP/1.1 request without a body may run before
// the connection is watched for a client disconnect. Fast requests (the
// common case) finish before it and cost two atomic stores; a slow one gets
// a goroutine blocked in a 1-byte read on the connection, which sees the
// client's EOF or reset and cancels the request's context (the proxy then
// answers 499 and releases the upstream attempt, a limit slot, a mock
// delay...).
//
// No timer per request or connection: one sweep per server (sweepWatches)
// runs every watchDelay/2 while any HTTP/1 request is being handled and
// starts the reads of those past watchDelay, so a request is watched from
// between watchDelay and 1.5*watchDelay on. A per-connection timer woke a
// goroutine every watchDelay on each connection with recent requests,
// which at a low request rate was a good part of the process's wake-ups.
// The sweep looks only at the connections listed since its last run
// (Server.watching): a connection is listed by its first request after
// the sweep found it idle, so a busy one costs no lock per request, and
// 10K mostly idle connections are not walked 20 times a second.
const watchDelay = 100 * time.Millisecond

// aLongTimeAgo is a read deadline in the past: it unblocks the watcher's
// read at once.
var aLongTimeAgo = time.Unix(1, 0)

// Values of watch.state besides a start time.
const (
	watchOff      int64 = 0  // no request is being handled
	watchBody     int64 = 1  // the handler has not read the whole body yet
	watchFrom     int64 = 2  // state-watchFrom: when it became watchable, ns since Server.epoch
	watchStarting int64 = -1 // the sweep started a read (watchRead)
	watchReading  int64 = -2 // watchRead cleared the deadline and reads
)

// watch is the disconnect watcher of one HTTP/1 connection, allocated on
// its first request and reused for all later ones. It is also the
// request's context (reqCtx), so that the context the proxy and the
// plugins hold is the one the watcher cancels.
//
// state is the hand-over between the connection's goroutine (startWatch,
// BodyEOF, stopWatch), the sweep and the read: only the sweep moves a
// start time to watchStarting, only watchRead moves watchStarting to
// watchReading, and stopWatch takes any state back to watchOff and then
// waits for a read that was started.
type watch struct {
	c      *conn
	state  atomic.Int64
	listed atomic.Bool   // in Server.watching (set under its lock)
	ended  chan struct{} // watchRead is done
	got    bool          // the read returned a byte (pipelined input)
	one    [1]byte       // that byte
	ctx    reqCtx
}

// startWatch arms the watcher for a request whose handler is about to
// run, and returns the request's context.
//
// A request without a body is watchable from its start on. One with a
// body becomes watchable in BodyEOF, once the handler has read the whole
// body: until then the handler's own reads see a client that goes away,
// and the watcher must not read the connection under them.
func (c *conn) startWatch(armed bool) context.Context {
	w := c.watch.Load()
	if w == nil {
		w = &watch{c: c, ended: make(chan struct{}, 1)}
		w.ctx.stop = w.ctx.stopSlot
		c.watch.Store(w)
	}
	w.ctx.reset()
	if armed {
		// The request's start: a clock reading the server made already.
		w.state.Store(watchFrom + max(int64(c.ctx.Start.Sub(c.srv.epoch)), 0))
	} else {
		w.state.Store(watchBody)
	}
	// The state first, then the list (the sweep unlists, then looks at
	// the state: one of the two sees the other).
	if !w.listed.Load() {
		c.srv.listWatch(w)
	}
	return &w.ctx
}

// BodyEOF implements httpx.BodyEOFHook: the request's body was read to its
// end, so nothing reads the connection until the response is done; watch
// it from watchDelay on, as a request without a body.
func (w *watch) BodyEOF() {
	w.state.CompareAndSwap(watchBody, watchFrom+w.c.srv.mono())
}

// listWatch puts w on the sweep's list and makes sure the sweep runs.
func (s *Server) listWatch(w *watch) {
	s.watchMu.Lock()
	w.listed.Store(true)
	s.watching = append(s.watching, w)
	if !s.sweeping {
		s.sweeping = true
		s.sweep.Reset(watchDelay / 2)
	}
	s.watchMu.Unlock()
}

// sweepWatches runs on the server's sweep timer: it starts the watch of
// every listed request watchable for watchDelay, drops the connections
// that handle no request from the list, and re-arms itself while the
// list is not empty.
//
// A connection is dropped only if, once unlisted, its state still says
// no request: a request that starts meanwhile either is seen here (the
// connection stays listed) or sees itself unlisted (and lists itself
// again once the sweep is done). The two may both happen; a connection
// listed twice is dropped twice later, and its watch started once (the
// state's compare-and-swap).
func (s *Server) sweepWatches() {
	now := s.mono()
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	ws := s.watching
	for i := 0; i < len(ws); {
		w := ws[i]
		st := w.state.Load()
		if st == watchOff {
			w.listed.Store(false)
			if st = w.state.Load(); st == watchOff {
				last := len(ws) - 1
				ws[i], ws[last] = ws[last], nil
				ws = ws[:last]
				continue
			}
			w.listed.Store(true)
		}
		if st >= watchFrom && now-(st-watchFrom) >= int64(watchDelay) &&
			w.state.CompareAndSwap(st, watchStarting) {
			go w.watchRead()
		}
		i++
	}
	s.watching = ws
	if len(ws) > 0 {
		s.sweep.Reset(watchDelay / 2)
	} else {
		s.sweeping = false
	}
}

// watchRead reads one byte from the connection until the request ends
// (stopWatch moves the read deadline into the past). EOF or an error other
// than that timeout means the client went away: the request's context is
// cancelled.
func (w *watch) watchRead() {
	rwc := w.c.rwc
	// The head's read deadline must not end the watch early. Cleared before
	// the state says reading, so that stopWatch's past deadline, set once
	// it saw that, always comes after it.
	rwc.SetReadDeadline(time.Time{})
	if !w.state.CompareAndSwap(watchStarting, watchReading) {
		w.ended <- struct{}{} // the request ended first: stopWatch waits
		return
	}
	n, err := rwc.Read(w.one[:])
	stopped := w.state.Load() == watchOff
	switch {
	case n > 0:
		w.got = true // the next (pipelined) request: no disconnect
	case err != nil && !(stopped && isTimeout(err)):
		w.ctx.cancel()
	}
	w.ended <- struct{}{}
}

// stopWatch ends the watch of the request whose handler returned (or
// hijacked the connection): it unblocks and waits for a read the sweep
// started, keeping the byte it read for the next request.
func (c *conn) stopWatch() {
	w := c.watch.Load()
	if w == nil {
		return
	}
	switch w.state.Swap(watchOff) {
	case watchReading:
		c.setReadDeadline(aLongTimeAgo)
	case watchStarting:
		// watchRead finds the state off and reads nothing.
	default:
		return
	}
	<-w.ended
	// Every later read sets its own deadline; clear the past one (or the
	// one watchRead cleared) anyway.
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
// that registering an abort for the upstream round trip stays free. The
// request path (reset, AfterFunc on the slot, its stop, Err) takes no
// lock: two atomic read-modify-writes per request; only the Done channel
// is made and closed under mu.
type reqCtx struct {
	canceled atomic.Bool
	slot     atomic.Int32 // slotEmpty, slotSet (f waits for a cancel), slotRun
	f        func()       // the slot's function; written before slotSet
	stop     func() bool  // stopSlot, made once

	mu   sync.Mutex
	done chan struct{}
}

// Values of reqCtx.slot.
const (
	slotEmpty int32 = iota
	slotSet
	slotRun // cancel (or a late AfterFunc) took f to run it
)

// reset readies the context for the connection's next request. No cancel
// runs meanwhile (stopWatch waited for the watcher's read).
func (r *reqCtx) reset() {
	if r.canceled.Load() {
		r.canceled.Store(false)
		r.mu.Lock()
		r.done = nil // closed: made anew when asked for
		r.mu.Unlock()
	}
	if r.slot.Load() != slotEmpty {
		r.slot.Store(slotEmpty)
	}
	r.f = nil
}

func (r *reqCtx) cancel() {
	if !r.canceled.CompareAndSwap(false, true) {
		return
	}
	r.mu.Lock()
	if r.done == nil {
		r.done = make(chan struct{})
	}
	close(r.done)
	r.mu.Unlock()
	if r.slot.CompareAndSwap(slotSet, slotRun) {
		go r.f()
	}
}

// Deadline implements context.Context: there is none.
func (r *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context.
func (r *reqCtx) Done() <-chan struct{} {
	r.mu.Lock()
	if r.done == nil {
		r.done = make(chan struct{}) // cancel closes it
	}
	d := r.done
	r.mu.Unlock()
	return d
}

// Err implements context.Context.
func (r *reqCtx) Err() error {
	if r.canceled.Load() {
		return context.Canceled
	}
	return nil
}

// Value implements context.Context: it carries none.
func (r *reqCtx) Value(any) any { return nil }

// AfterFunc arranges for f to run in its own goroutine once the context is
// cancelled; stop prevents that and reports whether it did (the contract
// of context.AfterFunc). The first registration uses the allocation-free
// slot; more at once fall back to a goroutine.
func (r *reqCtx) AfterFunc(f func()) (stop func() bool) {
	if r.canceled.Load() {
		go f()
		return func() bool { return false }
	}
	if r.slot.Load() == slotEmpty {
		r.f = f
		if r.slot.CompareAndSwap(slotEmpty, slotSet) {
			// A cancel between the check above and the slot's setting
			// found it empty: whichever of the two takes the slot runs f.
			if r.canceled.Load() && r.slot.CompareAndSwap(slotSet, slotRun) {
				go f()
			}
			return r.stop
		}
	}
	done := r.Done()
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
	return r.slot.CompareAndSwap(slotSet, slotEmpty)
}
