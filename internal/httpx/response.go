package httpx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrMalformedResponse is wrapped by every error ResponseParser returns for
// a response head that breaks RFC 9112 (bad status line, bad field line,
// conflicting framing). The upstream client maps it to a protocol error:
// the client gets 502 and the connection is not reused.
var ErrMalformedResponse = errors.New("malformed response")

// DefaultMaxResponseHeadBytes bounds a response head when the caller gives
// no limit.
const DefaultMaxResponseHeadBytes = 64 << 10

// keepBufBytes is the largest scratch buffer a parser keeps between uses.
const keepBufBytes = 16 << 10

// Framing says how a response body is delimited (RFC 9112 §6.3).
type Framing uint8

const (
	// FramingNone: no body (HEAD request, 1xx, 204, 304).
	FramingNone Framing = iota
	// FramingLength: Content-Length bytes.
	FramingLength
	// FramingChunked: chunked transfer coding.
	FramingChunked
	// FramingClose: the body runs until the connection closes; the
	// connection cannot be reused.
	FramingClose
)

// ResponseHead is what a response head says about the message besides its
// fields (which go to Response.Header).
type ResponseHead struct {
	Status int
	// Minor is the HTTP/1.x minor version: 0 or 1.
	Minor int
	// ContentLength is the Content-Length value, -1 when absent.
	ContentLength int64
	// Chunked reports Transfer-Encoding: chunked.
	Chunked bool
	// Close reports that the connection must not be reused after this
	// response: "Connection: close", or HTTP/1.0 without keep-alive.
	Close bool
}

// IsInterim reports whether status is an interim response that the final
// one follows (1xx other than 101 Switching Protocols, RFC 9110 §15.2).
func IsInterim(status int) bool { return status >= 100 && status < 200 && status != 101 }

// Framing returns how the body of this response to a request with method is
// delimited, following RFC 9112 §6.3 in order: responses to HEAD, 1xx, 204
// and 304 have none; then chunked; then Content-Length; else until close.
// (CONNECT is not proxied, so its 2xx rule does not apply.)
func (h *ResponseHead) Framing(method string) Framing {
	switch {
	case method == "HEAD" || h.Status < 200 || h.Status == 204 || h.Status == 304:
		return FramingNone
	case h.Chunked:
		return FramingChunked
	case h.ContentLength >= 0:
		return FramingLength
	}
	return FramingClose
}

// BodyLength is Response.ContentLength for the framing: the length, 0 for
// no body, -1 for chunked or until close.
func (h *ResponseHead) BodyLength(method string) int64 {
	switch h.Framing(method) {
	case FramingNone:
		return 0
	case FramingLength:
		return h.ContentLength
	}
	return -1
}

// ResponseParser reads HTTP/1.x response heads. It keeps its buffers across
// heads (one per upstream connection): parsing a head allocates one string
// that all field names and values share.
type ResponseParser struct {
	head ResponseHead // the last head read (ReadHead returns it)
	buf  []byte       // field lines, without CRLF, back to back
	pos  []int32      // per field: line start, name end, value start, value end (offsets in buf)
}

// ReadHead reads one response head from br into resp: resp.Header is reset
// and filled, resp.Status set and resp.ContentLength set to the
// Content-Length field (-1 when absent; callers usually replace it with
// head.BodyLength). What the head says about framing is returned in the
// parser's own ResponseHead, valid until its next ReadHead (a pointer,
// not a copy: the copy of a struct returned in registers cost a
// store-forwarding stall per response on the proxy's path). The head may hold at most maxBytes
// (DefaultMaxResponseHeadBytes when <= 0). Parsing is strict (RFC 9112): no
// bare CR or LF, no obs-fold, no whitespace before a colon, valid field
// bytes, one HTTP/1.0 or HTTP/1.1 status line with a 3-digit status in
// 100-599, no Transfer-Encoding with Content-Length, no two different
// Content-Length values, Transfer-Encoding only "chunked" and only in
// HTTP/1.1. Such errors wrap ErrMalformedResponse. io.EOF means the stream
// ended before any byte of the head; io.ErrUnexpectedEOF, inside it.
func (p *ResponseParser) ReadHead(br *bufio.Reader, resp *Response, maxBytes int) (*ResponseHead, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxResponseHeadBytes
	}
	resp.Header.Reset()
	buf, _ := br.Peek(br.Buffered())
	if end, ok := p.parseBuffered(buf, resp, maxBytes); ok {
		br.Discard(end)
		return &p.head, nil
	}
	err := p.readLines(br, resp, maxBytes)
	return &p.head, err
}

// headState is what the fields of a head said about framing so far.
type headState struct {
	keepAlive, closeConn, teSeen bool
}

