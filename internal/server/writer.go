package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

var (
	errHeaderWritten   = errors.New("server: response header already written")
	errBadStatus       = errors.New("server: invalid status code")
	errTooMuchBody     = errors.New("server: body longer than declared Content-Length")
	errFinished        = errors.New("server: response already finished")
	errHijacked        = errors.New("server: connection hijacked")
	errNoInformational = errors.New("server: 1xx responses cannot be sent to an HTTP/1.0 client")
)

// h1Writer is the HTTP/1.1 httpx.ResponseWriter, reused per connection. It
// frames the body itself (RFC 9112 §6): Content-Length when known, chunked
// for HTTP/1.1 otherwise, close-delimited for HTTP/1.0; no body at all for
// HEAD, 1xx, 204 and 304 (RFC 9110 §6.4.1).
type h1Writer struct {
	c         *conn
	http11    bool
	keepAlive bool
	head      bool

	wroteHeader bool
	finished    bool
	hijacked    bool
	closeAfter  bool
	bodyless    bool
	chunked     bool
	cl          int64
	written     int64
	err         error
	cw          httpx.ChunkedWriter
}

func (w *h1Writer) reset(c *conn, http11, keepAlive bool) {
	// Zero, then set (a literal would be built on the stack and copied
	// with wide loads over narrow stores: a store-forwarding stall).
	cw := w.cw
	*w = h1Writer{}
	w.c, w.http11, w.keepAlive, w.head, w.cw = c, http11, keepAlive, c.ctx.Req.Method == "HEAD", cw
}

// skipResponseField reports the fields WriteHeader writes itself or drops:
// hop-by-hop fields (RFC 9110 §7.6.1) and framing (RFC 9112 §6).
func skipResponseField(name string, status int) bool {
	switch len(name) {
	case 2:
		return httpx.EqualFold(name, "TE")
	case 7:
		return status != 101 && httpx.EqualFold(name, "Upgrade")
	case 10:
		return httpx.EqualFold(name, "Connection") || httpx.EqualFold(name, "Keep-Alive")
	case 14:
		return httpx.EqualFold(name, "Content-Length")
	case 16:
		return httpx.EqualFold(name, "Proxy-Connection")
	case 17:
		return httpx.EqualFold(name, "Transfer-Encoding")
	}
	return false
}

