package httpx

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// BodyLimiter is implemented by request bodies that can enforce a size
// limit while streaming (client_max_body_size, a plugin's body_limit).
type BodyLimiter interface {
	// SetLimit makes Read return ErrBodyTooLarge once more than n bytes
	// would be read; n <= 0 removes the limit.
	SetLimit(n int64)
}

// SetBodyLimit applies a streaming size limit to req.Body when the body
// supports it (every server body does) and reports whether it did.
func SetBodyLimit(req *Request, n int64) bool {
	if l, ok := req.Body.(BodyLimiter); ok {
		l.SetLimit(n)
		return true
	}
	return false
}

// BodyEOFHook is told, once, when a body has been read to its end (the
// HTTP/2 engine copies trailers into Request.Trailer then; the HTTP/1.1
// server starts its disconnect watch).
type BodyEOFHook interface{ BodyEOF() }

type bodyMode uint8

const (
	bodyNone bodyMode = iota
	bodyFixed
	bodyChunked
	bodyStream
)

// Body is a request body reader that a server reuses for every request of a
// connection: none, a fixed Content-Length (RFC 9112 §6.2), chunked (RFC
// 9112 §7.1, strictly validated by ChunkedReader, trailers into the given
// Header), or another stream (HTTP/2). It adds an optional size limit and
// the 100-continue interim response. Errors are sticky.
type Body struct {
	mode      bodyMode
	br        *bufio.Reader
	remaining int64
	cr        ChunkedReader
	src       io.Reader
	hook      BodyEOFHook
	limit     int64
	n         int64
	err       error
	cont      *bufio.Writer
	counter   *int64
	drain     []byte // Drain's scratch buffer

	// A body may be read on another goroutine than the one writing the
	// response (Share: a proxy streams it upstream while the answer comes
	// back). contMu then orders the 100 Continue a Read sends with the
	// response's writes on the same connection: CancelContinue, after
	// which no Read sends it, and HoldContinue around an interim answer.
	contMu      sync.Mutex
	contSet     bool        // SetContinue was called (before the body is shared)
	contDropped bool        // cancelled before it was sent: reads fail
	shared      bool        // Share was called (set and read by the response's goroutine)
	ended       atomic.Bool // err is set: the body is over
}

// ErrContinueFailed wraps a failure to send "100 Continue".
var ErrContinueFailed = errors.New("httpx: sending 100 Continue failed")

func (b *Body) reset(mode bodyMode) {
	cr, drain := b.cr, b.drain
	// Nothing reads or writes the body while it is reset (its previous
	// request is over, its reader included): the lock, two atomic
	// operations per request, is taken only when there is something to
	// clear.
	if b.cont != nil || b.contSet || b.contDropped {
		b.contMu.Lock()
		b.cont, b.contSet, b.contDropped = nil, false, false
		b.contMu.Unlock()
	}
	b.mode, b.br, b.remaining, b.cr, b.src, b.hook = mode, nil, 0, cr, nil, nil
	b.limit, b.n, b.err, b.counter, b.drain = 0, 0, nil, nil, drain
	b.shared = false
	if b.ended.Load() {
		b.ended.Store(false) // an atomic store is a barrier: only when needed
	}
}

// ResetNone makes b an empty body.
func (b *Body) ResetNone() { b.reset(bodyNone) }

// ResetFixed makes b read exactly n bytes from br.
func (b *Body) ResetFixed(br *bufio.Reader, n int64) {
	if n <= 0 {
		b.reset(bodyNone)
		return
	}
	b.reset(bodyFixed)
	b.br, b.remaining = br, n
}

// ResetChunked makes b decode a chunked body from br; trailer fields go to
// trailer (at most maxTrailerBytes of them).
func (b *Body) ResetChunked(br *bufio.Reader, trailer *Header, maxTrailerBytes int) {
	b.reset(bodyChunked)
	b.br = br
	b.cr.Reset(br, trailer, maxTrailerBytes)
}

// ResetStream makes b read from r; hook (may be nil) is told at io.EOF.
func (b *Body) ResetStream(r io.Reader, hook BodyEOFHook) {
	b.reset(bodyStream)
	b.src, b.hook = r, hook
}