// field takes in the framing fields (Content-Length, Transfer-Encoding,
// Connection) of a head.
func (st *headState) field(head *ResponseHead, name, value []byte) error {
	switch {
	case wireEqualFold(name, "Content-Length"):
		n, err := parseRespContentLength(value)
		if err != nil {
			return err
		}
		if head.ContentLength >= 0 && head.ContentLength != n {
			return fmt.Errorf("%w: two different Content-Length values", ErrMalformedResponse)
		}
		head.ContentLength = n
	case wireEqualFold(name, "Transfer-Encoding"):
		// Only a single "chunked" coding is accepted: we cannot decode
		// other transfer codings, and forwarding them as the body would
		// corrupt it.
		if st.teSeen || !wireEqualFold(value, "chunked") {
			return fmt.Errorf("%w: unsupported Transfer-Encoding %q", ErrMalformedResponse, clip(value))
		}
		st.teSeen = true
	case wireEqualFold(name, "Connection"):
		if hasTokenBytes(value, "close") {
			st.closeConn = true
		}
		if hasTokenBytes(value, "keep-alive") {
			st.keepAlive = true
		}
	}
	return nil
}

// finish checks the framing of a head whose fields are all in.
func (st *headState) finish(head *ResponseHead) error {
	if st.teSeen {
		if head.Minor == 0 {
			// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
			return fmt.Errorf("%w: Transfer-Encoding in HTTP/1.0 response", ErrMalformedResponse)
		}
		if head.ContentLength >= 0 {
			// RFC 9112 §6.3 lets a recipient go with Transfer-Encoding, but
			// the combination is the classic smuggling vector: refuse it.
			return fmt.Errorf("%w: both Transfer-Encoding and Content-Length", ErrMalformedResponse)
		}
		head.Chunked = true
	}
	head.Close = st.closeConn || (head.Minor == 0 && !st.keepAlive)
	return nil
}

// parseBuffered is ReadHead for a head that is whole in buf (br's
// buffered bytes, the common case): no copy per line, one string for the
// whole head. It returns the head's length, or false, with resp
// untouched, for anything else (incomplete, malformed, over maxBytes):
// readLines then parses the head from the start and reports what is
// wrong.
func (p *ResponseParser) parseBuffered(buf []byte, resp *Response, maxBytes int) (int, bool) {
	head := &p.head
	*head = ResponseHead{ContentLength: -1}
	nl := bytes.IndexByte(buf, '\n')
	if nl < 1 || buf[nl-1] != '\r' || nl+1 > maxBytes || parseStatusLine(buf[:nl-1], head) != nil {
		return 0, false
	}
	p.pos = p.pos[:0]
	var st headState
	pos := nl + 1
	for {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			return 0, false // not all here
		}
		eol := pos + i
		if eol == pos || buf[eol-1] != '\r' || eol+1 > maxBytes {
			return 0, false
		}
		line := buf[pos : eol-1]
		pos = eol + 1
		if len(line) == 0 {
			break
		}
		name, value, err := wireParseFieldLine(line)
		if err != nil || st.field(head, name, value) != nil {
			return 0, false
		}
		// name and value are sub-slices of buf: record their offsets.
		nameAt, valueAt := cap(buf)-cap(name), cap(buf)-cap(value)
		p.pos = append(p.pos, int32(nameAt), int32(nameAt+len(name)), int32(valueAt), int32(valueAt+len(value)))
	}
	if st.finish(head) != nil {
		return 0, false
	}
	if len(p.pos) > 0 {
		s := string(buf[:pos])
		for i := 0; i < len(p.pos); i += 4 {
			resp.Header.Add(s[p.pos[i]:p.pos[i+1]], s[p.pos[i+2]:p.pos[i+3]])
		}
	}
	resp.Status = head.Status
	resp.ContentLength = head.ContentLength
	return pos, true
}

