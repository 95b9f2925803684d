package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"golang.org/x/net/http2"
)

var (
	errH2ContentLength = errors.New("server: HTTP/2 request body does not match its content-length")
	errH2BadTrailers   = errors.New("server: malformed HTTP/2 request trailers")
)

// h2stream is one HTTP/2 stream: its request (a pooled httpx.Ctx), the
// request body buffer the reader fills, and the response writer the
// handler uses. Pooled per Server and reused across connections. Fields
// below mu are guarded by the connection's mutex.
type h2stream struct {
	h  *h2conn
	id uint32

	ctx    httpx.Ctx
	body   httpx.Body
	rd     h2reqBody
	rctx   reqCtx
	errHdr httpx.Header

	// cur is the connection the stream belongs to, for the timer (which
	// may fire late, after a reuse: it then only causes a spurious wakeup).
	cur   atomic.Pointer[h2conn]
	timer *time.Timer

	// Set by the reader before the handler starts.
	preStatus int    // answer this instead of running the handler
	preMsg    string // its error message
	expect100 bool
	head      bool

	// Response state, handler-owned.
	wroteHeader bool
	finished    bool
	abort       bool
	bodyless    bool
	status      int
	cl          int64
	written     int64
	respHdr     httpx.Header

	// Guarded by h.mu.
	rcond       sync.Cond // body waits (L = &h.mu)
	rbuf        []byte    // received body bytes; rbuf[rpos:] unread
	rpos        int
	trailer     httpx.Header
	declared    int64 // content-length, -1 unknown
	received    int64
	bodyErr     error
	recvWindow  int64
	recvCredit  int64
	sendWindow  int64
	remoteDone  bool // END_STREAM (or reset) from the client
	rstRecv     bool // reset (either side) or the connection died
	sentHeaders bool
	sentEnd     bool
	sent100     bool
	handlerDone bool
}

// h2reqBody is the stream's request body source (wrapped by httpx.Body,
// which adds limits and counting).
type h2reqBody struct{ st *h2stream }

func (s *Server) getStream() *h2stream {
	if v := s.h2streams.Get(); v != nil {
		return v.(*h2stream)
	}
	st := &h2stream{}
	st.rd.st = st
	st.rctx.stop = st.rctx.stopSlot
	return st
}

// newStream takes a pooled stream for id (reader goroutine).
func (h *h2conn) newStream(id uint32) *h2stream {
	st := h.srv.getStream()
	st.h = h
	st.id = id
	st.cur.Store(h)
	st.rcond.L = &h.mu
	st.sendWindow = h.peerWindow
	st.recvWindow = h2StreamWindow
	st.declared = -1
	st.cl = -1
	st.rctx.reset()
	st.ctx.Reset()
	st.ctx.Start = time.Now()
	return st
}

// releaseStream returns st to the pool. Nothing may refer to it any more:
// it is out of the stream table and its handler has returned.
func (h *h2conn) releaseStream(st *h2stream) {
	if st.timer != nil {
		st.timer.Stop()
	}
	st.cur.Store(nil)
	st.ctx.Reset()
	st.body.ResetNone()
	st.respHdr.Reset()
	st.trailer.Reset()
	st.errHdr.Reset()
	rbuf := st.rbuf[:0]
	if cap(rbuf) > 64<<10 {
		rbuf = nil
	}
	st.rbuf, st.rpos = rbuf, 0
	st.h, st.id = nil, 0
	st.preStatus, st.preMsg, st.expect100, st.head = 0, "", false, false
	st.wroteHeader, st.finished, st.abort, st.bodyless = false, false, false, false
	st.status, st.cl, st.written = 0, -1, 0
	st.declared, st.received, st.bodyErr = -1, 0, nil
	st.recvWindow, st.recvCredit, st.sendWindow = 0, 0, 0
	st.remoteDone, st.rstRecv, st.sentHeaders = false, false, false
	st.sentEnd, st.sent100, st.handlerDone = false, false, false
	st.rctx.mu.Lock()
	st.rctx.f = nil
	st.rctx.mu.Unlock()
	h.srv.h2streams.Put(st)
}

