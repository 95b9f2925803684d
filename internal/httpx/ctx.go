package httpx

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"
)

// Request is the client's request as the proxy sees it. Strings may share one
// backing allocation per request head (see the HTTP/1.1 codec); they stay
// valid for the life of the request, but nothing may keep them after the
// handler returns without copying (strings.Clone).
type Request struct {
	Method string
	// RequestURI is the request target as received (path and query), the
	// value of $request_uri.
	RequestURI string
	// Path is the normalized path (see NormalizePath); rewrites change it and
	// it is what the upstream receives. It is the value of $uri.
	Path string
	// RawQuery is the query without '?'. It is kept through rewrites.
	RawQuery string
	// Host is the authority as received (Host header or :authority), port
	// included when sent.
	Host  string
	Proto string // "HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3.0"
	// Header holds the request fields. Hop-by-hop fields are still present
	// here; the proxy drops them when it builds the upstream request.
	Header Header
	// ContentLength is the body length: 0 none, -1 unknown (chunked, or an
	// HTTP/2 stream without content-length).
	ContentLength int64
	// Body reads the (de-chunked, validated) body. It is never nil; it
	// returns io.EOF at the end, or an error such as ErrBodyTooLarge.
	Body io.Reader
	// Trailer is filled once Body has returned io.EOF (chunked HTTP/1.1
	// trailers, HTTP/2 trailers).
	Trailer Header
}

// Response is the response being sent: a plugin's own answer or the
// upstream's, after response-phase hooks ran.
type Response struct {
	Status int
	Header Header
	// ContentLength: -1 unknown (streamed). Hooks that change the body's
	// length (compression) set it to -1.
	ContentLength int64
	// Body is the body source; nil means no body.
	Body    io.Reader
	Trailer Header

	local bytes.Reader
}

// ConnInfo describes the client connection a request arrived on.
type ConnInfo struct {
	RemoteAddr netip.AddrPort // TCP/UDP peer
	LocalAddr  netip.AddrPort // listener address the request arrived on
	TLS        *tls.ConnectionState
	Server     string // [servers.NAME] name
}

// BodyWriter is the sink a response body flows into. Plugins wrap it with
// filters (compression, cache fill) during the response phase.
type BodyWriter interface {
	io.Writer
	// Flush pushes buffered bytes to the client (server-sent events).
	Flush() error
	// Close ends the body: a filter writes its tail (a gzip footer) into the
	// next writer. It must not close the connection.
	Close() error
}

// BodyFilter wraps the next writer in the chain.
type BodyFilter func(next BodyWriter) BodyWriter

// ResponseWriter is what a server (HTTP/1.1, HTTP/2, HTTP/3) gives the
// handler to answer with. The engine drives it: WriteHeader once, Write and
// Flush any number of times, then Finish.
type ResponseWriter interface {
	// WriteInformational sends a 1xx response before the final one.
	WriteInformational(status int, h *Header) error
	// WriteHeader sends the final status and header fields. contentLength
	// -1 means unknown: HTTP/1.1 then uses chunked encoding. Hop-by-hop and
	// framing fields in h are ignored; the server frames the body itself.
	WriteHeader(status int, h *Header, contentLength int64) error
	Write(p []byte) (int, error)
	Flush() error
	// Finish ends the response, sending trailers when given and the protocol
	// allows them. A handler that returns after WriteHeader without calling
	// Finish aborts the response: the server closes the connection (HTTP/1.1)
	// or resets the stream (HTTP/2) so the client sees an incomplete message.
	Finish(trailer *Header) error
	// Hijack hands the raw connection over (HTTP/1.1 upgrades). Bytes the
	// server already read past the request head are in the returned reader.
	Hijack() (net.Conn, *bufio.Reader, error)
	// Written reports whether WriteHeader was called.
	Written() bool
}

// ErrBodyTooLarge is returned by a request body reader once the body passed
// a configured limit (client_max_body_size, body_limit); the proxy answers
// 413 when it can.
var ErrBodyTooLarge = errors.New("request body too large")

// ErrHijackUnsupported is returned by Hijack on protocols without upgrades.
var ErrHijackUnsupported = errors.New("httpx: connection cannot be hijacked")

