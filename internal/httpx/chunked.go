package httpx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrMalformedChunked is wrapped by every error a ChunkedReader returns for
// input that breaks RFC 9112 §7.1 (a truncated stream gives
// io.ErrUnexpectedEOF instead). The proxy never forwards a body that ended
// with it as a complete message.
var ErrMalformedChunked = errors.New("malformed chunked encoding")

// ErrInvalidTrailer is returned by ChunkedWriter.Close when a trailer field
// has an invalid name or a value with CR, LF or NUL (response splitting).
var ErrInvalidTrailer = errors.New("invalid trailer field")

const (
	// MaxChunkLineBytes bounds a chunk-size line (size and extensions,
	// without CRLF). RFC 9112 §7.1.1 lets a recipient limit extension length;
	// 4 KB is more than any legitimate extension and stops a peer from
	// making us scan an endless line.
	MaxChunkLineBytes = 4096
	// DefaultMaxTrailerBytes is the trailer section limit used when a
	// ChunkedReader is given maxTrailerBytes <= 0.
	DefaultMaxTrailerBytes = 16 << 10
)

type chunkState uint8

const (
	chunkSize    chunkState = iota // next: a chunk-size line
	chunkData                      // inside chunk data, n bytes left
	chunkCRLF                      // next: the CRLF after chunk data
	chunkTrailer                   // last chunk read, trailer section next
	chunkDone                      // last chunk and trailers read: io.EOF
	chunkErr                       // err is sticky
)

// ChunkedReader decodes a chunked body (RFC 9112 §7.1) from a bufio.Reader,
// strictly: hexadecimal sizes only (no sign, no "0x", overflow checked),
// well-formed and bounded chunk extensions (ignored), CRLF line ends only,
// CRLF after each chunk's data, trailer fields under the same rules as header
// fields. Read returns io.EOF only once the last chunk and the trailer
// section were read whole, so a caller that saw io.EOF may reuse the
// connection. A ChunkedReader is reusable through Reset and allocates nothing
// except one string per trailer section.
type ChunkedReader struct {
	br         *bufio.Reader
	trailer    *Header
	maxTrailer int
	n          int64 // bytes left in the current chunk
	state      chunkState
	err        error

	line []byte  // long lines that span bufio buffer refills
	tbuf []byte  // trailer names and values, converted to one string
	tpos []int32 // per trailer field: name end, value end (offsets in tbuf)
}

// NewChunkedReader returns a reader of the chunked body that follows in br.
// Trailer fields are appended to trailer, or validated and discarded when
// trailer is nil; the trailer section may hold at most maxTrailerBytes
// (DefaultMaxTrailerBytes when <= 0).
func NewChunkedReader(br *bufio.Reader, trailer *Header, maxTrailerBytes int) *ChunkedReader {
	r := &ChunkedReader{}
	r.Reset(br, trailer, maxTrailerBytes)
	return r
}

// Reset makes r read a new chunked body, keeping its buffers.
func (r *ChunkedReader) Reset(br *bufio.Reader, trailer *Header, maxTrailerBytes int) {
	if maxTrailerBytes <= 0 {
		maxTrailerBytes = DefaultMaxTrailerBytes
	}
	r.br = br
	r.trailer = trailer
	r.maxTrailer = maxTrailerBytes
	r.n = 0
	r.state = chunkSize
	r.err = nil
	r.line = r.line[:0]
	r.tbuf = r.tbuf[:0]
	r.tpos = r.tpos[:0]
}

// Done reports whether the body was read whole (Read returned io.EOF).
func (r *ChunkedReader) Done() bool { return r.state == chunkDone }

