// Package proxy is the terminal handler of a request: it picks an upstream
// addr, builds the upstream request from the client's (hop-by-hop fields
// removed, X-Forwarded-* added, proxy_* header operations applied), sends it
// through the addr's RoundTripper, retries a connect failure once on another
// addr, and maps failures to the contract's 502 / 503 / 504 answers. It
// fills c.Resp; the engine writes it.
package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/tracing"
	"github.com/pingap-go/pingap/internal/upstream"
	"go.opentelemetry.io/otel/trace"
)

// HeaderOp is one compiled proxy_* header operation.
type HeaderOp struct {
	Name  string
	Value *httpx.Template
}

// Route is what the proxy needs of a location, compiled once per snapshot.
type Route struct {
	Pool *upstream.Pool
	// SetHeaders are proxy_set_headers (a "Host" entry overrides the Host
	// sent upstream), AddHeaders proxy_add_headers, RemoveHeaders
	// proxy_remove_headers.
	SetHeaders    []HeaderOp
	AddHeaders    []HeaderOp
	RemoveHeaders []string
	// MaxBodySize is client_max_body_size (0 = unlimited).
	MaxBodySize  int64
	hostOverride *httpx.Template
}

// Compile finishes a Route after its fields are set: it pulls a Host entry
// out of SetHeaders.
func (r *Route) Compile() {
	ops := r.SetHeaders[:0:0]
	for _, op := range r.SetHeaders {
		if httpx.EqualFold(op.Name, "Host") {
			r.hostOverride = op.Value
			continue
		}
		ops = append(ops, op)
	}
	r.SetHeaders = ops
}

// Proxy forwards requests. It is stateless apart from pooled scratch state.
type Proxy struct {
	state sync.Pool
	log   *slog.Logger
	// lastLog rate-limits upstream failure logs (unix nanoseconds).
	lastLog    atomic.Int64
	suppressed atomic.Int64
}

// New returns a Proxy that logs upstream failures to log (nil: discarded).
func New(log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{log: log}
	p.state.New = func() any {
		s := &attempt{}
		s.onInfo = s.informational
		return s
	}
	return p
}

// attempt is the per-request scratch state, pooled so that building the
// upstream request allocates nothing.
type attempt struct {
	out    httpx.OutRequest
	body   clientBody
	hdr    httpx.Header
	buf    []byte
	c      *httpx.Ctx
	onInfo func(status int, h *httpx.Header) error
	// peer and peerStr cache the last client IP's text form: the
	// X-Forwarded-For value of a request that arrives without one. Behind
	// a load balancer (one peer) or on a busy keep-alive connection the
	// same attempt sees the same peer again and again.
	peer    netip.Addr
	peerStr string
}

func (a *attempt) informational(status int, h *httpx.Header) error {
	if a.c.W == nil {
		return nil
	}
	return a.c.W.WriteInformational(status, h)
}

