package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// slowHandler answers "ok" after the request's context is done or after
// wait, reporting on done whether it saw the cancellation.
func slowHandler(wait time.Duration, done chan<- error) HandlerFunc {
	return func(c *httpx.Ctx) {
		if c.Req.Path == "/slow" {
			t := time.NewTimer(wait)
			select {
			case <-c.Context.Done():
				t.Stop()
				done <- c.Context.Err()
			case <-t.C:
				done <- nil
			}
		}
		var h httpx.Header
		c.W.WriteHeader(200, &h, 2)
		c.W.Write([]byte("ok"))
		c.W.Finish(nil)
	}
}

// TestDisconnectCancelsContext: a client that closes while a request
// without a body is handled cancels the request's context, also when
// fast requests came before it on the connection (the server's sweep,
// kept running by them, must still watch the slow one from its own
// start).
func TestDisconnectCancelsContext(t *testing.T) {
	for _, fastBefore := range []int{0, 20} {
		t.Run(fmt.Sprintf("after %d fast", fastBefore), func(t *testing.T) {
			done := make(chan error, 1)
			addr, _ := startServer(t, slowHandler(10*time.Second, done), Options{Name: "web"})
			cl := dialRaw(t, addr)
			for range fastBefore {
				cl.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
				cl.read("GET")
			}
			cl.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
			time.Sleep(2 * watchDelay) // the watcher is reading
			cl.conn.Close()
			expectCanceled(t, done, "")
		})
	}
}

// TestDisconnectBeforeWatch: a client gone before watchDelay is noticed
// once the watch starts.
func TestDisconnectBeforeWatch(t *testing.T) {
	done := make(chan error, 1)
	addr, _ := startServer(t, slowHandler(10*time.Second, done), Options{Name: "web"})
	cl := dialRaw(t, addr)
	cl.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	cl.conn.Close()
	expectCanceled(t, done, "")
}

// expectCanceled waits (bounded) for the handler's report on done and
// checks that it saw its context cancelled; what names the case.
func expectCanceled(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("%shandler saw %v, want context.Canceled", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%sthe handler's context was not cancelled after the client closed", what)
	}
}

// TestPipelinedDuringSlowRequest: a second request sent while the first
// is watched is kept (the watcher's byte is replayed) and served.
func TestPipelinedDuringSlowRequest(t *testing.T) {
	done := make(chan error, 2)
	addr, _ := startServer(t, slowHandler(3*watchDelay, done), Options{Name: "web"})
	cl := dialRaw(t, addr)
	cl.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(2 * watchDelay)
	cl.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	for i := range 2 {
		resp, body := cl.read("GET")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the slow request was cancelled: %v", err)
	}
	// The connection still works for a third request.
	cl.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := cl.read("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("third response: %d %q", resp.StatusCode, body)
	}
	if err := <-done; err != nil {
		t.Fatalf("the third request was cancelled: %v", err)
	}
}

// TestWatchedKeepAlive: slow requests in a row on one connection are
// answered, and their contexts stay live.
func TestWatchedKeepAlive(t *testing.T) {
	done := make(chan error, 1)
	addr, _ := startServer(t, slowHandler(2*watchDelay, done), Options{Name: "web"})
	cl := dialRaw(t, addr)
	for i := range 3 {
		cl.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, body := cl.read("GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, body)
		}
		if err := <-done; err != nil {
			t.Fatalf("request %d cancelled: %v", i, err)
		}
	}
}

// bodyThenWait reads the whole body, then behaves like slowHandler.
func bodyThenWait(wait time.Duration, done chan<- error) HandlerFunc {
	slow := slowHandler(wait, done)
	return func(c *httpx.Ctx) {
		io.ReadAll(c.Req.Body)
		slow(c)
	}
}

