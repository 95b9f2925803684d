package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"golang.org/x/net/http2"
)

// h2Preface is the HTTP/2 client connection preface (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// bufferedConn replays bytes our bufio.Reader already took from the
// connection (the sniffed preface) before reading the connection itself.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) {
	if b.br != nil {
		if b.br.Buffered() > 0 {
			return b.br.Read(p)
		}
		b.br = nil
	}
	return b.Conn.Read(p)
}

// sniffH2Preface reports whether the connection starts with the HTTP/2
// preface (h2c with prior knowledge, RFC 9113 §3.3). It only blocks for more
// bytes while everything received so far matches the preface, so a short
// HTTP/1.1 request is never held up.
func (c *conn) sniffH2Preface() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	n := min(len(b), len(h2Preface))
	if string(b[:n]) != h2Preface[:n] {
		return false
	}
	if n < len(h2Preface) {
		b, err := c.br.Peek(len(h2Preface))
		if err != nil || string(b) != h2Preface {
			return false
		}
	}
	return true
}

// connInfoKey carries the connection's ConnInfo to the HTTP/2 adapter
// through the base context of http2.ServeConn.
type connInfoKey struct{}

// serveH2 hands the connection to x/net/http2. upgrade and settings are set
// for an h2c upgrade (RFC 7540 §3.2).
func (c *conn) serveH2(nc net.Conn, upgrade *http.Request, settings []byte) {
	c.state.Store(stateActive)
	info := &httpx.ConnInfo{RemoteAddr: c.remote, LocalAddr: c.local, TLS: c.tlsState, Server: c.srv.opts.Load().Name}
	ctx := context.WithValue(context.Background(), connInfoKey{}, info)
	c.srv.h2.ServeConn(nc, &http2.ServeConnOpts{
		Context:        ctx,
		BaseConfig:     c.srv.h2base,
		Handler:        c.srv.h2handler,
		UpgradeRequest: upgrade,
		Settings:       settings,
	})
}

// tryH2CUpgrade switches an HTTP/1.1 request carrying "Upgrade: h2c" and
// one HTTP2-Settings field to HTTP/2 (RFC 7540 §3.2; deprecated by RFC 9113
// but the contract asks for it). Only bodiless requests are upgraded; for
// others the Upgrade is ignored, which §3.2 allows. It reports whether the
// connection was taken over.
func (c *conn) tryH2CUpgrade() bool {
	req := &c.ctx.Req
	if req.ContentLength != 0 || c.head.Chunked {
		return false
	}
	up := req.Header.Get("Upgrade")
	if !httpx.HasToken(up, "h2c") || req.Header.Count("HTTP2-Settings") != 1 {
		return false
	}
	if !httpx.HasToken(req.Header.Get("Connection"), "HTTP2-Settings") {
		return false
	}
	settings, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(req.Header.Get("HTTP2-Settings"), "="))
	if err != nil {
		return false
	}
	u, err := url.ParseRequestURI(req.Path + queryPart(req.RawQuery))
	if err != nil {
		return false
	}
	hdr := make(http.Header, req.Header.Len())
	for _, f := range req.Header.Fields() {
		switch {
		case httpx.EqualFold(f.Name, "Connection"), httpx.EqualFold(f.Name, "Upgrade"),
			httpx.EqualFold(f.Name, "HTTP2-Settings"), httpx.EqualFold(f.Name, "Host"),
			httpx.EqualFold(f.Name, "Keep-Alive"):
			continue
		}
		hdr.Add(f.Name, f.Value)
	}
	hr := &http.Request{
		Method:     req.Method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       req.Host,
		RequestURI: req.RequestURI,
		RemoteAddr: c.remote.String(),
		Body:       http.NoBody,
	}
	c.bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if err := c.bw.Flush(); err != nil {
		return true
	}
	c.rwc.SetDeadline(time.Time{})
	c.serveH2(&bufferedConn{Conn: c.rwc, br: c.br}, hr, settings)
	return true
}