// Read reads de-chunked body bytes.
func (r *ChunkedReader) Read(p []byte) (int, error) {
	if r.state != chunkData {
		r.advance(true)
		if r.state == chunkErr || r.state == chunkDone {
			return 0, r.err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.br.Read(p)
	r.n -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.fail(err)
		return n, err
	}
	if r.n == 0 {
		r.state = chunkCRLF
		// Consume what follows if it is already buffered, so the caller sees
		// io.EOF together with the last bytes and can reuse the connection
		// without another Read.
		r.advance(false)
		if r.state == chunkErr || r.state == chunkDone {
			return n, r.err
		}
	}
	return n, nil
}

func (r *ChunkedReader) fail(err error) {
	r.state = chunkErr
	r.err = err
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedChunked}, args...)...)
}

// advance processes framing until chunk data is next or the body ended.
// Without block it stops before a step whose bytes are not yet buffered.
func (r *ChunkedReader) advance(block bool) {
	for {
		switch r.state {
		case chunkCRLF:
			if !block && r.br.Buffered() < 2 {
				return
			}
			b, err := r.br.Peek(2)
			if err != nil {
				r.fail(unexpected(err))
				return
			}
			if b[0] != '\r' || b[1] != '\n' {
				r.fail(malformed("missing CRLF after chunk data"))
				return
			}
			r.br.Discard(2)
			r.state = chunkSize
		case chunkSize:
			if !block && !r.lineBuffered() {
				return
			}
			line, err := r.readLine(MaxChunkLineBytes)
			if err != nil {
				r.fail(err)
				return
			}
			size, err := parseChunkLine(line)
			if err != nil {
				r.fail(err)
				return
			}
			if size > 0 {
				r.n = size
				r.state = chunkData
				return
			}
			// Last chunk: the trailer section follows. Without block, only
			// go on when it is the common empty section already buffered.
			if !block {
				if b, _ := r.br.Peek(2); len(b) < 2 || b[0] != '\r' || b[1] != '\n' {
					r.state = chunkTrailer
					return
				}
			}
			r.readTrailers()
			return
		case chunkTrailer:
			if !block {
				return
			}
			r.readTrailers()
			return
		default: // chunkData, chunkDone, chunkErr
			return
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// lineBuffered reports whether a whole line is in br's buffer.
func (r *ChunkedReader) lineBuffered() bool {
	b, _ := r.br.Peek(r.br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// readLine reads one CRLF-terminated line of at most limit bytes (CRLF
// excluded) and returns it without CRLF. The result is valid until the next
// read from br. A bare LF ending is an error; a bare CR inside the line is
// left for the caller's character checks to reject.
func (r *ChunkedReader) readLine(limit int) ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.line = append(r.line[:0], line...)
		for err == bufio.ErrBufferFull && len(r.line) <= limit+1 {
			line, err = r.br.ReadSlice('\n')
			r.line = append(r.line, line...)
		}
		line = r.line
	}
	if len(line) > limit+2 {
		return nil, malformed("line longer than %d bytes", limit)
	}
	if err != nil {
		return nil, unexpected(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, malformed("bare LF line end")
	}
	return line[:len(line)-2], nil
}

// parseChunkLine parses chunk-size [ chunk-ext ] (RFC 9112 §7.1, §7.1.1):
//
//	chunk-size = 1*HEXDIG
//	chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//	chunk-ext-val = token / quoted-string
func parseChunkLine(line []byte) (int64, error) {
	var size int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if size > (1<<63-1)>>4 {
			return 0, malformed("chunk size overflows")
		}
		size = size<<4 | int64(d)
	}
	if i == 0 {
		return 0, malformed("invalid chunk size %q", clip(line))
	}
	ext := line[i:]
	for len(ext) > 0 {
		ext = skipWS(ext)
		if len(ext) == 0 || ext[0] != ';' {
			return 0, malformed("invalid chunk extension %q", clip(line))
		}
		ext = skipWS(ext[1:])
		n := tokenLen(ext)
		if n == 0 {
			return 0, malformed("invalid chunk extension name %q", clip(line))
		}
		ext = ext[n:]
		rest := skipWS(ext)
		if len(rest) == 0 || rest[0] != '=' {
			// No value: what follows must be another extension.
			if len(rest) > 0 && rest[0] != ';' {
				return 0, malformed("invalid chunk extension %q", clip(line))
			}
			ext = rest
			continue
		}
		ext = skipWS(rest[1:])
		if len(ext) > 0 && ext[0] == '"' {
			n = quotedLen(ext)
		} else {
			n = tokenLen(ext)
		}
		if n == 0 {
			return 0, malformed("invalid chunk extension value %q", clip(line))
		}
		ext = ext[n:]
		if len(ext) > 0 && ext[0] != ';' && ext[0] != ' ' && ext[0] != '\t' {
			return 0, malformed("invalid chunk extension %q", clip(line))
		}
	}
	return size, nil
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

func skipWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// tokenLen returns the length of the token (RFC 9110 §5.6.2) b starts with.
func tokenLen(b []byte) int {
	i := 0
	for i < len(b) && wireIsToken(b[i]) {
		i++
	}
	return i
}

// quotedLen returns the length of the quoted-string (RFC 9110 §5.6.4) b
// starts with, or 0 when it is not one.
func quotedLen(b []byte) int {
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i == len(b) || !wireIsQuotedPairByte(b[i]) {
				return 0
			}
		case c == '\t' || c == ' ' || c == 0x21 || (0x23 <= c && c <= 0x5B) || (0x5D <= c && c <= 0x7E) || c >= 0x80:
		default:
			return 0
		}
	}
	return 0
}

func wireIsQuotedPairByte(c byte) bool {
	return c == '\t' || c == ' ' || (0x21 <= c && c <= 0x7E) || c >= 0x80
}

// readTrailers reads the trailer section (RFC 9112 §7.1.2) up to the empty
// line, validating each field line like a header field, and appends the
// fields to r.trailer with one string allocation for the section.
func (r *ChunkedReader) readTrailers() {
	total := 0
	r.tbuf = r.tbuf[:0]
	r.tpos = r.tpos[:0]
	for {
		line, err := r.readLine(r.maxTrailer)
		if err != nil {
			r.fail(err)
			return
		}
		if len(line) == 0 {
			break
		}
		total += len(line) + 2
		if total > r.maxTrailer {
			r.fail(malformed("trailer section larger than %d bytes", r.maxTrailer))
			return
		}
		name, value, err := wireParseFieldLine(line)
		if err != nil {
			r.fail(fmt.Errorf("%w: trailer: %w", ErrMalformedChunked, err))
			return
		}
		if r.trailer != nil {
			r.tbuf = append(r.tbuf, name...)
			r.tpos = append(r.tpos, int32(len(r.tbuf)))
			r.tbuf = append(r.tbuf, value...)
			r.tpos = append(r.tpos, int32(len(r.tbuf)))
		}
	}
	if r.trailer != nil && len(r.tpos) > 0 {
		s := string(r.tbuf)
		start := int32(0)
		for i := 0; i < len(r.tpos); i += 2 {
			ne, ve := r.tpos[i], r.tpos[i+1]
			r.trailer.Add(s[start:ne], s[ne:ve])
			start = ve
		}
	}
	r.state = chunkDone
	r.err = io.EOF
}

// errFieldLine describes an invalid field line (header or trailer).
var errFieldLine = errors.New("invalid field line")

// wireParseFieldLine splits a field line (RFC 9112 §5) without its CRLF
// into name and value, strictly: the name is a non-empty token directly
// followed by ':' (no whitespace before the colon, RFC 9112 §5.1), the value
// has optional whitespace around it removed and may hold only VCHAR,
// obs-text, SP and HTAB (no CR, LF or NUL). A line starting with whitespace
// (obs-fold, RFC 9112 §5.2) is rejected.
func wireParseFieldLine(line []byte) (name, value []byte, err error) {
	colon := tokenLen(line)
	if colon == 0 || colon == len(line) || line[colon] != ':' {
		return nil, nil, fmt.Errorf("%w %q", errFieldLine, clip(line))
	}
	v := line[colon+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	if !wireValidFieldValue(v) {
		return nil, nil, fmt.Errorf("%w: bad value for %q", errFieldLine, line[:colon])
	}
	return line[:colon], v, nil
}

// wireValidFieldValue reports whether v holds only field-value bytes:
// VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5).
func wireValidFieldValue[T string | []byte](v T) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 && c != '\t' || c == 0x7F {
			return false
		}
	}
	return true
}

// wireValidToken reports whether s is a non-empty token.
func wireValidToken[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !wireIsToken(s[i]) {
			return false
		}
	}
	return true
}

