package httpx

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
)

// ProtocolError is a request the server must refuse before any handler runs.
// Status is the answer (400, 431, 501, 505); Msg is a short reason that is
// safe to show the client (it never echoes client bytes). The server answers
// with the contract's JSON error body and closes the connection: after a
// framing error the rest of the stream cannot be trusted (RFC 9112 §11.2).
type ProtocolError struct {
	Status int
	Msg    string
}

func (e *ProtocolError) Error() string {
	return "httpx: " + strconv.Itoa(e.Status) + " " + e.Msg
}

// The errors are immutable values so that refusing a request allocates
// nothing; callers compare with errors.As, never by identity.
var (
	errHeadTooLarge   = &ProtocolError{431, "request header fields too large"}
	errBareLF         = &ProtocolError{400, "bare LF in request head"}
	errBareCR         = &ProtocolError{400, "bare CR in request head"}
	errRequestLine    = &ProtocolError{400, "malformed request line"}
	errMethod         = &ProtocolError{400, "invalid method"}
	errTarget         = &ProtocolError{400, "invalid request target"}
	errVersion        = &ProtocolError{400, "malformed HTTP version"}
	errVersionUnsupp  = &ProtocolError{505, "HTTP version not supported"}
	errObsFold        = &ProtocolError{400, "obsolete line folding in header"}
	errFieldNoColon   = &ProtocolError{400, "header field without colon"}
	errFieldNameWS    = &ProtocolError{400, "whitespace between header field name and colon"}
	errFieldName      = &ProtocolError{400, "invalid header field name"}
	errFieldValue     = &ProtocolError{400, "invalid header field value"}
	errNoHost         = &ProtocolError{400, "missing Host header"}
	errManyHosts      = &ProtocolError{400, "more than one Host header"}
	errBadHost        = &ProtocolError{400, "invalid Host header"}
	errBadCL          = &ProtocolError{400, "invalid Content-Length"}
	errConflictCL     = &ProtocolError{400, "conflicting Content-Length values"}
	errCLAndTE        = &ProtocolError{400, "both Content-Length and Transfer-Encoding"}
	errTENotChunked   = &ProtocolError{400, "Transfer-Encoding does not end in chunked"}
	errTEHTTP10       = &ProtocolError{400, "Transfer-Encoding in an HTTP/1.0 request"}
	errTEUnsupported  = &ProtocolError{501, "unsupported transfer coding"}
	errConnect        = &ProtocolError{501, "CONNECT is not supported"}
	errAsteriskMethod = &ProtocolError{400, "asterisk-form is only allowed for OPTIONS"}
	errBadPath        = &ProtocolError{400, "invalid request path"}
)

// RequestHead is what ReadRequest learned about the request's framing and
// its connection, beyond what Request holds.
type RequestHead struct {
	// Size is the number of head bytes read (request line, fields, final
	// CRLF, and any empty lines skipped before the request line).
	Size int
	// Chunked reports a chunked request body (Request.ContentLength is -1).
	Chunked bool
	// KeepAlive reports whether the client allows another request on the
	// connection: HTTP/1.1 unless "Connection: close", HTTP/1.0 only with
	// "Connection: keep-alive" (RFC 9112 §9.3).
	KeepAlive bool
	// ExpectContinue reports "Expect: 100-continue" on an HTTP/1.1 request
	// (RFC 9110 §10.1.1): the client waits for a 100 before sending the body.
	ExpectContinue bool
	// Upgrade reports a Connection: upgrade request with an Upgrade field.
	Upgrade bool
}

// maxLeadingCRLF bounds the empty lines ignored before a request line
// (RFC 9112 §2.2 asks servers to ignore "at least one").
const maxLeadingCRLF = 4