// SetContinue makes the first Read send "HTTP/1.1 100 Continue" on bw (and
// flush it) before reading: the client sent Expect: 100-continue and waits
// for it (RFC 9110 §10.1.1). Nothing is sent for an empty body.
func (b *Body) SetContinue(bw *bufio.Writer) {
	if b.mode != bodyNone {
		b.contMu.Lock()
		b.cont, b.contSet = bw, true
		b.contMu.Unlock()
	}
}

// CancelContinue forgets a pending 100-continue: the final response has
// started, so an interim response may no longer be sent. A Read after
// that fails with ErrContinueDropped (the client, never asked, may not
// send the body at all); one sending the 100 right now finishes first.
func (b *Body) CancelContinue() {
	b.contMu.Lock()
	if b.cont != nil {
		b.cont, b.contDropped = nil, true
	}
	b.contMu.Unlock()
}

// ContinuePending reports whether the client waits for a 100 Continue
// that was never sent (it may not send the body at all).
func (b *Body) ContinuePending() bool {
	b.contMu.Lock()
	defer b.contMu.Unlock()
	return b.cont != nil
}

// ContinueSent records that the 100 Continue went out another way (the
// upstream's, passed on): a Read does not send one, and reads the body.
func (b *Body) ContinueSent() {
	b.contMu.Lock()
	b.cont = nil
	b.contMu.Unlock()
}

// HoldContinue and ReleaseContinue bracket an interim answer written while
// the body may be read on another goroutine: the 100 Continue a Read sends
// goes before or after it, never into it.
func (b *Body) HoldContinue()    { b.contMu.Lock() }
func (b *Body) ReleaseContinue() { b.contMu.Unlock() }

// Share tells b that it is read on another goroutine than the response's
// (a proxy streaming it upstream while the answer streams back). The
// response's goroutine then asks Ended, not Remaining or Done, until the
// reader is known to be done. Shared reports it.
func (b *Body) Share()       { b.shared = true }
func (b *Body) Shared() bool { return b.shared }

// Ended reports, from any goroutine, whether the body is over (read to its
// end or failed).
func (b *Body) Ended() bool { return b.mode == bodyNone || b.ended.Load() }

// ErrContinueDropped is a Read's error after CancelContinue dropped the
// 100 Continue the client waited for.
var ErrContinueDropped = errors.New("httpx: request body not requested: the response came first")

// SetEOFHook makes b tell h, once, when the body has been read to its end:
// at io.EOF, or when the last byte of a fixed-length body is returned (the
// HTTP/1.1 server starts watching for a client disconnect then: watch.go).
func (b *Body) SetEOFHook(h BodyEOFHook) { b.hook = h }

// SetCounter makes b add every byte it returns to *c (Ctx.BytesIn).
func (b *Body) SetCounter(c *int64) { b.counter = c }

// SetLimit implements BodyLimiter.
func (b *Body) SetLimit(n int64) {
	if n < 0 {
		n = 0
	}
	b.limit = n
}

// N returns the number of body bytes returned so far.
func (b *Body) N() int64 { return b.n }

// Done reports whether the body was read to its end (io.EOF).
func (b *Body) Done() bool { return b.err == io.EOF || b.mode == bodyNone }

// Remaining returns the bytes left of a fixed-length body, 0 when the body
// is done or empty, -1 when unknown (chunked, stream).
func (b *Body) Remaining() int64 {
	switch {
	case b.err != nil || b.mode == bodyNone:
		return 0
	case b.mode == bodyFixed:
		return b.remaining
	}
	return -1
}

// Whole reports whether the rest of a fixed-length body has arrived: it is
// in the connection's read buffer, so reading it cannot wait for the
// client. Call it from the goroutine that reads the body.
func (b *Body) Whole() bool {
	return b.err == nil && b.mode == bodyFixed && b.br != nil && int64(b.br.Buffered()) >= b.remaining
}