func queryPart(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

// HTTPHandler adapts h to net/http for the HTTP/2 server (and HTTP/3 later):
// each *http.Request becomes a pooled httpx.Ctx with the same hygiene the
// HTTP/1.1 parser applies where it makes sense for these protocols (the
// path normalized, Host validated, CONNECT refused; framing and field
// syntax are already enforced by the protocol stacks). name is the
// [servers.NAME] name, used unless the connection's context says otherwise.
func HTTPHandler(h Handler, name string) http.Handler {
	a := &httpAdapter{h: h, name: name}
	a.pool.New = func() any { return new(h2State) }
	return a
}

type httpAdapter struct {
	h    Handler
	name string
	srv  *Server // for its logger; nil for HTTPHandler
	pool sync.Pool
}

func (a *httpAdapter) logger() *slog.Logger {
	if a.srv != nil {
		return a.srv.opts.Load().Logger
	}
	return slog.Default()
}

// h2State is one request's reusable state.
type h2State struct {
	ctx  httpx.Ctx
	w    h2Writer
	body httpx.Body
	r    *http.Request
}

// BodyEOF copies the request trailers (known once the body is read).
func (s *h2State) BodyEOF() {
	for k, vs := range s.r.Trailer {
		for _, v := range vs {
			s.ctx.Req.Trailer.Add(k, v)
		}
	}
}

func (a *httpAdapter) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	st := a.pool.Get().(*h2State)
	defer func() {
		st.ctx.Reset()
		st.r = nil
		st.w = h2Writer{}
		st.body.ResetNone()
		a.pool.Put(st)
	}()
	st.r = r
	c := &st.ctx
	c.Reset()
	if info, ok := r.Context().Value(connInfoKey{}).(*httpx.ConnInfo); ok {
		c.Conn = *info
	} else {
		c.Conn.RemoteAddr, _ = netip.ParseAddrPort(r.RemoteAddr)
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			c.Conn.LocalAddr = addrPort(la)
		}
		c.Conn.TLS = r.TLS
		c.Conn.Server = a.name
	}
	if c.Conn.Server == "" {
		c.Conn.Server = a.name
	}
	c.Context = r.Context()
	c.Start = time.Now()
	c.Scheme = "http"
	if r.TLS != nil {
		c.Scheme = "https"
	}
	c.ClientIP = c.Conn.RemoteAddr.Addr().Unmap()
	st.w = h2Writer{rw: rw, head: r.Method == "HEAD"}
	c.W = &st.w

	req := &c.Req
	req.Method = r.Method
	req.Proto = r.Proto
	req.Host = r.Host
	req.RequestURI = r.RequestURI
	if req.RequestURI == "" {
		req.RequestURI = r.URL.RequestURI()
	}
	if r.Method == "CONNECT" {
		writeAdapterError(&st.w, 501, "CONNECT is not supported")
		return
	}
	if !httpx.ValidHost(req.Host) {
		writeAdapterError(&st.w, 400, "invalid Host header")
		return
	}
	path, query := req.RequestURI, ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	if path == "*" && r.Method == "OPTIONS" {
		req.Path = path
	} else {
		np, err := httpx.NormalizePath(path)
		if err != nil {
			writeAdapterError(&st.w, 400, "invalid request path")
			return
		}
		req.Path = np
	}
	req.RawQuery = query
	// HTTP/2 and HTTP/3 carry the authority in a pseudo-header; give the
	// Ctx the Host field an HTTP/1.1 request has, so $http_host and plugins
	// see the same request whatever the protocol.
	if req.Host != "" {
		req.Header.Add("Host", req.Host)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.ContentLength = r.ContentLength
	if r.Body == nil || r.Body == http.NoBody {
		st.body.ResetNone()
		req.ContentLength = 0
	} else {
		st.body.ResetStream(r.Body, st)
	}
	st.body.SetCounter(&c.BytesIn)
	req.Body = &st.body

	a.call(st)
}

