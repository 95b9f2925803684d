package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/rawsock"
)

// maxInterim bounds the 1xx responses accepted before the final one.
const maxInterim = 16

// bufSize is the size of pooled bufio readers and writers and of the copy
// buffer used to stream request bodies.
const bufSize = 4 << 10

var (
	// Package-level pools are immutable plumbing, not state: they only
	// recycle buffers between connections of all addrs.
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}
	copyPool   = sync.Pool{New: func() any { return new([32 << 10]byte) }}
	// bodyPool recycles response bodies: a body goes back when its reader
	// closes it (the RoundTripper contract's CloseBody), which is the
	// holder's last use. A body read to io.EOF and never closed is simply
	// collected.
	bodyPool = sync.Pool{New: func() any { return new(body) }}
)

// aLongTimeAgo is a deadline in the past: setting it interrupts blocked IO.
var aLongTimeAgo = time.Unix(1, 0)

// h1 is the HTTP/1.1 client for one addr.
type h1 struct {
	addr        string
	tls         *tls.Config
	dialer      net.Dialer
	connTimeout time.Duration
	idleTimeout time.Duration
	maxIdle     int
	// epoch makes clock readings from the monotonic clock alone
	// (now: half the cost of time.Now).
	epoch time.Time

	mu       sync.Mutex
	idle     []*conn // LIFO: the top is the most recently used
	sweeping bool    // a sweep timer is armed
	sweep    *time.Timer

	dials  atomic.Uint64
	reused atomic.Uint64
}

func newH1(cfg config.Upstream, addr string, tlsConf *tls.Config) *h1 {
	t := &h1{
		epoch:       time.Now(),
		addr:        addr,
		tls:         tlsConf,
		connTimeout: orDuration(cfg.ConnectionTimeout, DefaultConnectionTimeout),
		idleTimeout: orDuration(cfg.IdleTimeout, DefaultIdleTimeout),
		maxIdle:     cfg.MaxIdleConns,
	}
	if t.maxIdle <= 0 {
		t.maxIdle = DefaultMaxIdleConns
	}
	t.dialer.Timeout = t.connTimeout
	return t
}

// conn is one upstream connection with its parsing state. Its bufio reader
// and writer come from pools: the writer only while a request is written,
// the reader while the connection is in use (an idle connection holds no
// buffer).
type conn struct {
	t      *h1
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// deadline reports whether a read/write deadline may be set on nc.
	deadline bool
	sock     *sock      // nil: not a socket (or no raw access here)
	w        reqWriter  // what bw writes to
	r        respReader // what br reads from
	abort    func()     // interrupts blocked IO (context cancellation)
	readBy   time.Time  // the read deadline last set
	writeBy  time.Time  // the write deadline last set
	parser   httpx.ResponseParser
	cr       httpx.ChunkedReader
	cw       httpx.ChunkedWriter

	// A request body is written on its own goroutine (sendBody) while the
	// response is read, so an upstream that answers before it has read the
	// whole body (an early 413, a streaming echo) is heard at once and is
	// never left blocked writing an answer nobody reads. writing is set
	// (by the round trip's goroutine) from the writer's start until its
	// result is taken from bodyDone; the writer owns bw meanwhile.
	bodyDone chan error
	writing  bool
	headIn   atomic.Bool // the response head was read: the writer leaves reads alone
	writeErr error       // the writer's result, once taken
}

// reqWriter is what c.bw writes to: the connection, except that the flush
// that ends a request (last) is left to the response's first read
// (respReader), which writes it, waits for the response and reads it in
// one step.
type reqWriter struct {
	c    *conn
	last bool // the next write ends the request: leave it to the read
	// out is that last write, in bw's buffer: bw is held until the read.
	out []byte
}

func (w *reqWriter) Write(p []byte) (int, error) {
	if w.last {
		w.last = false
		w.out = p
		return len(p), nil
	}
	return w.c.io().Write(p)
}

// respReader is what c.br reads from: the connection. The end of a request
// reqWriter left goes out first, in the same step as the read's wait
// (rawsock.IO.SendRead): a read right after the request would only find
// that the upstream has not answered yet.
type respReader struct{ c *conn }

func (r *respReader) Read(p []byte) (int, error) {
	c := r.c
	if out := c.w.out; out != nil {
		c.w.out = nil
		n, sent, err := c.sock.raw.SendRead(out, p)
		if err != nil || sent == len(out) {
			return n, err
		}
		// The socket buffer was full or the wait could not start.
		if _, err := c.sock.raw.Write(out[sent:]); err != nil {
			return 0, err
		}
	}
	return c.io().Read(p)
}

