package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/rawsock"
)

// Connection states, for Shutdown: only an idle connection (waiting for a
// request) may be closed under the handler's feet.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
	stateHijacked
)

const (
	// bufSize is the size of the pooled read and write buffers. A head
	// larger than bufSize still parses (up to MaxHeaderBytes) at the cost of
	// one extra allocation.
	bufSize = 4096
	// idleRelease is how long a keep-alive connection keeps its buffers
	// and its goroutine while waiting for the next request. Under load the
	// next request comes well within it, so the wait costs nothing extra;
	// past it the connection is parked (see waitForRequest): buffers back
	// to the pools, the wait continues on a 1-byte read in a new goroutine
	// with a small stack (one extra read syscall, a goroutine start and
	// some stack growth for a request that follows a pause). With 10K
	// keep-alive connections that each send a request every few seconds,
	// 1 s kept almost half of them hot (8 KB of buffers plus a grown
	// stack each); 100 ms keeps about 5%.
	idleRelease = 100 * time.Millisecond
	// maxDrain bounds how much of an unread request body is discarded to
	// keep the connection; a larger rest closes it.
	maxDrain = 256 << 10
	// sendTimeout bounds each write to a client (see connWriter).
	sendTimeout = 60 * time.Second
	// After an answer that leaves request input unread, the connection is
	// half-closed and input is discarded (so that the answer is not
	// destroyed by a TCP reset) until the client closes, or stays silent
	// for lingerTimeout, or lingerTime or maxLinger bytes are used up
	// (nginx: lingering_timeout 5s, lingering_time 30s, no byte bound).
	lingerTimeout = 500 * time.Millisecond
	lingerTime    = 5 * time.Second
	maxLinger     = 8 << 20
)

// bufPools holds a Server's idle read and write buffers and request
// states. They carry no state between uses (Reset on get or put).
type bufPools struct {
	r   sync.Pool
	w   sync.Pool
	req sync.Pool
}

func (p *bufPools) getReq() *reqState {
	if v := p.req.Get(); v != nil {
		return v.(*reqState)
	}
	return new(reqState)
}

func (p *bufPools) putReq(rs *reqState) {
	rs.ctx.Reset()
	rs.w = h1Writer{}
	rs.body.ResetNone()
	rs.head = httpx.RequestHead{}
	rs.errHdr.Reset()
	p.req.Put(rs) // the Date cache stays: it is per second, not per connection
}

func (p *bufPools) getReader(r io.Reader) *bufio.Reader {
	if v := p.r.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufSize)
}

func (p *bufPools) putReader(br *bufio.Reader) {
	br.Reset(nil)
	p.r.Put(br)
}

func (p *bufPools) getWriter(w io.Writer) *bufio.Writer {
	if v := p.w.Get(); v != nil {
		bw := v.(*bufio.Writer)
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, bufSize)
}

func (p *bufPools) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	p.w.Put(bw)
}

// connWriter is what the bufio.Writer writes to: each write to the network
// must make progress within sendTimeout, so a client that stops reading
// (slow-read attack) cannot hold a goroutine and an upstream connection
// forever (nginx's send_timeout).
//
// Moving a deadline costs a runtime timer update; on a busy keep-alive
// connection that was one per response. The deadline is only pushed out
// again once less than 7/8 of sendTimeout is left, so every write still
// has between 7/8 and all of sendTimeout to make progress.
type connWriter struct {
	c  *conn
	by int64 // the write deadline last set, ns since Server.epoch
	// wait: the next write is the last of a response and the connection
	// waits for the next request right after it: the write is left to
	// that read (connReader, reqState.out), which does both in one step.
	wait bool
}