// Forward sends c's request to route's upstream and leaves the response (or
// an error answer) in c.Resp. When the response came from an upstream addr,
// Forward returns its host: the caller streams the body, then calls
// host.Done (the request counts as in flight until its body is sent). When
// the request was a protocol upgrade that the upstream accepted, Forward
// relays both directions itself and sets c.Hijacked.
//
// tr, when not nil, traces the upstream call (a client span, whose
// traceparent goes to the upstream).
func (p *Proxy) Forward(c *httpx.Ctx, route *Route, tr *tracing.Tracer) *upstream.Host {
	pool := route.Pool
	if pool == nil {
		c.Error(502, "no upstream configured")
		return nil
	}
	c.Upstream = pool.Name
	a := p.state.Get().(*attempt)
	recycle := true
	defer func() {
		if !recycle {
			return
		}
		a.c = nil
		a.body = clientBody{}
		a.out = httpx.OutRequest{}
		a.hdr.Reset()
		p.state.Put(a)
	}()
	a.c = c
	if route.MaxBodySize > 0 && c.Req.ContentLength > route.MaxBodySize {
		c.Error(413, "request body too large")
		return nil
	}
	// a.body is zero (new, or reset when recycled); set field by field
	// (a literal is copied with wide loads over narrow stores: a
	// store-forwarding stall per request).
	a.body.r, a.body.limit, a.body.left = c.Req.Body, route.MaxBodySize, route.MaxBodySize
	if s, ok := c.Req.Body.(interface{ Share() }); ok && c.Req.ContentLength != 0 {
		// The transports read the body on goroutines of their own while
		// the response is read and written (full duplex).
		s.Share()
	}
	upgrade := upgradeToken(c)
	a.buildRequest(c, route, &a.body, upgrade)

	var exclude *upstream.Host
	for try := 0; try < 2; try++ {
		h := pool.Select(c, exclude)
		if h == nil {
			if exclude != nil {
				// The only other candidate failed to connect.
				c.Error(502, "upstream unreachable")
			} else {
				c.Error(503, "no healthy upstream")
			}
			return nil
		}
		c.UpstreamAddr = h.Addr
		ctx := c.Context
		var span trace.Span
		if tr != nil {
			ctx, span = tr.StartClient(ctx, c, &a.out)
		}
		// Durations from the request's start: time.Since reads only the
		// monotonic clock (time.Now reads two clocks).
		t0 := time.Since(c.Start)
		a.out.Now = time.Time{}
		if !c.Start.IsZero() {
			a.out.Now = c.Start.Add(t0) // the transport's clock reading too
		}
		h.Begin()
		res, err := h.Transport.RoundTrip(ctx, &a.out, &c.Resp)
		d := time.Since(c.Start) - t0
		if span != nil {
			tr.EndClient(span, c.Resp.Status, err)
		}
		c.UpstreamDuration += d
		if h.Metrics != nil {
			h.Metrics.Done(d, res.Reused, err != nil)
		}
		if err == nil {
			h.ReportSuccess()
			if res.Upgraded != nil {
				p.relayUpgrade(c, res.Upgraded)
				h.Done(false)
				return nil
			}
			stripConnectionFields(&c.Resp.Header)
			if a.out.Body != nil && !a.body.ended.Load() {
				// The response came before the request body ended (gRPC
				// streams, an early 401, a streaming echo): the transport
				// goes on reading it through a.body while the response
				// streams (full duplex), so this attempt must not be reset
				// and reused under it (that crashed the process). The
				// transport stops reading before the response body's
				// Close returns.
				recycle = false
			}
			return h
		}
		if c.Context != nil && c.Context.Err() != nil {
			// The client went away (an HTTP/2 or HTTP/3 stream reset): the
			// attempt was cancelled on its behalf, which says nothing about
			// the upstream. Not a failure, not retried; 499 as nginx logs it.
			h.Done(false)
			c.Error(499, "client closed request")
			return nil
		}
		h.Done(true)
		if a.body.err == nil || a.body.err == io.EOF {
			p.logFailure(c, h, err)
		}
		if a.body.err != nil && a.body.err != io.EOF {
			// The client's body broke (malformed chunking, too large, the
			// client went away): the request is the client's fault and was
			// never delivered whole.
			if errors.Is(a.body.err, httpx.ErrBodyTooLarge) {
				c.Error(413, "request body too large")
			} else {
				c.Error(400, "malformed or incomplete request body")
			}
			return nil
		}
		if httpx.IsConnectError(err) {
			h.ReportConnectFailure()
			exclude = h
			continue
		}
		if try == 0 && resendable(c, upgrade, err) {
			// The connection broke before a response head came: typically
			// a backend going away (a fresh connection reset out of the
			// listen backlog of a closing listener, a pooled one closed as
			// the request went out). A bodiless request with a safe
			// method may be sent again (RFC 9110 §9.2.2), on another addr,
			// as nginx's proxy_next_upstream "error" does. It connected,
			// so it does not count toward passive marking.
			exclude = h
			continue
		}
		switch {
		case httpx.IsTimeout(err):
			c.Error(504, "upstream timeout")
		default:
			c.Error(502, "bad gateway")
		}
		return nil
	}
	c.Error(502, "upstream unreachable")
	return nil
}