// armTimer makes the stream's waits wake up after d (body and send
// timeouts).
func (st *h2stream) armTimer(d time.Duration) {
	if st.timer == nil {
		st.timer = time.AfterFunc(d, st.onTimer)
		return
	}
	st.timer.Reset(d)
}

func (st *h2stream) onTimer() {
	if h := st.cur.Load(); h != nil {
		h.mu.Lock()
		st.rcond.Broadcast()
		h.sendCond.Broadcast()
		h.mu.Unlock()
	}
}

// setupCtx fills the Ctx's connection facts before the handler runs.
func (h *h2conn) setupCtx(st *h2stream) {
	c := h.c
	x := &st.ctx
	x.Conn = httpx.ConnInfo{RemoteAddr: c.remote, LocalAddr: c.local, TLS: c.tlsState, Server: h.opts.Name}
	x.Scheme = "http"
	if c.tlsState != nil {
		x.Scheme = "https"
	}
	x.ClientIP = c.remote.Addr()
	x.BytesIn = 0
	x.W = st
	x.Context = &st.rctx
	st.head = x.Req.Method == "HEAD"
	st.body.SetCounter(&x.BytesIn)
	x.Req.Body = &st.body
}

// runStream runs the stream's handler and closes the stream after it.
func (h *h2conn) runStream(st *h2stream) {
	defer h.wg.Done()
	h.callHandler(st)
	h.streamDone(st)
}

// callHandler runs the handler, recovering a panic like the HTTP/1 path: it
// is logged and answered 500 when nothing was written, else the stream is
// reset.
func (h *h2conn) callHandler(st *h2stream) {
	defer func() {
		if v := recover(); v != nil {
			h.opts.Logger.Error("handler panic", "server", h.opts.Name, "remote", h.c.remote,
				"method", st.ctx.Req.Method, "uri", st.ctx.Req.RequestURI, "panic", v, "stack", string(debug.Stack()))
			if !st.wroteHeader {
				st.writeError(500, "internal server error")
			} else {
				st.abort = true
			}
		}
	}()
	if st.preStatus != 0 {
		st.writeError(st.preStatus, st.preMsg)
		return
	}
	h.srv.handler.ServeHTTPX(&st.ctx)
	if !st.wroteHeader {
		st.writeError(500, "handler wrote no response")
	}
}

// writeError answers with the contract's JSON error body.
func (st *h2stream) writeError(status int, msg string) {
	x := &st.ctx
	x.Scratch = httpx.AppendJSONError(x.Scratch[:0], msg)
	st.errHdr.Reset()
	st.errHdr.Add("Content-Type", "application/json")
	if st.WriteHeader(status, &st.errHdr, int64(len(x.Scratch))) == nil {
		st.Write(x.Scratch)
		st.Finish(nil)
	}
}

// streamDone closes the stream once its handler returned: a response that
// was not finished is reset (the client must not take it for complete); a
// complete response to a request whose body is still coming asks the
// client to stop sending (RST_STREAM NO_ERROR, RFC 9113 §8.1).
func (h *h2conn) streamDone(st *h2stream) {
	h.mu.Lock()
	st.handlerDone = true
	if !h.closed && !st.rstRecv {
		switch {
		case !st.sentEnd || st.abort:
			h.writeRSTLocked(st.id, http2.ErrCodeInternal)
		case !st.remoteDone:
			h.writeRSTLocked(st.id, http2.ErrCodeNo)
		}
	}
	if unread := len(st.rbuf) - st.rpos; unread > 0 {
		h.creditLocked(nil, int64(unread))
	}
	delete(h.streams, st.id)
	h.active--
	if h.active == 0 {
		if h.goAway {
			h.pokeReaderLocked()
		} else {
			// Idle from now: the reader may be blocked without a deadline.
			h.readDL = time.Now().Add(h.opts.IdleTimeout)
			h.c.rwc.SetReadDeadline(h.readDL)
		}
	}
	h.flushLocked(false)
	h.mu.Unlock()
	h.releaseStream(st)
}

// writableLocked reports why nothing more may be sent on the stream.
func (st *h2stream) writableLocked() error {
	h := st.h
	if h.closed {
		if h.werr != nil {
			return h.werr
		}
		return errH2ConnClosed
	}
	if st.rstRecv {
		return errH2StreamReset
	}
	return nil
}