// io is what the connection's bytes go through: the socket with raw
// system calls where possible (sock.raw), else nc.
func (c *conn) io() io.ReadWriter {
	if c.sock != nil && c.sock.raw != nil {
		return c.sock.raw
	}
	return c.nc
}

// setReadDeadline sets the read deadline to now+d and remembers it.
func (c *conn) setReadDeadline(d time.Duration) {
	c.readBy = time.Now().Add(d)
	c.nc.SetReadDeadline(c.readBy)
}

func (c *conn) close() {
	c.nc.Close()
	if c.writing {
		// The body writer fails on the closed connection and releases
		// the write buffer itself.
		c.releaseReader()
		return
	}
	c.releaseBuffers()
}

func (c *conn) releaseReader() {
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
}

func (c *conn) releaseBuffers() {
	c.releaseReader()
	c.releaseWriter()
}

func (c *conn) releaseWriter() {
	if c.bw != nil {
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
		c.bw = nil
	}
}

// now reads the monotonic clock only (time.Now also reads the wall
// clock); the result still carries a wall time, derived from epoch.
func (t *h1) now() time.Time { return t.epoch.Add(time.Since(t.epoch)) }

// Stats implements Stats.
func (t *h1) Stats() (dials, reused uint64) { return t.dials.Load(), t.reused.Load() }

// CloseIdle closes every idle connection.
func (t *h1) CloseIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	if t.sweep != nil {
		t.sweep.Stop()
	}
	t.sweeping = false
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// idleLen returns the number of pooled connections (tests).
func (t *h1) idleLen() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.idle)
}

// getConn pops the most recently used idle connection, closing those that
// idled too long (below the top everything is older, so an expired top
// expires the whole stack), or dials a new one.
func (t *h1) getConn(ctx context.Context, fresh bool, now time.Time) (*conn, bool, error) {
	if !fresh {
		t.mu.Lock()
		if n := len(t.idle); n > 0 {
			c := t.idle[n-1]
			t.idle[n-1] = nil
			t.idle = t.idle[:n-1]
			if now.Sub(c.idleAt) < t.idleTimeout {
				t.mu.Unlock()
				c.br = readerPool.Get().(*bufio.Reader)
				c.br.Reset(&c.r)
				t.reused.Add(1)
				return c, true, nil
			}
			// Everything below the top idled even longer.
			expired := append(t.idle[:0:0], t.idle...)
			expired = append(expired, c)
			clear(t.idle)
			t.idle = t.idle[:0]
			t.mu.Unlock()
			for _, c := range expired {
				c.close()
			}
		} else {
			t.mu.Unlock()
		}
	}
	c, err := t.dial(ctx)
	return c, false, err
}

func (t *h1) dial(ctx context.Context) (*conn, error) {
	t.dials.Add(1)
	dctx, cancel := context.WithTimeout(ctx, t.connTimeout)
	defer cancel()
	nc, err := t.dialer.DialContext(dctx, "tcp", t.addr)
	if err != nil {
		return nil, &httpx.TransportError{Op: "dial", Err: err}
	}
	if t.tls != nil {
		tc := tls.Client(rawsock.WrapTCP(nc), t.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, &httpx.TransportError{Op: "dial", Err: err}
		}
		nc = tc
	}
	c := &conn{t: t, nc: nc}
	c.sock = newSock(nc)
	c.w.c, c.r.c = c, c
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.r)
	return c, nil
}

// putConn returns c to the idle stack, or closes it when the stack is full
// or c has unread bytes (an upstream that sent more than it framed).
func (t *h1) putConn(c *conn) {
	if c.br != nil && c.br.Buffered() > 0 {
		c.close()
		return
	}
	c.releaseBuffers()
	c.idleAt = t.now()
	t.mu.Lock()
	if len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle = append(t.idle, c)
	if !t.sweeping {
		t.sweeping = true
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.idleTimeout, t.sweepIdle)
		} else {
			t.sweep.Reset(t.idleTimeout)
		}
	}
	t.mu.Unlock()
}