// readLines is ReadHead line by line, for a head that is not whole in
// br's buffer (or is malformed: it reports what is wrong).
func (p *ResponseParser) readLines(br *bufio.Reader, resp *Response, maxBytes int) error {
	head := &p.head
	*head = ResponseHead{ContentLength: -1}
	p.buf = p.buf[:0]
	p.pos = p.pos[:0]

	line, err := readHeadLine(br, &p.buf, maxBytes)
	if err != nil {
		if err == io.ErrUnexpectedEOF && len(line) == 0 && len(p.buf) == 0 {
			err = io.EOF
		}
		return err
	}
	total := len(line) + 2
	if err := parseStatusLine(line, head); err != nil {
		return err
	}
	p.buf = p.buf[:0]

	var st headState
	for {
		start := len(p.buf)
		line, err := readHeadLine(br, &p.buf, maxBytes-total)
		if err != nil {
			return err
		}
		total += len(line) + 2
		if len(line) == 0 {
			break
		}
		// readHeadLine may return a slice of br's buffer: copy the line to
		// p.buf unless it is already there.
		if len(p.buf) == start {
			p.buf = append(p.buf, line...)
		}
		line = p.buf[start:]
		name, value, err := wireParseFieldLine(line)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformedResponse, err)
		}
		// name and value are sub-slices of line: record their offsets.
		valStart := start + cap(line) - cap(value)
		p.pos = append(p.pos, int32(start), int32(start+len(name)), int32(valStart), int32(valStart+len(value)))
		if err := st.field(head, name, value); err != nil {
			return err
		}
	}
	if err := st.finish(head); err != nil {
		return err
	}

	if len(p.pos) > 0 {
		s := string(p.buf)
		for i := 0; i < len(p.pos); i += 4 {
			resp.Header.Add(s[p.pos[i]:p.pos[i+1]], s[p.pos[i+2]:p.pos[i+3]])
		}
	}
	if cap(p.buf) > keepBufBytes {
		// One huge head must not pin its buffer to a pooled connection.
		p.buf, p.pos = nil, nil
	}
	resp.Status = head.Status
	resp.ContentLength = head.ContentLength
	return nil
}

// readHeadLine reads one CRLF-terminated line of at most limit bytes (CRLF
// included) and returns it without CRLF. A line longer than br's buffer is
// assembled in *buf (and returned as a slice of it); otherwise the result is
// a slice of br's buffer, valid until the next read.
func readHeadLine(br *bufio.Reader, buf *[]byte, limit int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		start := len(*buf)
		*buf = append(*buf, line...)
		for err == bufio.ErrBufferFull && len(*buf)-start <= limit {
			line, err = br.ReadSlice('\n')
			*buf = append(*buf, line...)
		}
		line = (*buf)[start:]
		if len(line) > limit {
			return nil, fmt.Errorf("%w: head larger than allowed", ErrMalformedResponse)
		}
		if err != nil {
			return nil, unexpected(err)
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return nil, fmt.Errorf("%w: bare LF line end", ErrMalformedResponse)
		}
		*buf = (*buf)[:len(*buf)-2]
		return line[:len(line)-2], nil
	}
	if len(line) > limit {
		return nil, fmt.Errorf("%w: head larger than allowed", ErrMalformedResponse)
	}
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return line, unexpected(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: bare LF line end", ErrMalformedResponse)
	}
	return line[:len(line)-2], nil
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason]" (RFC 9112 §4). A
// missing SP after the code is tolerated, as most clients do.
func parseStatusLine(line []byte, head *ResponseHead) error {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return fmt.Errorf("%w: bad status line %q", ErrMalformedResponse, clip(line))
	}
	head.Minor = int(line[7] - '0')
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: bad status code %q", ErrMalformedResponse, clip(line))
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 || status > 599 {
		return fmt.Errorf("%w: bad status code %d", ErrMalformedResponse, status)
	}
	if len(line) > 12 && (line[12] != ' ' || !wireValidFieldValue(line[13:])) {
		return fmt.Errorf("%w: bad reason phrase %q", ErrMalformedResponse, clip(line))
	}
	head.Status = status
	return nil
}

// parseRespContentLength parses a Content-Length value: 1*DIGIT, or a list of
// identical such values ("42, 42", RFC 9110 §8.6), overflow checked.
func parseRespContentLength(v []byte) (int64, error) {
	n := int64(-1)
	for len(v) > 0 {
		var part []byte
		if i := indexByteBytes(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
			if len(v) == 0 {
				return 0, fmt.Errorf("%w: invalid Content-Length", ErrMalformedResponse)
			}
		} else {
			part, v = v, nil
		}
		part = trimOWSBytes(part)
		if len(part) == 0 {
			return 0, fmt.Errorf("%w: invalid Content-Length", ErrMalformedResponse)
		}
		var x int64
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%w: invalid Content-Length %q", ErrMalformedResponse, clip(part))
			}
			if x > (1<<63-1-9)/10 {
				return 0, fmt.Errorf("%w: Content-Length overflows", ErrMalformedResponse)
			}
			x = x*10 + int64(c-'0')
		}
		if n >= 0 && n != x {
			return 0, fmt.Errorf("%w: two different Content-Length values", ErrMalformedResponse)
		}
		n = x
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: empty Content-Length", ErrMalformedResponse)
	}
	return n, nil
}

func indexByteBytes(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func trimOWSBytes(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hasTokenBytes is HasToken for a []byte value.
func hasTokenBytes(v []byte, token string) bool {
	for len(v) > 0 {
		var part []byte
		if i := indexByteBytes(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		if wireEqualFold(trimOWSBytes(part), token) {
			return true
		}
	}
	return false
}

// wireEqualFold is EqualFold for a string or []byte a, without converting.
func wireEqualFold[T string | []byte](a T, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
