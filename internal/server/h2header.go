package server

import (
	"strconv"
	"strings"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// hdrBlock is the header block the reader is decoding: the HPACK decoder
// calls onField for each field, which validates it (RFC 9113 §8.2, §8.3)
// and adds it to the new stream's request (or to the trailer scratch), so
// no intermediate field list is built.
type hdrBlock struct {
	active    bool
	st        *h2stream // the new stream of a request block; nil otherwise
	id        uint32
	trailers  bool // a trailer block for stream id
	endStream bool

	wire   int // encoded bytes (plus a per-frame cost)
	size   int // decoded list size (RFC 9113 §6.5.2)
	tooBig bool
	bad    string // why the block is malformed; "" when fine

	sawRegular bool
	pseudo     uint8
	method     string
	scheme     string
	authority  string
	path       string
	host       string
	hosts      int
	cl         int64
	cookies    int
	expect100  bool

	trailer httpx.Header // trailer fields, reused
}

const (
	pseudoMethod = 1 << iota
	pseudoScheme
	pseudoAuthority
	pseudoPath
)

func (b *hdrBlock) begin(st *h2stream, id uint32, trailers, endStream bool) {
	tr := b.trailer
	tr.Reset()
	*b = hdrBlock{active: true, st: st, id: id, trailers: trailers, endStream: endStream, cl: -1, trailer: tr}
}

// onField is the HPACK decoder's emit function.
func (h *h2conn) onField(f hpack.HeaderField) {
	b := &h.blk
	if (b.st == nil && !b.trailers) || b.bad != "" || b.tooBig {
		return
	}
	b.size += len(f.Name) + len(f.Value) + 32
	if b.size > h.opts.MaxHeaderBytes {
		b.tooBig = true
		return
	}
	name, value := f.Name, f.Value
	if len(name) > 0 && name[0] == ':' {
		if b.trailers || b.sawRegular {
			b.bad = "pseudo-header field out of place"
			return
		}
		var bit uint8
		switch name {
		case ":method":
			bit, b.method = pseudoMethod, value
		case ":scheme":
			bit, b.scheme = pseudoScheme, value
		case ":authority":
			bit, b.authority = pseudoAuthority, value
		case ":path":
			bit, b.path = pseudoPath, value
		default:
			// :protocol too: extended CONNECT is not advertised.
			b.bad = "unknown pseudo-header field"
			return
		}
		if b.pseudo&bit != 0 {
			b.bad = "duplicate pseudo-header field"
			return
		}
		b.pseudo |= bit
		return
	}
	b.sawRegular = true
	if !validH2FieldName(name) {
		b.bad = "invalid header field name"
		return
	}
	if !validH2FieldValue(value) {
		b.bad = "invalid header field value"
		return
	}
	switch len(name) {
	case 2:
		if name == "te" && value != "trailers" {
			b.bad = "te other than trailers"
			return
		}
	case 7:
		if name == "upgrade" {
			b.bad = "connection-specific header field"
			return
		}
	case 10:
		if name == "connection" || name == "keep-alive" {
			b.bad = "connection-specific header field"
			return
		}
	case 16:
		if name == "proxy-connection" {
			b.bad = "connection-specific header field"
			return
		}
	case 17:
		if name == "transfer-encoding" {
			b.bad = "connection-specific header field"
			return
		}
	}
	if b.trailers {
		b.trailer.Add(name, value)
		return
	}
	switch name {
	case "content-length":
		n, ok := parseH2ContentLength(value)
		if !ok || (b.cl >= 0 && b.cl != n) {
			b.bad = "invalid content-length"
			return
		}
		b.cl = n
	case "host":
		// Becomes Request.Host (without :authority) and the one Host
		// field added in finishRequest.
		b.host = value
		b.hosts++
		return
	case "cookie":
		b.cookies++
	case "expect":
		if httpx.EqualFold(value, "100-continue") {
			b.expect100 = true
		}
	}
	b.st.ctx.Req.Header.Add(name, value)
}

func parseH2ContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// h2NameOK marks the bytes of a valid HTTP/2 field name: tchar without
// upper-case letters (RFC 9113 §8.2.1).
var h2NameOK = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validH2FieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !h2NameOK[s[i]] {
			return false
		}
	}
	return true
}