// logFailure logs why an upstream attempt failed (the access log only shows
// the 502/504), at most once a second, with the number of failures not
// logged since.
func (p *Proxy) logFailure(c *httpx.Ctx, h *upstream.Host, err error) {
	now := time.Now().UnixNano()
	last := p.lastLog.Load()
	if now-last < int64(time.Second) || !p.lastLog.CompareAndSwap(last, now) {
		p.suppressed.Add(1)
		return
	}
	p.log.Warn("upstream request failed",
		slog.String("upstream", h.Upstream), slog.String("upstream_addr", h.Addr),
		slog.String("location", c.Location), slog.String("error", err.Error()),
		slog.Int64("suppressed", p.suppressed.Swap(0)))
}

// buildRequest fills a.out from the client's request.
func (a *attempt) buildRequest(c *httpx.Ctx, route *Route, body io.Reader, upgrade string) {
	out := &a.out
	out.Method = c.Req.Method
	if c.Req.RawQuery != "" {
		out.URI = requestTarget(c, a)
	} else {
		out.URI = c.Req.Path
	}
	out.Host = c.Req.Host
	if route.hostOverride != nil {
		out.Host = route.hostOverride.String(c)
	}
	out.Upgrade = upgrade
	out.ReadTimeout = route.Pool.Config.ReadTimeout.D()
	out.OnInformational = a.onInfo
	if c.Req.ContentLength != 0 {
		out.Body = body
		out.ContentLength = c.Req.ContentLength
		if c.Req.ContentLength < 0 {
			out.Trailer = &c.Req.Trailer
		}
	}

	h := &a.hdr
	h.Reset()
	conn := c.Req.Header.Get("Connection")
	var xff string
	for _, f := range c.Req.Header.Fields() {
		if isHopByHop(f.Name) || (conn != "" && httpx.HasToken(conn, f.Name)) {
			// TE: trailers announces that the client accepts trailers;
			// gRPC needs it to reach an HTTP/2 upstream.
			if httpx.EqualFold(f.Name, "TE") && httpx.EqualFold(strings.TrimSpace(f.Value), "trailers") {
				h.Add(f.Name, f.Value)
			}
			continue
		}
		switch {
		case httpx.EqualFold(f.Name, "Host"), httpx.EqualFold(f.Name, "Content-Length"):
			continue
		case httpx.EqualFold(f.Name, "X-Forwarded-For"):
			if xff == "" {
				xff = f.Value
			} else {
				xff = xff + ", " + f.Value
			}
			continue
		case httpx.EqualFold(f.Name, "X-Forwarded-Proto"), httpx.EqualFold(f.Name, "X-Forwarded-Host"):
			continue
		}
		h.Add(f.Name, f.Value)
	}
	// X-Forwarded-For gets the peer appended (the contract: appended).
	h.Add("X-Forwarded-For", a.forwardedFor(c, xff))
	h.Add("X-Forwarded-Proto", c.Scheme)
	if c.Req.Host != "" {
		h.Add("X-Forwarded-Host", c.Req.Host)
	}
	for _, name := range route.RemoveHeaders {
		h.Del(name)
	}
	for _, op := range route.SetHeaders {
		h.Set(op.Name, op.Value.String(c))
	}
	for _, op := range route.AddHeaders {
		h.Add(op.Name, op.Value.String(c))
	}
	out.Header = h
}

// requestTarget returns path?query for the upstream. When the client's
// own request target already reads exactly that (no rewrite, nothing
// normalized), it is reused as is; otherwise a new string is built.
func requestTarget(c *httpx.Ctx, a *attempt) string {
	path, q, raw := c.Req.Path, c.Req.RawQuery, c.Req.RequestURI
	if len(raw) == len(path)+1+len(q) && raw[len(path)] == '?' &&
		raw[:len(path)] == path && raw[len(path)+1:] == q {
		return raw
	}
	a.buf = append(a.buf[:0], path...)
	a.buf = append(a.buf, '?')
	a.buf = append(a.buf, q...)
	return string(a.buf)
}

// forwardedFor returns the X-Forwarded-For value: the client's list, if
// any, with the peer IP appended.
func (a *attempt) forwardedFor(c *httpx.Ctx, xff string) string {
	var peer string
	if c.Conn.RemoteAddr.IsValid() {
		ip := c.Conn.RemoteAddr.Addr()
		if ip != a.peer || a.peerStr == "" {
			a.peer, a.peerStr = ip, ip.String()
		}
		peer = a.peerStr
	}
	if xff == "" {
		return peer
	}
	a.buf = append(a.buf[:0], xff...)
	a.buf = append(a.buf, ", "...)
	a.buf = append(a.buf, peer...)
	return string(a.buf)
}