func (w *connWriter) Write(p []byte) (int, error) {
	if w.wait {
		w.wait = false
		if w.c.canSendRead() {
			w.c.out = p
			return len(p), nil
		}
	}
	srv := w.c.srv
	now := srv.mono() // the monotonic clock only: half a time.Now
	st := int64(w.c.opts.sendTimeout)
	if w.by-now < st-st/8 {
		w.by = now + st
		w.c.rwc.SetWriteDeadline(srv.epoch.Add(time.Duration(w.by)))
	}
	if w.c.io != nil {
		return w.c.io.Write(p)
	}
	return w.c.rwc.Write(p)
}

// connReader is what the bufio.Reader reads from. Before a read that may
// block it flushes buffered response bytes, so pipelined responses are
// written in one batch and nothing waits in our buffer while we wait for the
// client. It also replays the byte read while the buffers were released.
type connReader struct {
	c       *conn
	one     [1]byte
	pending bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.pending {
		if len(p) == 0 {
			return 0, nil
		}
		r.pending = false
		p[0] = r.one[0]
		return 1, nil
	}
	if rs := r.c.reqState; rs != nil && rs.out != nil {
		// The end of the response, left by connWriter: written, waited
		// for the next request and read in one step.
		out := rs.out
		rs.out = nil
		n, sent, err := r.c.io.SendRead(out, p)
		r.c.waited = r.c.io.Waited()
		if err != nil || sent == len(out) {
			return n, err
		}
		// The socket buffer was full or the wait could not start.
		if _, err := r.c.cw.Write(out[sent:]); err != nil {
			return 0, err
		}
	}
	// What the handler wrote goes out before a read that may wait for the
	// client, unless the body is read on another goroutine than the
	// response's (httpx.Body.Share): the buffer is the writer's then.
	if bw := r.c.bw; bw != nil && !(r.c.inBody && r.c.body.Shared()) && bw.Buffered() > 0 {
		if err := bw.Flush(); err != nil {
			return 0, err
		}
	}
	if r.c.inBody {
		// Each body read must make progress within sendTimeout (nginx's
		// client_body_timeout): a client trickling a body cannot hold a
		// handler and its upstream connection forever.
		r.c.setReadDeadline(time.Now().Add(r.c.opts.sendTimeout))
	}
	if r.c.io != nil {
		return r.c.io.Read(p)
	}
	return r.c.rwc.Read(p)
}

// conn is one client connection and everything reused across its requests.
type conn struct {
	srv *Server
	nc  net.Conn // as accepted; Shutdown closes it
	rwc net.Conn // nc or the *tls.Conn over it; only the conn goroutine uses it

	state atomic.Int32
	opts  *Options
	// inBody is set while the handler may read the request body.
	inBody bool
	// served is set once a request was read on the connection. (conn is
	// kept within the 320-byte size class: 10K idle connections.)
	served bool
	// pipelined is set once the client sent a request before the
	// previous response was done: its responses are then flushed the
	// ordinary way, never left to the next read (see canSendRead).
	pipelined bool
	// cold is set while a request that came to a parked connection after
	// a long wait is served: the connection parks right after it (see
	// waitForRequest). coldAfter is when a wait counts as long: ns since
	// Server.epoch, set when the connection parks.
	cold      bool
	coldAfter int64
	// rdl is the read deadline setHotDeadline set, in ns since
	// Server.epoch, while nothing else moved it; 0: unknown.
	rdl int64
	// io reads and writes a plain socket with raw system calls (rawsock.IO);
	// nil: through rwc.
	io *rawsock.IO

	remote, local netip.AddrPort
	tlsState      *tls.ConnectionState

	cr connReader
	cw connWriter
	br *bufio.Reader
	bw *bufio.Writer
	// reqState (the request context, writer, body reader) is held like
	// the buffers: taken with them when a request comes, back to the pool
	// when the connection parks. Its fields are promoted (c.ctx, c.w,
	// c.body, c.head, c.errHdr).
	*reqState

	// onConn is the OnConn hook the connection was opened with (it is
	// told about the close with the same hook).
	onConn func(open bool)

	// watch notices a client disconnect during a slow request (watch.go);
	// made on the first request, read by the server's sweep.
	watch atomic.Pointer[watch]

	// pk is the state of a connection parked in the server's epoll set
	// (park_linux.go); unused elsewhere.
	pk parkState
}