// TestDisconnectAfterBodyCancelsContext: once a request's body has been
// read, a client that closes cancels the request's context too (fixed
// length and chunked bodies).
func TestDisconnectAfterBodyCancelsContext(t *testing.T) {
	for _, req := range []string{
		"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST /slow HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		done := make(chan error, 1)
		addr, _ := startServer(t, bodyThenWait(10*time.Second, done), Options{Name: "web"})
		cl := dialRaw(t, addr)
		cl.send(req)
		time.Sleep(2 * watchDelay) // the watcher is reading
		cl.conn.Close()
		expectCanceled(t, done, fmt.Sprintf("%q: ", req))
	}
}

// TestBodyNotWatchedWhileRead: while the handler still reads the body, the
// watcher stays off (a client pausing mid-upload is not a disconnect),
// and a pipelined request after a watched body is kept and served.
func TestBodyNotWatchedWhileRead(t *testing.T) {
	done := make(chan error, 2)
	addr, _ := startServer(t, bodyThenWait(3*watchDelay, done), Options{Name: "web"})
	cl := dialRaw(t, addr)
	cl.send("POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
	time.Sleep(3 * watchDelay) // longer than watchDelay with the body half sent
	cl.send("world")
	time.Sleep(2 * watchDelay) // body read: the watcher is reading now
	cl.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	for i, m := range []string{"POST", "GET"} {
		resp, body := cl.read(m)
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the request with a body was cancelled: %v", err)
	}
}

// TestWatchNoGoroutineLeak: watched requests, answered or abandoned, leave
// no goroutine behind.
func TestWatchNoGoroutineLeak(t *testing.T) {
	done := make(chan error, 16)
	addr, s := startServer(t, slowHandler(2*watchDelay, done), Options{Name: "web"})
	// A first connection makes the server's epoll poller (one goroutine
	// for the server's life, park_linux.go); let it go, then take the
	// baseline.
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
	}
	waitConns(t, s, 0, 0)
	time.Sleep(10 * time.Millisecond)
	base := runtime.NumGoroutine()
	for i := range 4 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		if i%2 == 0 {
			conn.Close() // abandoned
		} else {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(conn)
			if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
				t.Fatalf("response %q", b)
			}
			conn.Close()
		}
		<-done
	}
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, baseline %d:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// TestReqCtxAfterFunc: the request context's AfterFunc runs on cancel,
// and a stopped registration does not.
func TestReqCtxAfterFunc(t *testing.T) {
	var r reqCtx
	r.stop = r.stopSlot
	ran := make(chan int, 3)
	stop1 := r.AfterFunc(func() { ran <- 1 }) // the slot
	stop2 := r.AfterFunc(func() { ran <- 2 }) // the fallback
	stop3 := r.AfterFunc(func() { ran <- 3 })
	if !stop3() {
		t.Fatal("stop of a pending registration reported false")
	}
	r.cancel()
	got := map[int]bool{<-ran: true, <-ran: true}
	if !got[1] || !got[2] {
		t.Fatalf("ran %v, want 1 and 2", got)
	}
	if stop1() || stop2() {
		t.Fatal("stop after the function ran reported true")
	}
	select {
	case n := <-ran:
		t.Fatalf("stopped function %d ran", n)
	case <-time.After(50 * time.Millisecond):
	}
	if r.Err() != context.Canceled {
		t.Fatalf("Err %v", r.Err())
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed")
	}
	r.reset()
	if r.Err() != nil {
		t.Fatal("Err after reset")
	}
	select {
	case <-r.Done():
		t.Fatal("Done closed after reset")
	default:
	}
	// context.AfterFunc and WithCancel work over it.
	child, cancel := context.WithCancel(&r)
	defer cancel()
	r.cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child context not cancelled")
	}
}