// BodyEOF copies the request trailers once the body is read (httpx.Body
// calls it at io.EOF).
func (st *h2stream) BodyEOF() {
	if st.trailer.Len() > 0 {
		st.ctx.Req.Trailer.CopyFrom(&st.trailer)
	}
}

// Read implements the request body: it waits for DATA from the reader and
// returns consumed bytes to the client's flow-control windows. Each wait
// must see progress within the send timeout (nginx's client_body_timeout).
func (r *h2reqBody) Read(p []byte) (int, error) {
	st := r.st
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if st.expect100 && !st.sent100 && !st.sentHeaders && !st.remoteDone && st.writableLocked() == nil {
		// Expect: 100-continue (RFC 9110 §10.1.1): the client waits for
		// it before sending the body.
		st.sent100 = true
		h.writeHeaderBlockLocked(st.id, h.encodeHeadersLocked(100, nil, -1, false), false)
		h.flushLocked(false)
	}
	var deadline time.Time
	for {
		if st.rpos < len(st.rbuf) {
			n := copy(p, st.rbuf[st.rpos:])
			st.rpos += n
			if st.rpos == len(st.rbuf) {
				st.rbuf = st.rbuf[:0]
				st.rpos = 0
			}
			before := len(h.wbuf)
			h.creditLocked(st, int64(n))
			if len(h.wbuf) != before {
				h.flushLocked(false)
			}
			return n, nil
		}
		switch {
		case st.bodyErr != nil:
			return 0, st.bodyErr
		case st.rstRecv:
			if h.closed && h.werr != nil {
				return 0, h.werr
			}
			return 0, errH2StreamReset
		case st.remoteDone:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(h.opts.sendTimeout)
			st.armTimer(h.opts.sendTimeout)
		} else if !now.Before(deadline) {
			st.bodyErr = errH2Timeout
			h.resetStreamLocked(st.id, http2.ErrCodeCancel)
			h.flushLocked(false)
			return 0, st.bodyErr
		}
		st.rcond.Wait()
	}
}

// WriteInformational sends a 1xx response.
func (st *h2stream) WriteInformational(status int, hdr *httpx.Header) error {
	if st.wroteHeader {
		return errHeaderWritten
	}
	if status < 100 || status > 199 || status == 101 {
		return errBadStatus
	}
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := st.writableLocked(); err != nil {
		return err
	}
	if status == 100 {
		st.sent100 = true
	}
	h.writeHeaderBlockLocked(st.id, h.encodeHeadersLocked(status, hdr, -1, false), false)
	h.flushLocked(false)
	return nil
}

// WriteHeader records the response head. The HEADERS frame is encoded
// when the first body bytes, a flush or the end come, so that a bodyless
// response carries END_STREAM on it and a small one leaves with its DATA.
func (st *h2stream) WriteHeader(status int, hdr *httpx.Header, contentLength int64) error {
	if st.wroteHeader {
		return errHeaderWritten
	}
	if status < 200 || status > 999 {
		return errBadStatus
	}
	h := st.h
	h.mu.Lock()
	err := st.writableLocked()
	h.mu.Unlock()
	if err != nil {
		return err
	}
	st.wroteHeader = true
	st.status = status
	st.cl = contentLength
	st.bodyless = st.head || status == 204 || status == 304
	if hdr != nil {
		st.respHdr.CopyFrom(hdr)
	} else {
		st.respHdr.Reset()
	}
	return nil
}

// emitHeadersLocked writes the recorded response head.
func (st *h2stream) emitHeadersLocked(endStream bool) {
	h := st.h
	st.sentHeaders = true
	cl := st.cl
	if st.status == 204 || st.status == 304 {
		cl = -1
	}
	h.writeHeaderBlockLocked(st.id, h.encodeHeadersLocked(st.status, &st.respHdr, cl, true), endStream)
	if endStream {
		st.sentEnd = true
	}
}

// waitSendLocked waits for a window, or for the flusher to drain the
// output buffer, within the send timeout counted from *deadline.
func (st *h2stream) waitSendLocked(deadline *time.Time) error {
	h := st.h
	now := time.Now()
	if deadline.IsZero() {
		*deadline = now.Add(h.opts.sendTimeout)
		st.armTimer(h.opts.sendTimeout)
	} else if !now.Before(*deadline) {
		h.resetStreamLocked(st.id, http2.ErrCodeCancel)
		h.kickLocked()
		return errH2Timeout
	}
	h.sendWaiters++
	h.sendCond.Wait()
	h.sendWaiters--
	return nil
}