// reqState is the part of a connection only needed while it serves a
// request: about 1 KB that 10K idle keep-alive connections would otherwise
// hold each. It is pooled per server (bufPools) and held from the first
// byte of a request until the connection parks or closes. Nothing may keep
// a pointer into it after the handler returned (the Handler contract: the
// Ctx is reused).
type reqState struct {
	ctx    httpx.Ctx
	w      h1Writer
	body   httpx.Body
	head   httpx.RequestHead
	errHdr httpx.Header

	// date caches the Date field value for the current second.
	dateSec int64
	date    []byte
	// out is the end of a response that connWriter left to the next
	// read (canSendRead), in bw's buffer until then; waited: that read
	// waited for the next request.
	out    []byte
	waited bool
	// now is when the previous request on the connection ended, for the
	// next wait (one clock reading for both); waitForRequest clears it.
	now time.Time
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (c *conn) acquireBuffers() {
	if c.reqState == nil {
		c.reqState = c.srv.pools.getReq()
	}
	if c.br == nil {
		c.br = c.srv.pools.getReader(&c.cr)
	}
	if c.bw == nil {
		c.bw = c.srv.pools.getWriter(&c.cw)
	}
}

func (c *conn) releaseBuffers() {
	if c.br != nil {
		c.srv.pools.putReader(c.br)
		c.br = nil
	}
	if c.bw != nil {
		c.srv.pools.putWriter(c.bw)
		c.bw = nil
	}
	if c.reqState != nil {
		c.out = nil // it pointed into bw's buffer
		c.srv.pools.putReq(c.reqState)
		c.reqState = nil
	}
}

// setup prepares a new connection (and tells the OnConn hook).
func (c *conn) setup(opts *Options) {
	if hook := opts.OnConn; hook != nil {
		c.onConn = hook
		hook(true)
	}
	c.rwc = c.nc
	c.cr.c = c
	c.cw.c = c
	c.opts = opts
	// A new connection's first request is not after a long wait, even
	// when its first byte came to a parked connection.
	c.coldAfter = math.MaxInt64
	c.remote = addrPort(c.nc.RemoteAddr())
	c.local = addrPort(c.nc.LocalAddr())
}

// serveSetUp serves a plain connection that setup prepared.
func (c *conn) serveSetUp() {
	if !c.serveH1(time.Now().Add(c.opts.ReadHeaderTimeout), false) {
		c.finish()
	}
}

func (c *conn) serve() {
	opts := c.srv.opts.Load()
	c.setup(opts)
	parked := false
	defer func() {
		if !parked {
			c.finish()
		}
	}()
	first := time.Now().Add(opts.ReadHeaderTimeout)

	if opts.TLSConfig != nil {
		// Records are read and written with raw system calls (rawsock).
		tc := tls.Server(rawsock.WrapTCP(c.nc), opts.TLSConfig)
		tc.SetDeadline(first)
		if err := tc.Handshake(); err != nil {
			if opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
				opts.Logger.Debug("TLS handshake failed", "remote", c.remote, "err", err)
			}
			return
		}
		st := tc.ConnectionState()
		c.tlsState = &st
		c.rwc = tc
		if opts.OnTLSHandshake != nil {
			opts.OnTLSHandshake()
		}
		if st.NegotiatedProtocol == "acme-tls/1" {
			// A TLS-ALPN-01 validation (RFC 8737 §3): the handshake was the
			// whole exchange.
			return
		}
		if st.NegotiatedProtocol == "h2" {
			tc.SetDeadline(time.Time{})
			c.serveH2(nil)
			return
		}
	}
	parked = c.serveH1(first, false)
}

// finish ends a connection's life: close it (unless a hijacker owns it),
// return its buffers, forget it.
func (c *conn) finish() {
	if c.state.Load() != stateHijacked {
		c.rwc.Close()
		c.releaseBuffers()
	}
	c.stopParkTimer()
	c.releaseSlot()
	c.srv.removeConn(c)
	if c.onConn != nil {
		c.onConn(false)
	}
}