// Err returns the sticky error (io.EOF after a whole body), or nil.
func (b *Body) Err() error { return b.err }

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.mode == bodyNone {
		b.setErr(io.EOF)
		return 0, io.EOF
	}
	if b.contSet {
		if err := b.sendContinue(); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	over := false
	if b.limit > 0 {
		if b.mode == bodyFixed && b.n+b.remaining > b.limit {
			b.setErr(ErrBodyTooLarge)
			return 0, b.err
		}
		// Read one byte past the limit to learn whether the body is larger.
		if room := b.limit - b.n + 1; int64(len(p)) > room {
			p = p[:room]
		}
		over = true
	}
	n, err := b.read(p)
	if over && b.n+int64(n) > b.limit {
		n = int(b.limit - b.n)
		err = ErrBodyTooLarge
	}
	b.n += int64(n)
	if b.counter != nil {
		*b.counter += int64(n)
	}
	if err != nil {
		b.setErr(err)
	} else if b.mode == bodyFixed && b.remaining == 0 {
		// All of it was read: over, though the io.EOF comes only with the
		// next Read (which a reader that counts never makes).
		b.ended.Store(true)
	}
	// The hook hears of the end as soon as it is known: a reader that
	// stops after Content-Length bytes never sees the io.EOF.
	if b.hook != nil && (err == io.EOF || err == nil && b.mode == bodyFixed && b.remaining == 0) {
		h := b.hook
		b.hook = nil
		h.BodyEOF()
	}
	return n, err
}

func (b *Body) setErr(err error) {
	b.err = err
	b.ended.Store(true)
}

// sendContinue sends the pending 100 Continue, or fails when it was
// dropped (see CancelContinue).
func (b *Body) sendContinue() error {
	b.contMu.Lock()
	defer b.contMu.Unlock()
	switch {
	case b.contDropped:
		b.setErr(ErrContinueDropped)
	case b.cont != nil:
		bw := b.cont
		b.cont = nil
		bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := bw.Flush(); err != nil {
			b.setErr(errors.Join(ErrContinueFailed, err))
		}
	default:
		return nil
	}
	return b.err
}

func (b *Body) read(p []byte) (int, error) {
	switch b.mode {
	case bodyFixed:
		if b.remaining == 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := b.br.Read(p)
		b.remaining -= int64(n)
		if err == io.EOF {
			if b.remaining > 0 {
				err = io.ErrUnexpectedEOF
			} else {
				err = nil
			}
		}
		return n, err
	case bodyChunked:
		return b.cr.Read(p)
	default:
		return b.src.Read(p)
	}
}

// Drain reads and discards what is left of the body, at most max bytes and
// ignoring the limit, so the connection can carry the next request. It
// reports whether the body ended cleanly within max.
func (b *Body) Drain(max int64) bool {
	if b.err != nil {
		return b.err == io.EOF
	}
	if b.mode == bodyNone {
		return true
	}
	if b.mode == bodyFixed {
		if b.remaining > max {
			return false
		}
		_, err := b.br.Discard(int(b.remaining))
		b.remaining = 0
		b.setErr(io.EOF)
		return err == nil
	}
	if b.mode == bodyStream {
		n, err := io.CopyN(io.Discard, b.src, max+1)
		switch {
		case err == io.EOF:
			b.setErr(io.EOF)
			return true
		case err != nil:
			b.setErr(err)
		case n > max:
			b.setErr(ErrBodyTooLarge)
		}
		return false
	}
	// Chunked. ChunkedReader.Read lets its buffer escape, so the scratch
	// buffer is the Body's own, allocated on the first drain of a
	// connection and kept.
	if b.drain == nil {
		b.drain = make([]byte, 2048)
	}
	buf := b.drain
	for max > 0 {
		p := buf[:]
		if int64(len(p)) > max {
			p = p[:max]
		}
		n, err := b.cr.Read(p)
		max -= int64(n)
		if err == io.EOF {
			b.setErr(io.EOF)
			return true
		}
		if err != nil {
			b.setErr(err)
			return false
		}
	}
	// One more read to see a clean end exactly at max.
	n, err := b.cr.Read(buf[:1])
	if n == 0 && err == io.EOF {
		b.setErr(io.EOF)
		return true
	}
	return false
}