// Ctx is one request in flight. A server owns it and reuses it for the next
// request of the same connection: nothing may keep a *Ctx, or a string from
// it, after the handler returns.
type Ctx struct {
	Req  Request
	Resp Response
	Conn ConnInfo
	W    ResponseWriter

	// Context carries cancellation (HTTP/2 stream reset) and trace spans.
	Context context.Context
	Start   time.Time
	// End is when the handler finished the request, if it read the clock
	// for that anyway (metrics, logs); the server counts the idle time
	// from it. Zero: the server reads the clock itself.
	End time.Time
	// Scheme is "http" or "https".
	Scheme string
	// ClientIP is the client address after trusted-proxy handling
	// (basic.trusted_proxies); without trusted proxies it is the peer IP.
	ClientIP netip.Addr

	// Filled along the way, read by access logs, metrics and templates.
	RequestID        string
	Location         string
	Upstream         string
	UpstreamAddr     string
	UpstreamDuration time.Duration
	BytesIn          int64
	BytesOut         int64
	// Hijacked is set when the connection was taken over (WebSocket): the
	// engine then writes nothing more.
	Hijacked bool

	filters []BodyFilter
	errBuf  []byte
	values  []ctxValue
	// Scratch is a reusable byte buffer for code on the request path that
	// needs to build a string (templates, keys). Valid until the next use.
	Scratch []byte
}

// Reset clears c for the next request, keeping allocated capacity.
func (c *Ctx) Reset() {
	c.Req.Header.Reset()
	c.Req.Trailer.Reset()
	// Zero and restore rather than assign a literal holding the headers:
	// the literal is built on the stack and copied with wide loads over
	// narrow stores (a store-forwarding stall per request).
	rh, rt := c.Req.Header, c.Req.Trailer
	c.Req = Request{}
	c.Req.Header, c.Req.Trailer = rh, rt
	c.Resp.Header.Reset()
	c.Resp.Trailer.Reset()
	ph, pt := c.Resp.Header, c.Resp.Trailer
	c.Resp = Response{}
	c.Resp.Header, c.Resp.Trailer = ph, pt
	clear(c.filters)
	c.filters = c.filters[:0]
	clear(c.values)
	c.values = c.values[:0]
	c.Conn = ConnInfo{}
	c.W = nil
	c.Context = nil
	c.Start, c.End = time.Time{}, time.Time{}
	c.Scheme = ""
	c.ClientIP = netip.Addr{}
	c.RequestID, c.Location, c.Upstream, c.UpstreamAddr = "", "", "", ""
	c.UpstreamDuration, c.BytesIn, c.BytesOut = 0, 0, 0
	c.Hijacked = false
	c.Scratch = c.Scratch[:0]
}

// AddBodyFilter installs a response body filter. Filters see the body in the
// order they were added: the first added receives the body first.
func (c *Ctx) AddBodyFilter(f BodyFilter) { c.filters = append(c.filters, f) }

// BodyFilters returns the installed filters.
func (c *Ctx) BodyFilters() []BodyFilter { return c.filters }

// Send makes the response a local answer with status, content type and body.
// Header fields already in c.Resp.Header are kept.
func (c *Ctx) Send(status int, contentType string, body []byte) {
	c.Resp.Status = status
	if contentType != "" {
		c.Resp.Header.Set("Content-Type", contentType)
	}
	c.Resp.local.Reset(body)
	c.Resp.Body = &c.Resp.local
	c.Resp.ContentLength = int64(len(body))
}

// SendString is Send for a string body.
func (c *Ctx) SendString(status int, contentType, body string) {
	c.Send(status, contentType, []byte(body))
}

// Error answers with the contract's JSON error body {"error": msg}.
func (c *Ctx) Error(status int, msg string) {
	c.Resp.Header.Reset()
	c.errBuf = AppendJSONError(c.errBuf[:0], msg)
	c.Send(status, "application/json", c.errBuf)
}

// AppendJSONError appends {"error":"msg"} to dst with msg JSON-escaped.
func AppendJSONError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":"`...)
	for i := 0; i < len(msg); i++ {
		b := msg[i]
		switch {
		case b == '"' || b == '\\':
			dst = append(dst, '\\', b)
		case b < 0x20:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
		default:
			dst = append(dst, b)
		}
	}
	return append(dst, `"}`...)
}

type ctxValue struct {
	key, val any
}

// SetValue stores per-request data for a plugin (the key is usually the
// plugin itself). It replaces an earlier value under the same key.
func (c *Ctx) SetValue(key, val any) {
	for i := range c.values {
		if c.values[i].key == key {
			c.values[i].val = val
			return
		}
	}
	c.values = append(c.values, ctxValue{key, val})
}

// Value returns the per-request data stored under key, or nil.
func (c *Ctx) Value(key any) any {
	for i := range c.values {
		if c.values[i].key == key {
			return c.values[i].val
		}
	}
	return nil
}