// sweepIdle closes connections that idled longer than idleTimeout (they
// sit at the bottom of the stack) and re-arms itself while any remain. It
// runs on a timer goroutine only while there are idle connections.
func (t *h1) sweepIdle() {
	now := time.Now()
	t.mu.Lock()
	n := 0
	for n < len(t.idle) && now.Sub(t.idle[n].idleAt) >= t.idleTimeout {
		n++
	}
	expired := append([]*conn(nil), t.idle[:n]...)
	rest := copy(t.idle, t.idle[n:])
	clear(t.idle[rest:])
	t.idle = t.idle[:rest]
	if len(t.idle) > 0 {
		// Wake when the oldest remaining one expires.
		t.sweep.Reset(t.idleTimeout - now.Sub(t.idle[0].idleAt))
	} else {
		t.sweeping = false
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
}

// RoundTrip implements httpx.RoundTripper.
func (t *h1) RoundTrip(ctx context.Context, req *httpx.OutRequest, resp *httpx.Response) (httpx.RoundTripResult, error) {
	var res httpx.RoundTripResult
	if err := ctx.Err(); err != nil {
		return res, &httpx.TransportError{Op: "dial", Err: err}
	}
	for attempt := 0; ; attempt++ {
		// One clock reading per attempt serves the pool and the deadlines
		// (a dial takes time: a fresh connection reads the clock again);
		// the first attempt's is the caller's when it gave one.
		now := req.Now
		if now.IsZero() || attempt > 0 {
			now = t.now()
		}
		c, reused, err := t.getConn(ctx, req.Upgrade != "" || attempt > 0, now)
		if err != nil {
			return res, err
		}
		res.Reused = reused
		if !reused {
			now = t.now()
		}
		retry, err := c.roundTrip(ctx, req, resp, &res, reused, now)
		if retry && attempt == 0 {
			continue
		}
		if retry {
			err = &httpx.TransportError{Op: "read", Sent: true, Err: io.ErrUnexpectedEOF}
		}
		return res, err
	}
}

// isStale reports whether err is what a pooled connection the peer closed
// while idle gives: EOF or a reset before any response byte.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errBodySource wraps an error returned by the request body (the client's
// stream): it is not the upstream's fault.
type errBodySource struct{ err error }

func (e *errBodySource) Error() string { return "request body: " + e.err.Error() }
func (e *errBodySource) Unwrap() error { return e.err }

// afterFuncer is a context that runs a function on cancellation itself
// (the interface context.AfterFunc looks for).
type afterFuncer interface {
	AfterFunc(func()) func() bool
}

// roundTrip sends req on c and reads the response head. retry reports that
// the connection turned out stale before anything could have been
// processed, so the caller may try a fresh one. On error c is closed.
func (c *conn) roundTrip(ctx context.Context, req *httpx.OutRequest, resp *httpx.Response, res *httpx.RoundTripResult, reused bool, now time.Time) (retry bool, err error) {
	// Cancellation interrupts blocked IO through a past deadline. Only
	// cancellable contexts pay for the registration.
	var stop func() bool
	if c.abort == nil {
		nc := c.nc
		c.abort = func() { nc.SetDeadline(aLongTimeAgo) }
	}
	if af, ok := ctx.(afterFuncer); ok {
		// The HTTP/1 server's request context registers without
		// allocating (context.AfterFunc would allocate several times).
		stop = af.AfterFunc(c.abort)
	} else if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.abort)
	}
	fail := func(e error) (bool, error) {
		if stop != nil {
			stop()
		}
		c.close()
		c.waitBody()
		if ce := ctx.Err(); ce != nil {
			if te, ok := e.(*httpx.TransportError); ok {
				te.Err = ce
				te.Timeout = errors.Is(ce, context.DeadlineExceeded)
			}
		}
		return false, e
	}

	rt := req.ReadTimeout
	if rt > 0 {
		// Moving a deadline is a runtime timer update (two here: read and
		// write). On a busy pooled connection the previous request set
		// nearly the same deadlines microseconds ago: keep them while they
		// are within rt/64 of what this request would set (the timeout
		// then fires between 63/64 of read_timeout and read_timeout).
		by := now.Add(rt)
		if !c.deadline || by.Sub(c.readBy) > rt/64 || by.Sub(c.writeBy) > rt/64 {
			c.readBy, c.writeBy = by, by
			c.nc.SetDeadline(by)
			c.deadline = true
		}
	} else if c.deadline {
		c.nc.SetDeadline(time.Time{})
		c.deadline = false
	}

	hasBody := req.Body != nil && req.ContentLength != 0
	if reused && hasBody && !c.sock.Alive() {
		// Once the body is read from, a stale connection cannot be retried:
		// check it first (one non-blocking syscall).
		_, e := fail(nil)
		return true, e
	}

	// Write the head and the body.
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(&c.w)
	c.writeHead(req, hasBody)
	var werr error
	bodyTouched := hasBody
	small := hasBody && req.Upgrade == "" && smallWhole(req)
	async := hasBody && req.Upgrade == "" && !small
	switch {
	case small:
		// A small body that has arrived whole goes out with the head in
		// one write, sent by the response's read (as without a body):
		// reading it cannot wait for the client, and a write this small
		// fits the socket buffer whatever the upstream does.
		werr = c.writeBody(outBody{req.Body, req.ContentLength, req.Trailer}, rt, false)
		if werr == nil {
			c.w.last = c.sock.canSendRead()
			werr = c.bw.Flush()
			c.w.last = false
		}
	case async:
		// The head timeout counts from the end of the body, which the
		// writer marks; until then the response may take as long as the
		// upload does.
		c.readBy = time.Time{}
		c.nc.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			// Cancelled: its abort may have come before the line above.
			return fail(&httpx.TransportError{Op: "write", Err: ctx.Err()})
		}
		c.sendBody(ctx, req, rt) // it flushes and releases the buffer
	case hasBody:
		// An upgrade with a body: sent whole before the answer is read.
		werr = c.writeBody(outBody{req.Body, req.ContentLength, req.Trailer}, rt, true)
		if werr == nil {
			werr = c.bw.Flush()
		}
		c.releaseWriter()
	default:
		// A request without a body is sent, waited for and read in one
		// step (respReader): the response's read does not fail first.
		c.w.last = c.sock.canSendRead()
		werr = c.bw.Flush()
		c.w.last = false
	}
	if werr != nil {
		var be *errBodySource
		if errors.As(werr, &be) {
			return fail(werr)
		}
		if reused && !bodyTouched && isStale(werr) && ctx.Err() == nil {
			_, e := fail(nil)
			return true, e
		}
		// The upstream may have answered early (413) and closed; its
		// answer is more useful than the write error.
		if !bodyTouched || !c.responseWaiting() {
			return fail(&httpx.TransportError{Op: "write", Sent: true, Err: werr, Timeout: false})
		}
	}
	if async {
		// The writer starts the head timeout when the body ends.
	} else if hasBody && rt > 0 {
		// The head deadline counts from the end of the request.
		c.setReadDeadline(rt)
		if ctx.Err() != nil {
			// Cancelled: its abort may have come before the line above
			// (a small body's write waited for the answer already).
			c.nc.SetDeadline(aLongTimeAgo)
		}
	} else if werr != nil {
		c.readBy = time.Time{}
		c.nc.SetReadDeadline(time.Time{}) // responseWaiting's
	}

	// Read the response head. The first read also sends what the flush
	// above left to it (reqWriter): the write buffer is free after it.
	_, rerr := c.br.Peek(1)
	if !async {
		c.w.out = nil // sent by that read (br was empty)
		c.releaseWriter()
	}
	if rerr != nil {
		if reused && !bodyTouched && isStale(rerr) && ctx.Err() == nil {
			_, e := fail(nil)
			return true, e
		}
		if be := c.bodyError(); be != nil {
			return fail(be) // the writer stopped this read: the body failed
		}
		op := "read"
		if oe, ok := rerr.(*net.OpError); ok && oe.Op == "write" {
			op = "write" // the request's end, sent by this read, failed
		}
		return fail(&httpx.TransportError{Op: op, Sent: true, Timeout: isTimeout(rerr), Err: rerr})
	}
	var head *httpx.ResponseHead
	for interim := 0; ; interim++ {
		head, err = c.parser.ReadHead(c.br, resp, 0)
		if err != nil {
			if be := c.bodyError(); be != nil {
				return fail(be)
			}
			if errors.Is(err, httpx.ErrMalformedResponse) {
				return fail(&httpx.TransportError{Op: "protocol", Sent: true, Err: err})
			}
			return fail(&httpx.TransportError{Op: "read", Sent: true, Timeout: isTimeout(err), Err: err})
		}
		if !httpx.IsInterim(head.Status) {
			break
		}
		if interim == maxInterim {
			return fail(&httpx.TransportError{Op: "protocol", Sent: true, Err: errors.New("too many 1xx responses")})
		}
		if req.OnInformational != nil {
			if err := req.OnInformational(head.Status, &resp.Header); err != nil {
				return fail(&httpx.TransportError{Op: "read", Sent: true, Err: err})
			}
		}
		if rt > 0 {
			// An interim answer (102 Processing) shows the upstream is
			// alive: the wait for the final head starts again.
			c.setReadDeadline(rt)
		}
	}
	if async {
		// Only the body writer reads it; an atomic store costs a
		// store-buffer drain, worth ~1% of the CPU per request when it
		// was done for every round trip.
		c.headIn.Store(true)
	}
	resp.Trailer.Reset()

	if head.Status == 101 {
		if req.Upgrade == "" {
			return fail(&httpx.TransportError{Op: "protocol", Sent: true, Err: errors.New("101 response to a request without Upgrade")})
		}
		if stop != nil && !stop() {
			return fail(&httpx.TransportError{Op: "read", Sent: true, Err: ctx.Err()})
		}
		c.nc.SetDeadline(time.Time{})
		resp.Body = nil
		resp.ContentLength = 0
		res.Upgraded = &upgradedConn{Conn: c.nc, br: c.br}
		c.br = nil // owned by the upgraded conn now
		return false, nil
	}

	framing := head.Framing(req.Method)
	resp.ContentLength = head.BodyLength(req.Method)
	if req.Method == "HEAD" && !head.Chunked {
		// No body follows, but the declared length describes the
		// representation and is passed on (RFC 9110 §9.3.2); -1 when absent.
		resp.ContentLength = head.ContentLength
	}
	noReuse := head.Close || req.Upgrade != "" || werr != nil
	if framing == httpx.FramingNone || (framing == httpx.FramingLength && head.ContentLength == 0) {
		resp.Body = nil
		if stop != nil && !stop() {
			noReuse = true
		}
		if noReuse || !c.bodyWritten() {
			c.close()
			c.waitBody()
		} else {
			c.t.putConn(c)
		}
		return false, nil
	}
	// Pooled bodies are zeroed (Close); set field by field: a composite
	// literal is built on the stack and copied with wide loads over
	// narrow stores, a store-forwarding stall on every response.
	b := bodyPool.Get().(*body)
	b.c, b.mode, b.n, b.stop, b.rt = c, framing, head.ContentLength, stop, rt
	b.noReuse = noReuse || framing == httpx.FramingClose
	if framing == httpx.FramingChunked {
		c.cr.Reset(c.br, &resp.Trailer, 0)
	}
	resp.Body = b
	return false, nil
}