// resume continues a parked keep-alive connection on a fresh goroutine (see
// waitForRequest): it waits for the first byte of the next request without
// buffers, then serves on.
func (c *conn) resume(deadline time.Time) {
	if c.waitParked(deadline) && c.serveH1(time.Time{}, true) {
		return // parked again: another goroutine has it
	}
	c.finish()
}

// serveH1 is the HTTP/1.x connection loop. deadline bounds the wait for
// the first request (the head deadline); resumed is set when a parked
// connection's first byte is already there (waitParked). It reports whether
// the connection was parked (handed to a new goroutine that waits for the
// next request, see waitForRequest); otherwise the caller finishes the
// connection.
func (c *conn) serveH1(deadline time.Time, resumed bool) (parked bool) {
	for {
		opts := c.srv.opts.Load()
		c.opts = opts
		wasParked := resumed
		if resumed {
			resumed = false
		} else {
			switch c.waitForRequest(deadline, opts) {
			case waitClosed:
				return false
			case waitParked:
				c.park(deadline)
				return true
			}
		}
		// Options may have changed while we waited (SetOptions).
		opts = c.srv.opts.Load()
		c.opts = opts
		start := time.Now()
		c.cold = wasParked && int64(start.Sub(c.srv.epoch)) >= c.coldAfter
		if !c.served && opts.H2C && c.tlsState == nil && c.sniffH2Preface() {
			c.state.Store(stateActive)
			c.setDeadline(time.Time{})
			c.serveH2(nil)
			return false
		}
		c.served = true
		head, err := httpx.ReadRequest(c.br, &c.ctx.Req, opts.MaxHeaderBytes)
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed us while idle
		}
		if err != nil {
			c.readError(err)
			return
		}
		c.head = head
		keep := c.serveRequest(start, opts)
		if c.w.hijacked {
			return // the Ctx may still be read by the hijacker's goroutines
		}
		end := c.ctx.End
		// Reset now rather than before the next request, so that an idle
		// connection does not keep the previous head alive.
		c.ctx.Reset()
		if !keep {
			return
		}
		c.state.Store(stateIdle)
		if opts.afterIdle != nil {
			opts.afterIdle()
		}
		if c.srv.closing.Load() {
			c.bw.Flush()
			return
		}
		// The handler's reading of the request's end, or the monotonic
		// clock only (time.Now also reads the wall clock): the wall time
		// follows from start's.
		if end.IsZero() {
			end = start.Add(time.Since(start))
		}
		c.now = end
		deadline = end.Add(opts.IdleTimeout)
	}
}

// Outcomes of waitForRequest.
const (
	waitReady  = iota // the first byte of a request is buffered
	waitClosed        // the connection is done (EOF, error, idle timeout)
	waitParked        // idle past idleRelease: continue in resume
)