// waitSweeping waits (bounded) until the server's sweep is armed or not.
func waitSweeping(t *testing.T, s *Server, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.sweepArmed() != want {
		if time.Now().After(deadline) {
			t.Fatalf("sweeping = %v after 5 s, want %v", !want, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatchSweepIdles: the sweep stops once no request is handled (an
// idle server has no timer running for its connections), and a slow
// request that comes later starts it again and is watched.
func TestWatchSweepIdles(t *testing.T) {
	done := make(chan error, 1)
	addr, s := startServer(t, slowHandler(10*time.Second, done), Options{Name: "web"})
	cl := dialRaw(t, addr)
	cl.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	cl.read("GET")
	waitSweeping(t, s, false)
	cl.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	waitSweeping(t, s, true)
	cl.conn.Close()
	expectCanceled(t, done, "")
	waitSweeping(t, s, false)
}

// sweepArmed reports whether the server's sweep timer is armed.
func (s *Server) sweepArmed() bool {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	return s.sweeping
}

// watchList is a copy of the sweep's list.
func (s *Server) watchList() []*watch {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	return append([]*watch(nil), s.watching...)
}

// sweepConn is a connection with a watcher in state st on the sweep's
// list (the sweep armed), on one end of a pipe (the other end is
// returned).
func sweepConn(t *testing.T, s *Server, st int64) (*conn, *watch, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	c := &conn{srv: s, rwc: a}
	w := &watch{c: c, ended: make(chan struct{}, 1)}
	w.ctx.stop = w.ctx.stopSlot
	w.state.Store(st)
	c.watch.Store(w)
	s.listWatch(w)
	return c, w, b
}

// TestSweepStates: what one sweep does with each watcher state, and the
// hand-over between a read it starts and stopWatch.
func TestSweepStates(t *testing.T) {
	// A server started a while ago, so that a due start time is positive.
	newServer := func() *Server {
		s := New(nil, Options{})
		s.epoch = s.epoch.Add(-time.Second)
		return s
	}
	due := func(s *Server) int64 { return watchFrom + s.mono() - int64(2*watchDelay) }
	// swept is a connection with a request watchable for 2*watchDelay
	// after one sweep (which starts its watcher's read).
	swept := func(t *testing.T) (*conn, *watch, net.Conn) {
		s := newServer()
		t.Cleanup(func() { s.sweep.Stop() })
		c, w, peer := sweepConn(t, s, due(s))
		s.sweepWatches()
		return c, w, peer
	}
	t.Run("idle stops", func(t *testing.T) {
		s := newServer()
		_, w, _ := sweepConn(t, s, watchOff)
		_, busy, _ := sweepConn(t, s, watchBody)
		s.sweepWatches()
		if l := s.watchList(); !s.sweepArmed() || len(l) != 1 || l[0] != busy || w.listed.Load() || !busy.listed.Load() {
			t.Fatalf("after a sweep with one idle and one busy connection: armed %v, list %v", s.sweepArmed(), l)
		}
		busy.state.Store(watchOff)
		s.sweepWatches()
		if l := s.watchList(); s.sweepArmed() || len(l) != 0 || busy.listed.Load() {
			t.Fatalf("the sweep stayed armed with no request handled (list %v)", l)
		}
	})
	t.Run("listed twice", func(t *testing.T) {
		// What the race between an unlisting sweep and a starting
		// request may leave: the watch is started once, and both
		// entries go once the request is done.
		s := newServer()
		defer s.sweep.Stop()
		c, w, _ := sweepConn(t, s, due(s))
		s.listWatch(w)
		s.sweepWatches()
		for w.state.Load() == watchStarting {
			runtime.Gosched() // let the one read start (bounded by the test timeout)
		}
		if st := w.state.Load(); st != watchReading {
			t.Fatalf("state %d, want reading", st)
		}
		c.stopWatch()
		s.sweepWatches()
		if l := s.watchList(); s.sweepArmed() || len(l) != 0 {
			t.Fatalf("armed %v, list %v", s.sweepArmed(), l)
		}
	})
	t.Run("busy re-arms, not due", func(t *testing.T) {
		s := newServer()
		defer s.sweep.Stop()
		_, wb, _ := sweepConn(t, s, watchBody)
		fresh := watchFrom + s.mono()
		_, wf, _ := sweepConn(t, s, fresh)
		s.sweepWatches()
		if !s.sweepArmed() || len(s.watchList()) != 2 {
			t.Fatal("the sweep stopped while requests are handled")
		}
		if st := wb.state.Load(); st != watchBody {
			t.Fatalf("a body still being read: state %d, want %d", st, watchBody)
		}
		if st := wf.state.Load(); st != fresh {
			t.Fatalf("a request younger than watchDelay: state %d, want %d", st, fresh)
		}
	})
	t.Run("due: disconnect cancels", func(t *testing.T) {
		c, w, peer := swept(t)
		if st := w.state.Load(); st != watchStarting && st != watchReading {
			t.Fatalf("a due request: state %d, want a read started", st)
		}
		peer.Close() // the client goes away
		select {
		case <-w.ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the context was not cancelled")
		}
		c.stopWatch()
		if st := w.state.Load(); st != watchOff {
			t.Fatalf("after stopWatch: state %d", st)
		}
	})
	t.Run("due: stop unblocks the read", func(t *testing.T) {
		c, w, _ := swept(t)
		for w.state.Load() == watchStarting {
			runtime.Gosched() // let the read start (bounded by the test timeout)
		}
		stopped := make(chan struct{})
		go func() { c.stopWatch(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("stopWatch did not return")
		}
		if w.ctx.Err() != nil {
			t.Fatalf("a request that ended was cancelled: %v", w.ctx.Err())
		}
	})
	t.Run("due: stop before the read starts", func(t *testing.T) {
		s := newServer()
		c, w, _ := sweepConn(t, s, watchStarting)
		go w.watchRead()
		c.stopWatch() // whichever of the two moves first, both return
		if w.ctx.Err() != nil || w.got {
			t.Fatalf("err %v, got %v", w.ctx.Err(), w.got)
		}
	})
	t.Run("due: a pipelined byte is kept", func(t *testing.T) {
		c, _, peer := swept(t)
		c.reqState = new(reqState)
		// A pipe's write returns once the watcher's read has the byte.
		peer.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := peer.Write([]byte("G")); err != nil {
			t.Fatal(err)
		}
		c.stopWatch()
		if !c.cr.pending || c.cr.one[0] != 'G' || !c.pipelined {
			t.Fatalf("pending %v byte %q pipelined %v", c.cr.pending, c.cr.one[0], c.pipelined)
		}
	})
}

// TestReqCtxSlot: the slot's registration, stop, reuse after a stop, a
// registration after the cancel, and a cancel racing a registration (the
// function runs exactly once, whichever comes first).
func TestReqCtxSlot(t *testing.T) {
	var r reqCtx
	r.stop = r.stopSlot
	ran := make(chan int, 4)
	stop := r.AfterFunc(func() { ran <- 1 })
	if !stop() {
		t.Fatal("stop of the pending slot reported false")
	}
	if stop() {
		t.Fatal("a second stop reported true")
	}
	r.AfterFunc(func() { ran <- 2 }) // the slot again
	r.cancel()
	if n := <-ran; n != 2 {
		t.Fatalf("ran %d, want 2", n)
	}
	if late := r.AfterFunc(func() { ran <- 3 }); late() {
		t.Fatal("stop of a registration made after the cancel reported true")
	}
	if n := <-ran; n != 3 {
		t.Fatalf("ran %d, want 3", n)
	}
	select {
	case n := <-ran:
		t.Fatalf("%d ran twice or a stopped function ran", n)
	case <-time.After(20 * time.Millisecond):
	}

	for i := range 1000 {
		r.reset()
		var runs atomic.Int32
		done := make(chan struct{})
		go func() { r.cancel(); close(done) }()
		stop := r.AfterFunc(func() { runs.Add(1) })
		<-done
		deadline := time.Now().Add(5 * time.Second)
		for runs.Load() == 0 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if stop() {
			t.Fatalf("iteration %d: stop after the cancel reported true", i)
		}
		if n := runs.Load(); n != 1 {
			t.Fatalf("iteration %d: ran %d times, want 1", i, n)
		}
	}
}