// sendBody writes req's body (and flushes the head before it) on a
// goroutine of its own; see conn.bodyDone. When the body ends the head
// timeout starts, also when the upstream refused the rest (reset,
// closed: an answer it sent first is still read); when the body source
// fails (the client's upload broke or passed a limit) or the upstream
// stopped taking the body for read_timeout before the response head came,
// the head's read is stopped, so that the round trip reports that. Once
// the head is in, a failure leaves the response alone (the connection is
// not reused).
func (c *conn) sendBody(ctx context.Context, req *httpx.OutRequest, rt time.Duration) {
	if c.bodyDone == nil {
		c.bodyDone = make(chan error, 1)
	}
	c.writing = true
	c.writeErr = nil
	c.headIn.Store(false)
	// What the writer needs, copied: req belongs to the caller, who may
	// reuse it once the response head is in.
	ob := outBody{req.Body, req.ContentLength, req.Trailer}
	go func() {
		err := c.writeBody(ob, rt, true)
		if err == nil {
			err = c.bw.Flush()
		}
		c.releaseWriter()
		switch {
		case c.headIn.Load():
			// The response is being read: it goes on. After a failure the
			// upstream gets no more of the body (and no sign of its end):
			// an upstream that needs the rest to finish its answer times
			// out and the answer ends incomplete, never cut short in a way
			// that looks whole.
			c.bodyDone <- err
		case isBodySource(err) || isTimeout(err):
			c.bodyDone <- err // before the read it stops fails
			c.nc.SetReadDeadline(aLongTimeAgo)
		default:
			// The whole body, or the upstream refused the rest (reset,
			// closed): an early answer may be in flight; the head has
			// read_timeout from here.
			if rt > 0 {
				c.nc.SetReadDeadline(time.Now().Add(rt))
				if ctx.Err() != nil {
					// Cancelled: its abort may have come before the line above.
					c.nc.SetDeadline(aLongTimeAgo)
				}
			}
			c.bodyDone <- nil
		}
	}()
}