// waitForRequest waits until the first byte of the next request is
// buffered, until deadline (the idle timeout). It keeps the buffers for
// idleRelease; past that the connection is parked: the buffers go back to
// the pools and the rest of the wait happens in resume, on a new goroutine,
// while this one (whose stack grew while proxying) exits. An idle
// connection then costs a small fresh stack and no buffers instead of the
// serving goroutine's stack plus 8 KB. Under load the next request comes
// within idleRelease and none of this happens. A connection whose request
// came after a wait longer than idleRelease (cold) parks right after its
// response instead: its next request is likely as far off. Once a byte is
// there, the head must be complete within ReadHeaderTimeout (slowloris
// defence).
func (c *conn) waitForRequest(deadline time.Time, opts *Options) int {
	if !c.served && c.br == nil {
		// A new connection (its goroutine is fresh, its stack small) waits
		// for its first byte without buffers: a burst of new idle
		// connections does not take 8 KB each before they send anything.
		// It costs one extra read syscall per connection.
		if !c.waitParked(deadline) {
			return waitClosed
		}
		return waitReady
	}
	c.acquireBuffers()
	now := c.now
	c.now = time.Time{}
	if c.br.Buffered() > 0 {
		// Pipelined: the next request is already here.
		c.pipelined = true
		c.setReadDeadline(time.Now().Add(opts.ReadHeaderTimeout))
		return waitReady
	}
	if now.IsZero() {
		now = time.Now()
	}
	if c.cold {
		// The request came to a parked connection after a wait longer
		// than idleRelease: such a client's next request is likely as far
		// off, so park now rather than hold the buffers, a read deadline
		// and its expiry's wake-up for idleRelease first. A burst after
		// the pause costs one park: its next request comes before
		// coldAfter and finds the hot wait again.
		c.cold = false
		if c.bw.Flush() != nil {
			return waitClosed
		}
		c.coldAfter = int64(now.Sub(c.srv.epoch)) + int64(opts.idleRelease)
		c.releaseBuffers()
		return waitParked
	}
	hot := c.setHotDeadline(now, deadline, opts.idleRelease)
	c.waited = false
	if c.bw.Buffered() > 0 && !c.pipelined {
		// Send the response, wait for the next request and read it in one
		// step (the flush leaves the write to the read: connReader), so
		// that the read does not fail first.
		c.cw.wait = true
		err := c.bw.Flush()
		c.cw.wait = false
		if err != nil {
			return waitClosed
		}
	}
	_, err := c.br.Peek(1) // flushes the previous response first (connReader)
	if err == nil {
		// A head that came whole needs no head timeout: parsing it reads
		// nothing more, and whatever reads the connection after it sets
		// its own deadline (body reads, the disconnect watcher, a drain,
		// an upgrade). That saves moving the deadline (a runtime timer
		// update and two clock readings) on most requests.
		if !headBuffered(c.br) {
			c.setReadDeadline(time.Now().Add(opts.ReadHeaderTimeout))
		}
		return waitReady
	}
	if isTimeout(err) && c.waited && c.pendingInput() {
		// A request that wait could not see (see canSendRead): the
		// client pipelines; its responses take the ordinary way now.
		c.pipelined = true
		c.setReadDeadline(time.Now().Add(opts.ReadHeaderTimeout))
		if _, err := c.br.Peek(1); err != nil {
			return waitClosed
		}
		return waitReady
	}
	if !isTimeout(err) || !hot.Before(deadline) {
		return waitClosed
	}
	c.coldAfter = int64(hot.Sub(c.srv.epoch)) // the wait was long
	c.releaseBuffers()
	return waitParked
}

// waitParked is the rest of a parked connection's wait: a 1-byte read
// without buffers, until the idle deadline. The byte is replayed by
// connReader.
func (c *conn) waitParked(deadline time.Time) bool {
	c.setReadDeadline(deadline)
	n, _ := c.rwc.Read(c.cr.one[:])
	if n == 0 {
		return false
	}
	c.cr.pending = true
	c.acquireBuffers()
	c.br.Peek(1) // the byte into the buffer, where the parsers look
	c.setReadDeadline(time.Now().Add(c.srv.opts.Load().ReadHeaderTimeout))
	return true
}

// setReadDeadline moves the connection's read deadline (and forgets the
// idle-release deadline setHotDeadline keeps). Every read-deadline change
// on an HTTP/1 connection goes through it or setDeadline, except the
// disconnect watcher's own (its stopWatch goes through it).
func (c *conn) setReadDeadline(t time.Time) {
	c.rdl = 0
	c.rwc.SetReadDeadline(t)
}

// setDeadline moves both deadlines (see setReadDeadline).
func (c *conn) setDeadline(t time.Time) {
	c.rdl = 0
	c.rwc.SetDeadline(t)
}