func (a *httpAdapter) call(st *h2State) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.logger().Error("handler panic", "server", st.ctx.Conn.Server, "remote", st.ctx.Conn.RemoteAddr,
				"method", st.ctx.Req.Method, "uri", st.ctx.Req.RequestURI, "panic", v, "stack", string(debug.Stack()))
			if !st.w.wrote {
				writeAdapterError(&st.w, 500, "internal server error")
				return
			}
			// Mid-response: reset the stream so the client sees a failure.
			panic(http.ErrAbortHandler)
		}
	}()
	a.h.ServeHTTPX(&st.ctx)
	if !st.w.wrote {
		writeAdapterError(&st.w, 500, "handler wrote no response")
	} else if !st.w.finished {
		// The handler gave up mid-response (the upstream body broke):
		// reset the stream so the client never takes a truncated body for
		// a complete one.
		panic(http.ErrAbortHandler)
	}
}

func writeAdapterError(w *h2Writer, status int, msg string) {
	body := httpx.AppendJSONError(nil, msg)
	var h httpx.Header
	h.Add("Content-Type", "application/json")
	if w.WriteHeader(status, &h, int64(len(body))) == nil {
		w.Write(body)
		w.Finish(nil)
	}
}

// h2Writer is httpx.ResponseWriter over an http.ResponseWriter.
type h2Writer struct {
	rw       http.ResponseWriter
	head     bool
	wrote    bool
	finished bool
}

// skipH2Field drops connection-specific fields, which HTTP/2 forbids (RFC
// 9113 §8.2.2), and the framing the stack does itself.
func skipH2Field(name string) bool {
	switch len(name) {
	case 2:
		return httpx.EqualFold(name, "TE")
	case 7:
		return httpx.EqualFold(name, "Upgrade")
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

func (w *h2Writer) WriteInformational(status int, h *httpx.Header) error {
	if w.wrote {
		return errHeaderWritten
	}
	if status < 100 || status > 199 || status == 101 {
		return errBadStatus
	}
	hdr := w.rw.Header()
	var added []string
	if h != nil {
		for _, f := range h.Fields() {
			if skipH2Field(f.Name) {
				continue
			}
			k := http.CanonicalHeaderKey(f.Name)
			if _, ok := hdr[k]; !ok {
				added = append(added, k)
			}
			hdr.Add(k, f.Value)
		}
	}
	w.rw.WriteHeader(status)
	// net/http keeps the map for the final response: drop what was only
	// meant for the interim one.
	for _, k := range added {
		delete(hdr, k)
	}
	return nil
}

func (w *h2Writer) WriteHeader(status int, h *httpx.Header, contentLength int64) error {
	if w.wrote {
		return errHeaderWritten
	}
	if status < 200 || status > 999 {
		return errBadStatus
	}
	w.wrote = true
	hdr := w.rw.Header()
	if h != nil {
		for _, f := range h.Fields() {
			if skipH2Field(f.Name) {
				continue
			}
			hdr.Add(f.Name, f.Value)
		}
	}
	if contentLength >= 0 && status != 204 && status != 304 {
		hdr.Set("Content-Length", strconv.FormatInt(contentLength, 10))
	}
	w.rw.WriteHeader(status)
	return nil
}

func (w *h2Writer) Write(p []byte) (int, error) {
	if !w.wrote {
		if err := w.WriteHeader(200, nil, -1); err != nil {
			return 0, err
		}
	}
	if w.finished {
		return 0, errFinished
	}
	return w.rw.Write(p)
}

func (w *h2Writer) Flush() error {
	if f, ok := w.rw.(http.Flusher); ok {
		f.Flush()
		return nil
	}
	return http.NewResponseController(w.rw).Flush()
}

// Finish sets trailers through http.TrailerPrefix, which net/http and
// x/net/http2 send as a trailing HEADERS frame.
func (w *h2Writer) Finish(trailer *httpx.Header) error {
	if !w.wrote {
		if err := w.WriteHeader(200, nil, 0); err != nil {
			return err
		}
	}
	if w.finished {
		return nil
	}
	w.finished = true
	if trailer != nil && trailer.Len() > 0 {
		hdr := w.rw.Header()
		for _, f := range trailer.Fields() {
			hdr.Add(http.TrailerPrefix+f.Name, f.Value)
		}
	}
	return nil
}

func (w *h2Writer) Hijack() (net.Conn, *bufio.Reader, error) {
	return nil, nil, httpx.ErrHijackUnsupported
}

func (w *h2Writer) Written() bool { return w.wrote }

var _ httpx.ResponseWriter = (*h2Writer)(nil)