// wireIsToken reports whether c is a tchar (RFC 9110 §5.6.2).
func wireIsToken(c byte) bool { return wireTokenTab[c] }

var wireTokenTab = [256]bool{
	'!': true, '#': true, '$': true, '%': true, '&': true, '\'': true, '*': true,
	'+': true, '-': true, '.': true, '^': true, '_': true, '`': true, '|': true, '~': true,
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true, 'g': true, 'h': true, 'i': true,
	'j': true, 'k': true, 'l': true, 'm': true, 'n': true, 'o': true, 'p': true, 'q': true, 'r': true,
	's': true, 't': true, 'u': true, 'v': true, 'w': true, 'x': true, 'y': true, 'z': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true, 'G': true, 'H': true, 'I': true,
	'J': true, 'K': true, 'L': true, 'M': true, 'N': true, 'O': true, 'P': true, 'Q': true, 'R': true,
	'S': true, 'T': true, 'U': true, 'V': true, 'W': true, 'X': true, 'Y': true, 'Z': true,
}

// ChunkedWriter encodes a body with chunked transfer coding into a
// bufio.Writer: one chunk per non-empty Write, then Close writes the last
// chunk and the trailers. It does not flush; the caller decides when bytes
// go to the wire. Reusable through Reset; it allocates nothing.
type ChunkedWriter struct {
	bw     *bufio.Writer
	closed bool
}