// setHotDeadline sets the read deadline of the wait for the next request:
// now+idleRelease, or deadline (the idle timeout) if that comes first. It
// returns the deadline in effect. Moving a deadline is a runtime timer
// update; back-to-back requests would move it by microseconds each time,
// so the one set for an earlier request is kept while it is within 1/8 of
// idleRelease of what this one would set (never later than it): the
// connection then parks between 7/8 of idleRelease and idleRelease after
// its last request.
func (c *conn) setHotDeadline(now, deadline time.Time, idle time.Duration) time.Time {
	epoch := c.srv.epoch
	nowM := int64(now.Sub(epoch)) // monotonic arithmetic: no clock read
	want := nowM + int64(idle)
	if dl := int64(deadline.Sub(epoch)); dl < want {
		want = dl
	}
	if c.rdl != 0 && c.rdl <= want && c.rdl-nowM >= int64(idle-idle/8) {
		return epoch.Add(time.Duration(c.rdl))
	}
	c.rdl = want
	t := epoch.Add(time.Duration(want))
	c.rwc.SetReadDeadline(t)
	return t
}

// headBuffered reports whether br holds the end of a request head (an
// empty line) in what it has buffered.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, crlfcrlf)
}

var crlfcrlf = []byte("\r\n\r\n")

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readError answers a request that failed to parse. Protocol errors get
// their status and a JSON body; a closed connection or a timeout gets
// nothing.
func (c *conn) readError(err error) {
	pe, ok := httpx.IsProtocolError(err)
	if !ok {
		if err != io.EOF && c.opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
			c.opts.Logger.Debug("reading request failed", "remote", c.remote, "err", err)
		}
		return
	}
	if c.opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
		c.opts.Logger.Debug("bad request", "remote", c.remote, "status", pe.Status, "err", pe.Msg)
	}
	c.ctx.Req.Method = "" // a failed parse may have set it; not HEAD
	c.w.reset(c, false, false)
	c.writeError(pe.Status, pe.Msg)
	c.bw.Flush()
	c.linger()
}

// writeError answers with the contract's JSON error body and closes after.
func (c *conn) writeError(status int, msg string) {
	c.w.closeAfter = true
	c.ctx.Scratch = httpx.AppendJSONError(c.ctx.Scratch[:0], msg)
	c.errHdr.Reset()
	c.errHdr.Add("Content-Type", "application/json")
	if c.w.WriteHeader(status, &c.errHdr, int64(len(c.ctx.Scratch))) == nil {
		c.w.Write(c.ctx.Scratch)
		c.w.Finish(nil)
	}
}

// linger half-closes the connection and discards input for a while, so
// that the response reaches the client instead of being destroyed by the
// RST a close with unread input causes (RFC 9112 §9.6).
func (c *conn) linger() {
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	// Like nginx's lingering close: read until the client closes, stays
	// silent for lingerTimeout, or lingerTime or maxLinger runs out.
	end := time.Now().Add(lingerTime)
	for left := int64(maxLinger); left > 0; {
		d := time.Now().Add(lingerTimeout)
		if d.After(end) {
			d = end
		}
		c.setReadDeadline(d)
		n, err := io.CopyN(io.Discard, c.rwc, min(left, 64<<10))
		left -= n
		if err != nil {
			return
		}
	}
}