// resendable reports whether a failed round trip may go to another addr
// although the request was sent: no body, a safe method, not an upgrade,
// and the upstream failed before a response head (not a timeout: that
// would double the wait, and not a malformed response).
func resendable(c *httpx.Ctx, upgrade string, err error) bool {
	if c.Req.ContentLength != 0 || upgrade != "" {
		return false
	}
	switch c.Req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
	default:
		return false
	}
	var te *httpx.TransportError
	return errors.As(err, &te) && te.Op == "read" && !te.Timeout
}

// isHopByHop reports the RFC 9110 §7.6.1 connection-specific fields, plus
// the framing field Transfer-Encoding (the transport re-frames bodies):
// Connection, Proxy-Connection, Keep-Alive, Proxy-Authorization, TE,
// Trailer, Transfer-Encoding, Upgrade. It runs for every field of every
// request and response: the length picks the one name to compare.
func isHopByHop(name string) bool {
	var h string
	switch len(name) {
	case 2:
		h = "TE"
	case 7:
		if name[0]|0x20 == 't' {
			h = "Trailer"
		} else {
			h = "Upgrade"
		}
	case 10:
		if name[0]|0x20 == 'c' {
			h = "Connection"
		} else {
			h = "Keep-Alive"
		}
	case 16:
		h = "Proxy-Connection"
	case 17:
		h = "Transfer-Encoding"
	case 19:
		h = "Proxy-Authorization"
	default:
		return false
	}
	return httpx.EqualFold(name, h)
}

// stripConnectionFields removes hop-by-hop fields from an upstream response,
// including those the upstream named in its Connection field.
func stripConnectionFields(h *httpx.Header) {
	conn := h.Get("Connection")
	h.DelFunc(func(f *httpx.Field) bool {
		return isHopByHop(f.Name) || httpx.EqualFold(f.Name, "Proxy-Authenticate") ||
			(conn != "" && httpx.HasToken(conn, f.Name))
	})
}

// upgradeToken returns the Upgrade value of an HTTP/1.1 upgrade request
// (WebSocket), or "".
func upgradeToken(c *httpx.Ctx) string {
	if c.Req.Proto != "HTTP/1.1" {
		return ""
	}
	conn := c.Req.Header.Get("Connection")
	if conn == "" || !httpx.HasToken(conn, "upgrade") {
		return ""
	}
	return c.Req.Header.Get("Upgrade")
}

// clientBody is the client's request body as the upstream reads it: it
// enforces client_max_body_size while streaming and remembers the error the
// client side produced, so a failed upload maps to 400/413 rather than 502.
type clientBody struct {
	r     io.Reader
	limit int64 // 0 = unlimited
	left  int64
	err   error
	// ended is set, as Read's last access to the struct, once Read
	// returns an error (io.EOF included): nothing touches the body any
	// more, so the attempt holding it may be reused. The transports read
	// it on goroutines of their own, one Read at a time, and stop before
	// RoundTrip fails or the response body's Close returns.
	ended atomic.Bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.read(p)
	if err != nil {
		b.ended.Store(true) // the last access: see ended
	}
	return n, err
}

// Whole reports whether the rest of the body has arrived and can be read
// without waiting (see httpx.Body.Whole); the transport then sends a small
// one with the request head in one write.
func (b *clientBody) Whole() bool {
	w, ok := b.r.(interface{ Whole() bool })
	return ok && b.err == nil && w.Whole()
}

func (b *clientBody) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.limit > 0 && int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if b.limit > 0 {
		b.left -= int64(n)
		if b.left < 0 {
			b.err = httpx.ErrBodyTooLarge
			return 0, b.err
		}
	}
	if err == nil {
		if e, ok := b.r.(interface{ Ended() bool }); ok && e.Ended() {
			// A body of declared length read to its end: io.EOF now,
			// with its last bytes. The HTTP/1.1 transport reads exactly
			// that length and would never ask again, and ended (Read's
			// error) is what lets the attempt be reused.
			err = io.EOF
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}