// ReadRequest reads one HTTP/1.x request head from br and parses it into req
// (which the caller has Reset). The head is copied into one string and every
// Request string, including the header fields, is a substring of it: one
// allocation per request when the head fits in br's buffer (a head larger
// than the buffer costs one more, a temporary accumulation buffer). req's
// header field slice is reused.
//
// The parse is strict (RFC 9112): every rule a server MUST enforce gives a
// *ProtocolError (400, 431 for a head over maxHeaderBytes, 501, 505) and the
// request must not be processed. A connection closed before the first byte
// gives io.EOF; one closed inside the head gives io.ErrUnexpectedEOF;
// read errors (timeouts) are returned as they are.
//
// The body is not read: the caller sets up Request.Body from the returned
// RequestHead (see Body).
func ReadRequest(br *bufio.Reader, req *Request, maxHeaderBytes int) (RequestHead, error) {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = 64 << 10
	}
	skipped, err := skipLeadingCRLF(br)
	if err != nil {
		return RequestHead{}, err
	}
	head, err := readHead(br, maxHeaderBytes)
	if err != nil {
		return RequestHead{}, err
	}
	rh, err := parseHead(head, req)
	rh.Size = len(head) + skipped
	return rh, err
}

// skipLeadingCRLF discards up to maxLeadingCRLF empty lines before the
// request line (RFC 9112 §2.2), as clients may send a CRLF after a POST body.
func skipLeadingCRLF(br *bufio.Reader) (int, error) {
	n := 0
	for range maxLeadingCRLF {
		b, err := br.Peek(1)
		if err != nil {
			if n > 0 && err == io.EOF {
				return n, io.EOF
			}
			return n, err
		}
		if b[0] != '\r' {
			if b[0] == '\n' {
				return n, errBareLF
			}
			return n, nil
		}
		b, err = br.Peek(2)
		if err != nil {
			return n, eofUnexpected(err)
		}
		if b[1] != '\n' {
			return n, errBareCR
		}
		br.Discard(2)
		n += 2
	}
	return n, nil
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// scanHead advances *scanned over complete lines of buf. It returns the
// length of the head (through the empty line) once found, or 0. Every line
// must end in CRLF: a LF without CR before it is refused at once (RFC 9112
// §2.2 lets a server accept bare LF; we do not, so that a downstream parser
// that treats LF differently can never disagree with us).
func scanHead(buf []byte, scanned *int) (int, error) {
	for {
		start := *scanned
		i := bytes.IndexByte(buf[start:], '\n')
		if i < 0 {
			return 0, nil
		}
		end := start + i
		if end == 0 || buf[end-1] != '\r' {
			return 0, errBareLF
		}
		*scanned = end + 1
		if end-1 == start && start > 0 {
			return end + 1, nil
		}
		if end-1 == start {
			// An empty first line (after the skipped ones): the request
			// line is missing.
			return 0, errRequestLine
		}
	}
}

// readHead returns the head bytes (through the final CRLF) as one string and
// consumes them from br.
func readHead(br *bufio.Reader, max int) (string, error) {
	scanned := 0
	for {
		n := br.Buffered()
		buf, _ := br.Peek(n)
		end, err := scanHead(buf, &scanned)
		if err != nil {
			return "", err
		}
		if end > 0 {
			if end > max {
				return "", errHeadTooLarge
			}
			head := string(buf[:end])
			br.Discard(end)
			return head, nil
		}
		if n >= max {
			return "", errHeadTooLarge
		}
		if n == br.Size() {
			return readHeadSlow(br, max)
		}
		if _, err := br.Peek(n + 1); err != nil {
			if n == 0 && err == io.EOF {
				return "", io.EOF
			}
			return "", eofUnexpected(err)
		}
	}
}

// readHeadSlow handles a head larger than br's buffer by accumulating it.
func readHeadSlow(br *bufio.Reader, max int) (string, error) {
	acc := make([]byte, 0, min(max, 4*br.Size()))
	scanned := 0
	for {
		if _, err := br.Peek(1); err != nil {
			return "", eofUnexpected(err)
		}
		chunk, _ := br.Peek(br.Buffered())
		base := len(acc)
		acc = append(acc, chunk...)
		end, err := scanHead(acc, &scanned)
		if err != nil {
			return "", err
		}
		if end > 0 {
			if end > max {
				return "", errHeadTooLarge
			}
			br.Discard(end - base)
			return string(acc[:end]), nil
		}
		br.Discard(len(chunk))
		if len(acc) >= max {
			return "", errHeadTooLarge
		}
	}
}

// parseHead parses a complete head (ending in CRLF CRLF, every line ending
// in CRLF, as readHead guarantees).
func parseHead(head string, req *Request) (RequestHead, error) {
	var rh RequestHead
	eol := indexCRLF(head)
	line := head[:eol]
	rest := head[eol+2:]

	// Request line: method SP request-target SP HTTP-version (RFC 9112 §3).
	// Exactly one SP between parts: the lenient "whitespace-delimited" parse
	// §3 allows is what request smuggling feeds on.
	sp1 := indexByte(line, ' ')
	if sp1 < 0 {
		return rh, errRequestLine
	}
	method := line[:sp1]
	line = line[sp1+1:]
	sp2 := indexByte(line, ' ')
	if sp2 < 0 {
		return rh, errRequestLine
	}
	target, version := line[:sp2], line[sp2+1:]
	if !wireValidToken(method) {
		return rh, errMethod
	}
	if len(target) == 0 || !validTarget(target) {
		return rh, errTarget
	}
	http11, err := parseVersion(version)
	if err != nil {
		return rh, err
	}
	req.Method = method
	req.Proto = version
	if method == "CONNECT" {
		// Tunnels are not a reverse proxy's business (RFC 9110 §9.3.6).
		return rh, errConnect
	}

	var (
		hostCount           int
		host                string
		clSeen, clDup       bool
		cl                  int64
		clFirst             = -1
		teSeen, teAny       bool
		teLastChunked       bool
		teChunkedN, teOther int
		connClose, connKA   bool
		connUpgrade         bool
		upgradeField        bool
		expect100           bool
	)
	h := &req.Header
	for {
		eol = indexCRLF(rest)
		line, rest = rest[:eol], rest[eol+2:]
		if len(line) == 0 {
			break
		}
		// obs-fold (RFC 9112 §5.2): a server MUST reject it or replace it
		// with SP; we reject.
		if line[0] == ' ' || line[0] == '\t' {
			return rh, errObsFold
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return rh, errFieldNoColon
		}
		name := line[:colon]
		if len(name) == 0 {
			return rh, errFieldName
		}
		// RFC 9112 §5.1: no whitespace between field name and colon; a
		// server MUST reject such a request with 400.
		if c := name[len(name)-1]; c == ' ' || c == '\t' {
			return rh, errFieldNameWS
		}
		if !wireValidToken(name) {
			return rh, errFieldName
		}
		value := trimOWS(line[colon+1:])
		// RFC 9110 §5.5: CR, LF and NUL MUST be rejected; other CTLs are
		// outside the field-value grammar.
		if !validFieldValue(value) {
			return rh, errFieldValue
		}
		switch len(name) {
		case 4:
			if EqualFold(name, "Host") {
				hostCount++
				host = value
			}
		case 6:
			if EqualFold(name, "Expect") && HasToken(value, "100-continue") {
				expect100 = true
			}
		case 7:
			if EqualFold(name, "Upgrade") {
				upgradeField = true
			}
		case 10:
			if EqualFold(name, "Connection") {
				connClose = connClose || HasToken(value, "close")
				connKA = connKA || HasToken(value, "keep-alive")
				connUpgrade = connUpgrade || HasToken(value, "upgrade")
			}
		case 14:
			if EqualFold(name, "Content-Length") {
				// RFC 9112 §6.3 item 5 / RFC 9110 §8.6: a list of identical
				// values may be taken as one; anything else is invalid.
				v, n, err := parseRequestContentLength(value)
				if err != nil {
					return rh, err
				}
				if clSeen {
					if v != cl {
						return rh, errConflictCL
					}
					clDup = true
				} else {
					clFirst = len(h.fields)
				}
				if n > 1 {
					clDup = true
				}
				clSeen, cl = true, v
			}
		case 17:
			if EqualFold(name, "Transfer-Encoding") {
				teSeen = true
				for v := value; len(v) > 0; {
					var part string
					if i := indexByte(v, ','); i >= 0 {
						part, v = v[:i], v[i+1:]
					} else {
						part, v = v, ""
					}
					part = trimOWS(part)
					if part == "" {
						continue // RFC 9110 §5.6.1: empty list elements are ignored
					}
					teAny = true
					teLastChunked = EqualFold(part, "chunked")
					if teLastChunked {
						teChunkedN++
					} else {
						teOther++
					}
				}
			}
		}
		h.fields = append(h.fields, Field{Name: name, Value: value})
	}

	// Host (RFC 9112 §3.2): required in HTTP/1.1, at most one, and valid.
	if hostCount > 1 {
		return rh, errManyHosts
	}
	if hostCount == 0 && http11 {
		return rh, errNoHost
	}
	if hostCount == 1 && !validHost(host) {
		return rh, errBadHost
	}
	req.Host = host

	// Framing (RFC 9112 §6).
	switch {
	case teSeen:
		if clSeen {
			// §6.1: "A server MAY reject a request that contains both
			// Content-Length and Transfer-Encoding": the classic smuggling
			// vector, and the contract says 400.
			return rh, errCLAndTE
		}
		if !http11 {
			// §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
			// framing.
			return rh, errTEHTTP10
		}
		// §6.3 item 4: chunked must be the final coding, applied once.
		if !teAny || !teLastChunked || teChunkedN > 1 {
			return rh, errTENotChunked
		}
		if teOther > 0 {
			// §6.1: a coding we do not understand gets 501.
			return rh, errTEUnsupported
		}
		rh.Chunked = true
		req.ContentLength = -1
	case clSeen:
		req.ContentLength = cl
		if clDup {
			collapseContentLength(h, clFirst)
		}
	default:
		req.ContentLength = 0
	}

	if err := setTarget(req, target, method); err != nil {
		return rh, err
	}

	if http11 {
		rh.KeepAlive = !connClose
		rh.ExpectContinue = expect100
	} else {
		rh.KeepAlive = connKA && !connClose
	}
	rh.Upgrade = connUpgrade && upgradeField
	return rh, nil
}

// collapseContentLength leaves one Content-Length field holding a single
// value after identical duplicates ("5, 5" or two fields).
func collapseContentLength(h *Header, first int) {
	v := h.fields[first].Value
	if i := indexByte(v, ','); i >= 0 {
		h.fields[first].Value = trimOWS(v[:i])
	}
	j := first + 1
	for i := first + 1; i < len(h.fields); i++ {
		if EqualFold(h.fields[i].Name, "Content-Length") {
			continue
		}
		h.fields[j] = h.fields[i]
		j++
	}
	clear(h.fields[j:])
	h.fields = h.fields[:j]
}

// setTarget fills Path, RawQuery, RequestURI (and Host for absolute-form)
// from the request-target (RFC 9112 §3.2).
func setTarget(req *Request, target, method string) error {
	switch {
	case target[0] == '/':
		// origin-form
		req.RequestURI = target
	case target == "*":
		// asterisk-form: only for a server-wide OPTIONS (§3.2.4).
		if method != "OPTIONS" {
			return errAsteriskMethod
		}
		req.RequestURI = target
		req.Path = target
		return nil
	default:
		// absolute-form (§3.2.2): a server MUST accept it; the host comes
		// from the target and the Host field is ignored.
		var rest string
		switch {
		case len(target) > 7 && EqualFold(target[:7], "http://"):
			rest = target[7:]
		case len(target) > 8 && EqualFold(target[:8], "https://"):
			rest = target[8:]
		default:
			// authority-form without CONNECT, or another scheme.
			return errTarget
		}
		end := len(rest)
		for i := 0; i < len(rest); i++ {
			if rest[i] == '/' || rest[i] == '?' {
				end = i
				break
			}
		}
		authority := rest[:end]
		// RFC 9110 §4.2.1: an http URI with an empty host is invalid;
		// userinfo is deprecated and treated as an error (§4.2.4).
		if authority == "" || indexByte(authority, '@') >= 0 || !validHost(authority) {
			return errTarget
		}
		req.Host = authority
		switch uri := rest[end:]; {
		case uri == "":
			req.RequestURI = "/"
		case uri[0] == '?':
			req.RequestURI = "/" + uri
		default:
			req.RequestURI = uri
		}
	}
	path, query := req.RequestURI, ""
	if i := indexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	np, err := NormalizePath(path)
	if err != nil {
		return errBadPath
	}
	req.Path = np
	req.RawQuery = query
	return nil
}

// parseVersion accepts exactly "HTTP/1.1" and "HTTP/1.0" (case-sensitive,
// RFC 9112 §2.3). Another well-formed version gets 505.
func parseVersion(v string) (http11 bool, err error) {
	switch v {
	case "HTTP/1.1":
		return true, nil
	case "HTTP/1.0":
		return false, nil
	}
	if len(v) == 8 && v[:5] == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]) {
		return false, errVersionUnsupp
	}
	return false, errVersion
}