// serveRequest runs the handler for the parsed request and reports whether
// the connection may carry another one.
func (c *conn) serveRequest(start time.Time, opts *Options) bool {
	x := &c.ctx
	req := &x.Req
	x.Conn.RemoteAddr, x.Conn.LocalAddr, x.Conn.TLS, x.Conn.Server = c.remote, c.local, c.tlsState, opts.Name
	x.Start = start
	x.Scheme = "http"
	if c.tlsState != nil {
		x.Scheme = "https"
	}
	x.ClientIP = c.remote.Addr()
	// BytesIn counts request BODY bytes only (access log bytes_in,
	// http_request_bytes_total, the span's http.request.body.size), as
	// HTTP/2 and HTTP/3 do; the head is not part of it.
	x.BytesIn = 0

	switch {
	case c.head.Chunked:
		c.body.ResetChunked(c.br, &req.Trailer, 0)
	default:
		c.body.ResetFixed(c.br, req.ContentLength)
	}
	c.body.SetCounter(&x.BytesIn)
	if c.head.ExpectContinue {
		c.body.SetContinue(c.bw)
	}
	req.Body = &c.body
	if req.ContentLength != 0 || c.head.Chunked {
		// The head is complete: the body is not bound by the head timeout
		// but by a per-read progress timeout (connReader).
		c.inBody = true
		c.setReadDeadline(time.Time{})
	}

	if c.head.Upgrade && opts.H2C && c.tlsState == nil && c.tryH2CUpgrade() {
		return false
	}

	c.w.reset(c, req.Proto == "HTTP/1.1", c.head.KeepAlive)
	x.W = &c.w
	// A slow request is watched for the client going away (watch.go):
	// without a body from the start, with one once the handler has read
	// all of it (until then its reads see the client go). An upgrade
	// hands the connection over.
	watched := !c.head.Upgrade
	if watched {
		bodied := req.ContentLength != 0 || c.head.Chunked
		x.Context = c.startWatch(!bodied)
		if bodied {
			c.body.SetEOFHook(c.watch.Load())
		}
	} else {
		x.Context = context.Background()
	}
	ok := c.callHandler()
	if watched {
		c.stopWatch()
	}
	c.inBody = false
	if !ok {
		return false
	}
	if c.w.hijacked {
		return false
	}
	if !c.w.wroteHeader {
		c.writeError(500, "handler wrote no response")
	} else if !c.w.finished {
		// The handler gave up mid-response (the upstream body broke): close
		// without the last chunk so the client sees an incomplete message,
		// never a truncated body that looks complete (RFC 9112 §8).
		c.bw.Flush()
		return false
	}
	keep := c.head.KeepAlive && !c.w.closeAfter && c.w.err == nil
	if keep && !c.body.Done() {
		// Discarding the rest must not take forever either.
		c.setReadDeadline(time.Now().Add(opts.ReadHeaderTimeout))
		if c.body.ContinuePending() || !c.body.Drain(maxDrain) {
			keep = false
		}
	}
	if !keep {
		c.bw.Flush()
		if c.w.err == nil && !c.body.Done() {
			// An answer before the whole upload (an early 413, 401, ...):
			// close gracefully, or the reset a close with unread input
			// causes may destroy the answer before the client reads it.
			c.linger()
		}
	}
	return keep
}

// callHandler runs the handler, recovering a panic: it is logged with its
// stack, answered 500 when nothing was written yet, and the connection is
// closed (its state is unknown). It reports whether the connection may go
// on.
func (c *conn) callHandler() (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			c.opts.Logger.Error("handler panic", "server", c.opts.Name, "remote", c.remote,
				"method", c.ctx.Req.Method, "uri", c.ctx.Req.RequestURI, "panic", v, "stack", string(debug.Stack()))
			ok = false
			if c.w.hijacked {
				return
			}
			if !c.w.wroteHeader {
				c.writeError(500, "internal server error")
			}
			c.bw.Flush()
		}
	}()
	c.srv.handler.ServeHTTPX(&c.ctx)
	return true
}

// appendDate appends the current IMF-fixdate (RFC 9110 §5.6.7), cached
// per second.
func (c *conn) appendDate(dst []byte) []byte {
	now := time.Now()
	if c.reqState == nil {
		// Not serving an HTTP/1 request (the cache lives in reqState).
		return now.UTC().AppendFormat(dst, "Mon, 02 Jan 2006 15:04:05 GMT")
	}
	if sec := now.Unix(); sec != c.dateSec || c.date == nil {
		c.dateSec = sec
		c.date = now.UTC().AppendFormat(c.date[:0], "Mon, 02 Jan 2006 15:04:05 GMT")
	}
	return append(dst, c.date...)
}