// Write sends body bytes as DATA frames within the flow-control windows.
func (st *h2stream) Write(p []byte) (int, error) {
	if st.finished {
		return 0, errFinished
	}
	if !st.wroteHeader {
		if err := st.WriteHeader(200, nil, -1); err != nil {
			return 0, err
		}
	}
	if st.bodyless {
		return len(p), nil
	}
	var over bool
	if st.cl >= 0 && st.written+int64(len(p)) > st.cl {
		p = p[:st.cl-st.written]
		over = true
	}
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if !st.sentHeaders {
		if err := st.writableLocked(); err != nil {
			return 0, err
		}
		st.emitHeadersLocked(false)
	}
	n := 0
	var deadline time.Time
	for len(p) > 0 {
		if err := st.writableLocked(); err != nil {
			st.written += int64(n)
			return n, err
		}
		if len(h.wbuf) >= h2MaxBuffered {
			if !h.flushing {
				h.flushLocked(false)
				continue
			}
			if err := st.waitSendLocked(&deadline); err != nil {
				st.written += int64(n)
				return n, err
			}
			continue
		}
		avail := min(st.sendWindow, h.sendWindow, int64(h.peerMaxFrame))
		if avail <= 0 {
			// Out of window: what is queued must reach the client for it
			// to send WINDOW_UPDATE. flushLocked lets go of the mutex, so
			// the windows are looked at again after it.
			if len(h.wbuf) > 0 && !h.flushing {
				h.flushLocked(false)
				continue
			}
			if err := st.waitSendLocked(&deadline); err != nil {
				st.written += int64(n)
				return n, err
			}
			continue
		}
		chunk := int(min(int64(len(p)), avail))
		h.fr.WriteData(st.id, false, p[:chunk])
		st.sendWindow -= int64(chunk)
		h.sendWindow -= int64(chunk)
		p = p[chunk:]
		n += chunk
		deadline = time.Time{}
	}
	st.written += int64(n)
	if len(h.wbuf) >= h2FlushAt {
		h.flushLocked(false)
	}
	if over {
		st.abort = true
		return n, errTooMuchBody
	}
	return n, nil
}

// Flush sends what is buffered (server-sent events, gRPC streams).
func (st *h2stream) Flush() error {
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := st.writableLocked(); err != nil {
		return err
	}
	if st.wroteHeader && !st.sentHeaders && !st.finished {
		st.emitHeadersLocked(false)
	}
	h.flushLocked(false)
	return nil
}

// Finish ends the stream: END_STREAM on the HEADERS of a bodyless
// response, on trailers, or on an empty DATA frame. A body shorter than
// its Content-Length resets the stream instead (when the handler returns).
func (st *h2stream) Finish(trailer *httpx.Header) error {
	if st.finished {
		return nil
	}
	if !st.wroteHeader {
		if err := st.WriteHeader(200, nil, 0); err != nil {
			return err
		}
	}
	st.finished = true
	if !st.bodyless && st.cl >= 0 && st.written < st.cl {
		st.abort = true
		return nil
	}
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := st.writableLocked(); err != nil {
		return err
	}
	hasTrailers := trailer != nil && countH2Trailers(trailer) > 0
	if !st.sentHeaders {
		st.emitHeadersLocked(!hasTrailers)
	}
	if !st.sentEnd {
		if hasTrailers {
			h.writeHeaderBlockLocked(st.id, h.encodeTrailersLocked(trailer), true)
		} else {
			h.fr.WriteData(st.id, true, nil)
		}
		st.sentEnd = true
	}
	h.flushLocked(true)
	return nil
}

// Hijack is not possible on an HTTP/2 stream.
func (st *h2stream) Hijack() (net.Conn, *bufio.Reader, error) {
	return nil, nil, httpx.ErrHijackUnsupported
}

// Written reports whether WriteHeader was called.
func (st *h2stream) Written() bool { return st.wroteHeader }

var _ httpx.ResponseWriter = (*h2stream)(nil)