// parseRequestContentLength parses a Content-Length value: 1*DIGIT, or a list of
// identical such values. It returns the value and the number of elements.
func parseRequestContentLength(v string) (int64, int, error) {
	var val int64 = -1
	n := 0
	for {
		var part string
		if i := indexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, ""
		}
		part = trimOWS(part)
		// 18 digits cannot overflow int64; nobody sends an exabyte.
		if len(part) == 0 || len(part) > 18 {
			return 0, 0, errBadCL
		}
		var x int64
		for i := 0; i < len(part); i++ {
			if !isDigit(part[i]) {
				return 0, 0, errBadCL
			}
			x = x*10 + int64(part[i]-'0')
		}
		if val >= 0 && x != val {
			return 0, 0, errConflictCL
		}
		val = x
		n++
		if v == "" {
			return val, n, nil
		}
	}
}

// indexCRLF returns the index of the CR ending the first line: readHead
// guarantees every LF has a CR before it, so finding the LF is enough (and
// uses the vectorized search).
func indexCRLF(s string) int {
	return strings.IndexByte(s, '\n') - 1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validFieldValue: field-value bytes are VCHAR, obs-text, SP and HTAB
// (RFC 9110 §5.5).
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if !fieldValueChar[s[i]] {
			return false
		}
	}
	return true
}