// validH2FieldValue applies RFC 9113 §8.2.1: no NUL, CR or LF, no leading
// or trailing whitespace.
func validH2FieldValue(s string) bool {
	if s == "" {
		return true
	}
	if c := s[0]; c == ' ' || c == '\t' {
		return false
	}
	if c := s[len(s)-1]; c == ' ' || c == '\t' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !h2NameOK[c] && !('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// finishRequest turns the decoded block into the stream's request. A
// request the HTTP/2 framing accepts but we refuse (CONNECT, a bad Host or
// path, too large a head) gets preStatus: the stream answers it with the
// contract's JSON error instead of running the handler. Malformed requests
// set b.bad (the caller resets the stream).
func (h *h2conn) finishRequest(st *h2stream) {
	b := &h.blk
	req := &st.ctx.Req
	req.Proto = "HTTP/2.0"
	req.Method = b.method
	if b.method == "CONNECT" {
		if b.pseudo&pseudoAuthority == 0 || b.pseudo&(pseudoScheme|pseudoPath) != 0 {
			b.bad = "malformed CONNECT"
			return
		}
		req.Host = b.authority
		req.RequestURI = b.authority
		st.preStatus, st.preMsg = 501, "CONNECT is not supported"
	} else if b.pseudo&(pseudoMethod|pseudoScheme|pseudoPath) != pseudoMethod|pseudoScheme|pseudoPath || b.path == "" {
		b.bad = "missing pseudo-header field"
		return
	}
	if !validMethod(b.method) {
		b.bad = "invalid method"
		return
	}
	if b.endStream && b.cl > 0 {
		b.bad = "content-length without body"
		return
	}
	st.expect100 = b.expect100
	st.declared = b.cl
	host := b.authority
	if b.pseudo&pseudoAuthority == 0 {
		host = b.host
	}
	req.Host = host
	if host != "" {
		req.Header.Add("Host", host)
	}
	if b.cookies > 1 {
		// RFC 9113 §8.2.3: crumbs become one field for HTTP/1.1 upstreams.
		var sb strings.Builder
		req.Header.Values("cookie", func(v string) bool {
			if sb.Len() > 0 {
				sb.WriteString("; ")
			}
			sb.WriteString(v)
			return true
		})
		req.Header.Del("cookie")
		req.Header.Add("cookie", sb.String())
	}
	if b.endStream {
		req.ContentLength = 0
		st.body.ResetNone()
	} else {
		req.ContentLength = b.cl
		st.body.ResetStream(&st.rd, st)
	}
	h.setupCtx(st)
	if st.preStatus != 0 {
		return
	}
	if b.tooBig {
		st.preStatus, st.preMsg = 431, "request header fields too large"
		return
	}
	if b.hosts > 1 || !httpx.ValidHost(host) {
		st.preStatus, st.preMsg = 400, "invalid Host header"
		return
	}
	req.RequestURI = b.path
	path, query := b.path, ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	req.RawQuery = query
	if path == "*" && b.method == "OPTIONS" {
		req.Path = path
		return
	}
	np, err := httpx.NormalizePath(path)
	if err != nil || path == "" {
		st.preStatus, st.preMsg = 400, "invalid request path"
		return
	}
	req.Path = np
}

// encodeHeadersLocked HPACK-encodes a response head into the scratch
// buffer and returns it: :status, h's fields (lower-cased, without the
// ones HTTP/2 forbids or frames itself), content-length when cl >= 0, and
// date when withDate and h has none.
func (h *h2conn) encodeHeadersLocked(status int, hdr *httpx.Header, cl int64, withDate bool) []byte {
	*h.hbuf.b = (*h.hbuf.b)[:0]
	e := h.henc
	e.WriteField(hpack.HeaderField{Name: ":status", Value: statusString(status)})
	hasDate := false
	if hdr != nil {
		fs := hdr.Fields()
		for i := range fs {
			f := &fs[i]
			if skipH2Field(f.Name) || !safeField(f) {
				continue
			}
			if len(f.Name) == 4 && httpx.EqualFold(f.Name, "date") {
				hasDate = true
			}
			e.WriteField(hpack.HeaderField{Name: h.lowerName(f.Name), Value: f.Value})
		}
	}
	if cl >= 0 {
		e.WriteField(hpack.HeaderField{Name: "content-length", Value: h.clString(cl)})
	}
	if withDate && !hasDate {
		e.WriteField(hpack.HeaderField{Name: "date", Value: h.dateString()})
	}
	return *h.hbuf.b
}

// countH2Trailers counts the trailer fields that may be sent.
func countH2Trailers(tr *httpx.Header) int {
	n := 0
	fs := tr.Fields()
	for i := range fs {
		if !skipH2Field(fs[i].Name) && safeField(&fs[i]) {
			n++
		}
	}
	return n
}

func (h *h2conn) encodeTrailersLocked(tr *httpx.Header) []byte {
	*h.hbuf.b = (*h.hbuf.b)[:0]
	fs := tr.Fields()
	for i := range fs {
		f := &fs[i]
		if skipH2Field(f.Name) || !safeField(f) {
			continue
		}
		h.henc.WriteField(hpack.HeaderField{Name: h.lowerName(f.Name), Value: f.Value})
	}
	return *h.hbuf.b
}

// writeHeaderBlockLocked queues a header block as HEADERS and, past the
// client's max frame size, CONTINUATION frames.
func (h *h2conn) writeHeaderBlockLocked(id uint32, block []byte, endStream bool) {
	max := h.peerMaxFrame
	first := block
	if len(first) > max {
		first = first[:max]
	}
	block = block[len(first):]
	h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0})
	for len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		h.fr.WriteContinuation(id, len(block) == 0, frag)
	}
}