// NewChunkedWriter returns a writer that encodes into bw.
func NewChunkedWriter(bw *bufio.Writer) *ChunkedWriter {
	return &ChunkedWriter{bw: bw}
}

// Reset makes w encode a new body into bw.
func (w *ChunkedWriter) Reset(bw *bufio.Writer) {
	w.bw = bw
	w.closed = false
}

var errChunkedClosed = errors.New("httpx: write to closed ChunkedWriter")

// Write writes p as one chunk. An empty p writes nothing: a zero-size
// chunk would end the body.
func (w *ChunkedWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errChunkedClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	b := w.bw.AvailableBuffer()
	b = strconv.AppendUint(b, uint64(len(p)), 16)
	b = append(b, '\r', '\n')
	if _, err := w.bw.Write(b); err != nil {
		return 0, err
	}
	n, err := w.bw.Write(p)
	if err != nil {
		return n, err
	}
	_, err = w.bw.WriteString("\r\n")
	return n, err
}

// Close writes the last chunk, the trailer fields (when trailer is non-nil)
// and the final CRLF. Trailer fields with an invalid name or value are an
// error (nothing is written then).
func (w *ChunkedWriter) Close(trailer *Header) error {
	if w.closed {
		return errChunkedClosed
	}
	if trailer != nil {
		for _, f := range trailer.fields {
			if !wireValidToken(f.Name) || !wireValidFieldValue(f.Value) {
				return fmt.Errorf("%w: %q", ErrInvalidTrailer, f.Name)
			}
		}
	}
	w.closed = true
	w.bw.WriteString("0\r\n")
	if trailer != nil {
		for _, f := range trailer.fields {
			w.bw.WriteString(f.Name)
			w.bw.WriteString(": ")
			w.bw.WriteString(f.Value)
			w.bw.WriteString("\r\n")
		}
	}
	_, err := w.bw.WriteString("\r\n")
	return err
}