// safeField refuses names and values that would split the response.
func safeField(f *httpx.Field) bool {
	if len(f.Name) == 0 {
		return false
	}
	for i := 0; i < len(f.Name); i++ {
		if c := f.Name[i]; c <= ' ' || c == ':' || c >= 0x7f {
			return false
		}
	}
	for i := 0; i < len(f.Value); i++ {
		if c := f.Value[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

func appendStatusLine(b []byte, status int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	return append(b, http.StatusText(status)...)
}

// appendFields appends h's fields except the skipped ones, and Date when h
// has none (RFC 9110 §6.6.1: an origin with a clock MUST send it; a proxy
// passes the upstream's).
func (w *h1Writer) appendFields(b []byte, status int, h *httpx.Header) []byte {
	hasDate := false
	if h != nil {
		fs := h.Fields()
		for i := range fs {
			f := &fs[i]
			if skipResponseField(f.Name, status) || !safeField(f) {
				continue
			}
			if !hasDate && len(f.Name) == 4 && httpx.EqualFold(f.Name, "Date") {
				hasDate = true
			}
			b = append(b, f.Name...)
			b = append(b, ':', ' ')
			b = append(b, f.Value...)
			b = append(b, '\r', '\n')
		}
	}
	if !hasDate {
		b = append(b, "Date: "...)
		b = w.c.appendDate(b)
		b = append(b, '\r', '\n')
	}
	return b
}

// writeBytes writes b through the buffered writer; b usually is the
// writer's own AvailableBuffer, so a head that fits costs no copy.
func (w *h1Writer) writeBytes(b []byte) error {
	if _, err := w.c.bw.Write(b); err != nil {
		w.err = err
		return err
	}
	return nil
}

// WriteInformational sends a 1xx response (103 Early Hints, 100). HTTP/1.0
// clients get none (RFC 9110 §15.2). 101 goes through WriteHeader.
func (w *h1Writer) WriteInformational(status int, h *httpx.Header) error {
	if w.hijacked {
		return errHijacked
	}
	if w.wroteHeader {
		return errHeaderWritten
	}
	if status < 100 || status > 199 || status == 101 {
		return errBadStatus
	}
	if !w.http11 {
		return errNoInformational
	}
	if status == 100 {
		w.c.body.ContinueSent()
	}
	// The body may be read on another goroutine (httpx.Body.Share), whose
	// first Read may send our own 100 Continue on this connection.
	w.c.body.HoldContinue()
	defer w.c.body.ReleaseContinue()
	b := appendStatusLine(w.c.bw.AvailableBuffer(), status)
	b = append(b, '\r', '\n')
	if h != nil {
		fs := h.Fields()
		for i := range fs {
			f := &fs[i]
			if skipResponseField(f.Name, status) || !safeField(f) {
				continue
			}
			b = append(b, f.Name...)
			b = append(b, ':', ' ')
			b = append(b, f.Value...)
			b = append(b, '\r', '\n')
		}
	}
	b = append(b, '\r', '\n')
	if err := w.writeBytes(b); err != nil {
		return err
	}
	if err := w.c.bw.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// WriteHeader writes the status line and fields. It does not flush: the
// body usually follows, and the head and the first body bytes then leave
// in one write.
func (w *h1Writer) WriteHeader(status int, h *httpx.Header, contentLength int64) error {
	if w.hijacked {
		return errHijacked
	}
	if w.wroteHeader {
		return errHeaderWritten
	}
	if status < 200 && status != 101 || status > 999 {
		return errBadStatus
	}
	w.wroteHeader = true
	c := w.c
	if c.body.ContinuePending() {
		// The final answer comes before we asked for the body: the client
		// may send it anyway or not at all, so the connection cannot be
		// reused (RFC 9110 §10.1.1).
		c.body.CancelContinue()
		w.closeAfter = true
	} else if c.body.Shared() {
		// Another goroutine may be reading the body (a proxy streaming it
		// upstream): if it has not ended, how much is left is not known
		// here, so the connection closes after this response.
		if !c.body.Ended() {
			w.closeAfter = true
		}
	} else if rem := c.body.Remaining(); rem > maxDrain {
		// Too much unread body to drain: say we close (net/http does too).
		w.closeAfter = true
	}
	if !w.keepAlive || c.srv.closing.Load() {
		w.closeAfter = true
	}
	w.cl = contentLength
	w.bodyless = w.head || status == 204 || status == 304 || status == 101

	b := appendStatusLine(c.bw.AvailableBuffer(), status)
	b = append(b, '\r', '\n')
	b = w.appendFields(b, status, h)
	switch {
	case status == 101:
		// The connection now speaks another protocol: it is the
		// hijacker's, or it is closed after the handler.
		b = append(b, "Connection: Upgrade\r\n"...)
		w.closeAfter = true
	case status == 204 || status == 304:
		// RFC 9110 §8.6: no Content-Length in 204; a 304's would describe
		// the selected representation, which we do not know here.
	case contentLength >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, contentLength, 10)
		b = append(b, '\r', '\n')
	case w.head:
		// HEAD of unknown length: say nothing.
	case w.http11:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		w.chunked = true
		w.cw.Reset(c.bw)
	default:
		// HTTP/1.0 and unknown length: the body ends when we close
		// (RFC 9112 §6.3 item 8).
		w.closeAfter = true
	}
	if status != 101 {
		if w.closeAfter {
			b = append(b, "Connection: close\r\n"...)
		} else if !w.http11 {
			b = append(b, "Connection: keep-alive\r\n"...)
		}
	}
	b = append(b, '\r', '\n')
	return w.writeBytes(b)
}

// Write writes body bytes (discarded for bodyless responses).
func (w *h1Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.finished {
		return 0, errFinished
	}
	if !w.wroteHeader {
		if err := w.WriteHeader(200, nil, -1); err != nil {
			return 0, err
		}
	}
	if w.bodyless {
		return len(p), nil
	}
	var over bool
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		p = p[:w.cl-w.written]
		over = true
	}
	var n int
	var err error
	if w.chunked {
		n, err = w.cw.Write(p)
	} else {
		n, err = w.c.bw.Write(p)
	}
	w.written += int64(n)
	if err != nil {
		w.err = err
		return n, err
	}
	if over {
		w.closeAfter = true
		return n, errTooMuchBody
	}
	return n, nil
}

// Flush sends buffered bytes to the client.
func (w *h1Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.hijacked {
		return errHijacked
	}
	if err := w.c.bw.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Finish ends the response: the last chunk and trailers for a chunked body
// (RFC 9112 §7.1.2). A fixed-length body shorter than declared makes the
// connection close, the only way left to tell the client it was cut short.
// Bytes stay buffered until the server reads again or closes, so pipelined
// responses share writes.
func (w *h1Writer) Finish(trailer *httpx.Header) error {
	if w.hijacked {
		return errHijacked
	}
	if w.finished {
		return nil
	}
	if !w.wroteHeader {
		if err := w.WriteHeader(200, nil, 0); err != nil {
			return err
		}
	}
	w.finished = true
	if w.err != nil {
		return w.err
	}
	if w.chunked {
		if err := w.cw.Close(trailer); err != nil {
			w.err = err
			return err
		}
	} else if !w.bodyless && w.cl >= 0 && w.written < w.cl {
		w.closeAfter = true
	}
	return nil
}

// Hijack hands over the connection (after a 101 for WebSocket). The
// returned reader holds bytes already read past the request head; the
// server forgets the connection (Shutdown no longer waits for it).
func (w *h1Writer) Hijack() (net.Conn, *bufio.Reader, error) {
	if w.hijacked {
		return nil, nil, errHijacked
	}
	c := w.c
	c.stopWatch() // the connection is the hijacker's to read
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	c.inBody = false
	c.ctx.Hijacked = true
	c.state.Store(stateHijacked)
	c.setDeadline(time.Time{})
	c.srv.pools.putWriter(c.bw)
	c.bw = nil // the connReader flushes nothing any more
	br := c.br
	c.br = nil
	c.srv.removeConn(c)
	return c.rwc, br, nil
}

// Written reports whether WriteHeader was called.
func (w *h1Writer) Written() bool { return w.wroteHeader }

var _ httpx.ResponseWriter = (*h1Writer)(nil)