// bodyError takes the body writer's result when it has ended with an error
// of the body source's: that, not the read it stopped, is the round trip's
// error. Nil otherwise (a write error is kept for bodyWritten).
func (c *conn) bodyError() error {
	if !c.writing {
		return nil // no writer, or its result was taken (and was not this)
	}
	select {
	case c.writeErr = <-c.bodyDone:
		c.writing = false
		if isBodySource(c.writeErr) {
			return c.writeErr
		}
	default:
	}
	return nil
}

func isBodySource(err error) bool {
	_, ok := err.(*errBodySource)
	return ok
}

// bodyWritten reports whether the request's body was written whole: false
// while its writer still runs (the response ended before the request did:
// the connection is not reusable) or when it failed.
func (c *conn) bodyWritten() bool {
	if c.writing {
		select {
		case c.writeErr = <-c.bodyDone:
			c.writing = false
		default:
			return false
		}
	}
	return c.writeErr == nil
}

// waitBody waits until the body writer has ended (the connection is closed
// by then, so its writes fail; a read of the body source in progress ends
// first). A failed round trip, and a response body's release, return only
// after it: nothing reads the request body after RoundTrip returned an
// error or the response ended.
func (c *conn) waitBody() {
	if c.writing {
		c.writeErr = <-c.bodyDone
		c.writing = false
	}
}