var fieldValueChar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 0x20 && c != 0x7f || c == '\t'
	}
	return t
}()

// validTarget accepts visible ASCII except '#' (a fragment is never part of
// a request-target). RFC 3986 is stricter ('|', '{', '"', ...), but clients
// send those unencoded in queries every day and they are harmless to us:
// we split on '?' and normalize only the path. Bytes >= 0x80 are refused
// (clients must percent-encode them, RFC 3986 §2).
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// hostChar marks reg-name bytes: unreserved, sub-delims and '%' (RFC 3986
// §3.2.2).
var hostChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-._~!$&'()*+,;=%" {
		t[c] = true
	}
	return t
}()

// validHost checks Host = uri-host [ ":" port ] (RFC 9110 §7.2). An empty
// value is valid: RFC 9112 §3.2 has clients send it when the target URI
// has no authority.
func validHost(s string) bool {
	if len(s) > 0 && s[0] == '[' {
		end := indexByte(s, ']')
		if end < 0 {
			return false
		}
		for i := 1; i < end; i++ {
			c := s[i]
			if !(isHex(c) || c == ':' || c == '.' || c == 'v' || c == 'V' || hostChar[c]) {
				return false
			}
		}
		if end == 1 {
			return false
		}
		s = s[end+1:]
		if s == "" {
			return true
		}
		if s[0] != ':' {
			return false
		}
		return validPort(s[1:])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ':' {
			return validPort(s[i+1:])
		}
		if !hostChar[c] {
			return false
		}
	}
	return true
}

func validPort(s string) bool {
	if len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// ValidHost reports whether s is a valid Host field value (or :authority):
// uri-host [ ":" port ], RFC 9110 §7.2. Servers of other protocols (HTTP/2,
// HTTP/3) apply the same rule.
func ValidHost(s string) bool { return validHost(s) }

// IsProtocolError reports whether err is a *ProtocolError and returns it.
func IsProtocolError(err error) (*ProtocolError, bool) {
	var pe *ProtocolError
	ok := errors.As(err, &pe)
	return pe, ok
}
