package httpx

import (
	"bufio"
	"errors"
	"io"
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
}

// ErrContinueFailed wraps a failure to send "100 Continue".
var ErrContinueFailed = errors.New("httpx: sending 100 Continue failed")

func (b *Body) reset(mode bodyMode) {
	*b = Body{mode: mode, cr: b.cr, drain: b.drain}
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
		b.cont = bw
	}
}

// CancelContinue forgets a pending 100-continue: the final response has
// started, so an interim response may no longer be sent.
func (b *Body) CancelContinue() { b.cont = nil }

// ContinuePending reports whether the client waits for a 100 Continue
// that was never sent (it may not send the body at all).
func (b *Body) ContinuePending() bool { return b.cont != nil }

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

// Err returns the sticky error (io.EOF after a whole body), or nil.
func (b *Body) Err() error { return b.err }

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.mode == bodyNone {
		b.err = io.EOF
		return 0, io.EOF
	}
	if b.cont != nil {
		bw := b.cont
		b.cont = nil
		bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := bw.Flush(); err != nil {
			b.err = errors.Join(ErrContinueFailed, err)
			return 0, b.err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	over := false
	if b.limit > 0 {
		if b.mode == bodyFixed && b.n+b.remaining > b.limit {
			b.err = ErrBodyTooLarge
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
		b.err = err
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
		b.err = io.EOF
		return err == nil
	}
	if b.mode == bodyStream {
		n, err := io.CopyN(io.Discard, b.src, max+1)
		switch {
		case err == io.EOF:
			b.err = io.EOF
			return true
		case err != nil:
			b.err = err
		case n > max:
			b.err = ErrBodyTooLarge
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
			b.err = io.EOF
			return true
		}
		if err != nil {
			b.err = err
			return false
		}
	}
	// One more read to see a clean end exactly at max.
	n, err := b.cr.Read(buf[:1])
	if n == 0 && err == io.EOF {
		b.err = io.EOF
		return true
	}
	return false
}