// responseWaiting reports whether response bytes are readable after a
// failed write (the upstream answered before reading the whole body).
func (c *conn) responseWaiting() bool {
	c.readBy = time.Now().Add(50 * time.Millisecond)
	c.nc.SetReadDeadline(c.readBy)
	c.deadline = true
	_, err := c.br.Peek(1)
	return err == nil
}

// writeHead buffers the request line and fields: "METHOD URI HTTP/1.1",
// Host, req.Header, the upgrade fields, then the framing field.
func (c *conn) writeHead(req *httpx.OutRequest, hasBody bool) {
	bw := c.bw
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URI)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.Host)
	bw.WriteString("\r\n")
	if req.Header != nil {
		for _, f := range req.Header.Fields() {
			bw.WriteString(f.Name)
			bw.WriteString(": ")
			bw.WriteString(f.Value)
			bw.WriteString("\r\n")
		}
	}
	if req.Upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.WriteString(req.Upgrade)
		bw.WriteString("\r\n")
	}
	switch {
	case hasBody && req.ContentLength > 0:
		b := bw.AvailableBuffer()
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, req.ContentLength, 10)
		b = append(b, "\r\n"...)
		bw.Write(b)
	case hasBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH":
		// RFC 9110 §8.6: a user agent should send Content-Length when the
		// method defines a meaning for content, even when it is empty.
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
}

// writeBody streams req.r: exactly req.length bytes, or chunked with
// req.trailer after io.EOF; flushEach sends every piece as it comes. It never holds more than one copy buffer of the
// body. Errors from the body source are wrapped in errBodySource; a body
// that ends before ContentLength is one too (the request is incomplete and
// must not look complete to the upstream).
// smallBody is the largest body sent with its head in one write: it fits
// the smallest default socket send buffer (16 KB) with room for the head.
const smallBody = 8 << 10

// smallWhole reports whether req has a small body of declared length that
// has arrived whole (its reader says so).
func smallWhole(req *httpx.OutRequest) bool {
	if req.ContentLength <= 0 || req.ContentLength > smallBody {
		return false
	}
	w, ok := req.Body.(interface{ Whole() bool })
	return ok && w.Whole()
}

// outBody is what writeBody sends: a request's Body, ContentLength and
// Trailer.
type outBody struct {
	r       io.Reader
	length  int64
	trailer *httpx.Header
}