// skipH2Field drops connection-specific fields, which HTTP/2 forbids (RFC
// 9113 §8.2.2), the framing the stack does itself (the HTTP/1.1 writer's
// list, Upgrade included: there is no 101 in HTTP/2), and pseudo-header
// names a handler cannot set.
func skipH2Field(name string) bool {
	return skipResponseField(name, 0) || len(name) > 0 && name[0] == ':'
}

// commonLower holds the lower-case forms of common response field names,
// so that encoding them allocates nothing.
var commonLower = [...]string{
	"accept-ranges", "access-control-allow-origin", "age", "alt-svc", "cache-control",
	"content-disposition", "content-encoding", "content-language", "content-location",
	"content-range", "content-type", "date", "etag", "expires", "last-modified", "link",
	"location", "server", "set-cookie", "strict-transport-security", "vary", "via",
	"www-authenticate", "x-content-type-options", "x-frame-options", "x-request-id",
	"x-cache", "x-cache-status", "trailer", "grpc-status", "grpc-message", "retry-after",
	"content-security-policy", "referrer-policy", "x-xss-protection", "x-powered-by",
	"x-origin", "x-upstream",
}

// lowerName returns name lower-cased (HTTP/2 field names are lower-case).
// HPACK keeps the strings it indexes, so the result must be immutable: a
// name already lower-case is returned as is, common ones come from a
// table, others from a small per-connection cache before allocating.
func (h *h2conn) lowerName(name string) string {
	lower := true
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			lower = false
			break
		}
	}
	if lower {
		return name
	}
	for _, s := range commonLower {
		if len(s) == len(name) && httpx.EqualFold(s, name) {
			return s
		}
	}
	for i := range h.lower {
		if h.lower[i][0] == name {
			return h.lower[i][1]
		}
	}
	s := strings.ToLower(name)
	h.lower[h.lowerNext] = [2]string{name, s}
	h.lowerNext = (h.lowerNext + 1) % len(h.lower)
	return s
}

func statusString(status int) string {
	switch status {
	case 200:
		return "200"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 403:
		return "403"
	case 404:
		return "404"
	case 499:
		return "499"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(status)
}

// clString returns cl as text, remembering the last one (responses of one
// connection often have the same length).
func (h *h2conn) clString(cl int64) string {
	if cl != h.clN || h.clS == "" {
		h.clN = cl
		h.clS = strconv.FormatInt(cl, 10)
	}
	return h.clS
}

// dateString returns the current IMF-fixdate, cached per second.
func (h *h2conn) dateString() string {
	now := time.Now()
	if sec := now.Unix(); sec != h.dateSec || h.date == "" {
		h.dateSec = sec
		h.date = now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
	}
	return h.date
}