func (c *conn) writeBody(req outBody, rt time.Duration, flushEach bool) error {
	bufp := copyPool.Get().(*[32 << 10]byte)
	defer copyPool.Put(bufp)
	buf := bufp[:]
	if req.length > 0 {
		left := req.length
		for left > 0 {
			p := buf
			if int64(len(p)) > left {
				p = p[:left]
			}
			n, err := req.r.Read(p)
			if n > 0 {
				left -= int64(n)
				if rt > 0 && flushEach {
					// Each piece's write may wait up to read_timeout. (A
					// small whole body, not flushed piece by piece, is
					// written within the round trip's own deadline.)
					c.nc.SetWriteDeadline(time.Now().Add(rt))
				}
				if _, werr := c.bw.Write(p[:n]); werr != nil {
					return werr
				}
				// Each piece goes out as it came: the upstream may answer
				// it before the next (full duplex), and a piece left in
				// the buffer would wait for a next that waits for that
				// answer.
				if flushEach {
					if werr := c.bw.Flush(); werr != nil {
						return werr
					}
				}
			}
			if err == io.EOF {
				if left > 0 {
					return &errBodySource{io.ErrUnexpectedEOF}
				}
				break
			}
			if err != nil {
				return &errBodySource{err}
			}
		}
		return nil
	}
	c.cw.Reset(c.bw)
	for {
		n, err := req.r.Read(buf)
		if n > 0 {
			if rt > 0 && flushEach {
				c.nc.SetWriteDeadline(time.Now().Add(rt))
			}
			if _, werr := c.cw.Write(buf[:n]); werr != nil {
				return werr
			}
			if flushEach {
				if werr := c.bw.Flush(); werr != nil { // see above
					return werr
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &errBodySource{err}
		}
	}
	if err := c.cw.Close(req.trailer); err != nil {
		return &errBodySource{err}
	}
	return nil
}

// body reads a response body from the connection and releases the
// connection when the body ends: to the pool after a complete body, closed
// otherwise.
type body struct {
	c       *conn
	mode    httpx.Framing
	n       int64 // bytes left (FramingLength)
	stop    func() bool
	rt      time.Duration
	noReuse bool
	err     error // after release: io.EOF or the error
}

func (b *body) Read(p []byte) (int, error) {
	c := b.c
	if c == nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.rt > 0 && (c.br.Buffered() == 0 ||
		b.mode == httpx.FramingChunked && time.Until(c.readBy) < b.rt/2) {
		// Each network read may wait up to read_timeout. A Read served
		// from the buffer needs no new deadline (bufio reads the network
		// only when it is empty), unless the old one is getting close and
		// the body is chunked (a partial chunk line may still need the
		// network).
		c.setReadDeadline(b.rt)
	}
	switch b.mode {
	case httpx.FramingLength:
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err := c.br.Read(p)
		b.n -= int64(n)
		if b.n == 0 {
			b.release(true, io.EOF)
			return n, io.EOF
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			b.release(false, err)
			return n, err
		}
		return n, nil
	case httpx.FramingChunked:
		n, err := c.cr.Read(p)
		if err == io.EOF {
			b.release(true, io.EOF)
			return n, io.EOF
		}
		if err != nil {
			if errors.Is(err, httpx.ErrMalformedChunked) {
				err = &httpx.TransportError{Op: "protocol", Sent: true, Err: err}
			}
			b.release(false, err)
		}
		return n, err
	default: // FramingClose
		n, err := c.br.Read(p)
		if err != nil {
			b.release(false, err)
		}
		return n, err
	}
}

// errBodyClosed is what a closed body's connection is released with.
var errBodyClosed = errors.New("transport: read on closed response body")

// Close discards the connection unless the body was read whole, and
// recycles b: the caller must not use it afterwards (CloseBody also drops
// the reference).
func (b *body) Close() error {
	if b.c != nil {
		b.release(false, errBodyClosed)
	}
	*b = body{}
	bodyPool.Put(b)
	return nil
}

func (b *body) release(complete bool, err error) {
	c := b.c
	b.c = nil
	b.err = err
	if b.stop != nil && !b.stop() {
		complete = false // the cancellation deadline may be set
	}
	if complete && !b.noReuse && c.bodyWritten() {
		c.t.putConn(c)
	} else {
		// A body writer still running ends on the closed connection
		// after the Read of the body it may be in: like the HTTP/2
		// transport, the response's end returns only once nothing reads
		// the client's request body any more.
		c.close()
		c.waitBody()
	}
}

// upgradedConn is the raw connection after a 101: reads drain the bufio
// reader first so bytes the upstream sent right after its head are not lost.
type upgradedConn struct {
	net.Conn
	br *bufio.Reader
}

func (u *upgradedConn) Read(p []byte) (int, error) {
	if u.br != nil {
		if u.br.Buffered() > 0 {
			return u.br.Read(p)
		}
		u.br.Reset(nil)
		readerPool.Put(u.br)
		u.br = nil
	}
	return u.Conn.Read(p)
}
