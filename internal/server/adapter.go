package server

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// The net/http adapter: HTTP/3 (quic-go's server speaks net/http) feeds
// the same Handler through it. HTTP/1.1 and HTTP/2 are served natively
// (conn.go, h2conn.go).

// HTTPHandler adapts h to net/http for the HTTP/2 server (and HTTP/3 later):
// each *http.Request becomes a pooled httpx.Ctx with the same hygiene the
// HTTP/1.1 parser applies where it makes sense for these protocols (the
// path normalized, Host validated, CONNECT refused; framing and field
// syntax are already enforced by the protocol stacks). name is the
// [servers.NAME] name, used unless the connection's context says otherwise.
func HTTPHandler(h Handler, name string) http.Handler {
	a := &httpAdapter{h: h, name: name}
	a.pool.New = func() any { return new(adapterState) }
	return a
}

type httpAdapter struct {
	h    Handler
	name string
	pool sync.Pool
}

func (a *httpAdapter) logger() *slog.Logger { return slog.Default() }

// adapterState is one request's reusable state.
type adapterState struct {
	ctx  httpx.Ctx
	w    adapterWriter
	body httpx.Body
	r    *http.Request
}

// BodyEOF copies the request trailers (known once the body is read).
func (s *adapterState) BodyEOF() {
	for k, vs := range s.r.Trailer {
		for _, v := range vs {
			s.ctx.Req.Trailer.Add(k, v)
		}
	}
}

func (a *httpAdapter) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	st := a.pool.Get().(*adapterState)
	defer func() {
		st.ctx.Reset()
		st.r = nil
		st.w = adapterWriter{}
		st.body.ResetNone()
		a.pool.Put(st)
	}()
	st.r = r
	c := &st.ctx
	c.Reset()
	c.Conn.RemoteAddr, _ = netip.ParseAddrPort(r.RemoteAddr)
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		c.Conn.LocalAddr = addrPort(la)
	}
	c.Conn.TLS = r.TLS
	c.Conn.Server = a.name
	c.Context = r.Context()
	c.Start = time.Now()
	c.Scheme = "http"
	if r.TLS != nil {
		c.Scheme = "https"
	}
	c.ClientIP = c.Conn.RemoteAddr.Addr().Unmap()
	st.w = adapterWriter{rw: rw, head: r.Method == "HEAD"}
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

func (a *httpAdapter) call(st *adapterState) {
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

func writeAdapterError(w *adapterWriter, status int, msg string) {
	body := httpx.AppendJSONError(nil, msg)
	var h httpx.Header
	h.Add("Content-Type", "application/json")
	if w.WriteHeader(status, &h, int64(len(body))) == nil {
		w.Write(body)
		w.Finish(nil)
	}
}

// adapterWriter is httpx.ResponseWriter over an http.ResponseWriter.
type adapterWriter struct {
	rw       http.ResponseWriter
	head     bool
	wrote    bool
	finished bool
}

func (w *adapterWriter) WriteInformational(status int, h *httpx.Header) error {
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

func (w *adapterWriter) WriteHeader(status int, h *httpx.Header, contentLength int64) error {
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

func (w *adapterWriter) Write(p []byte) (int, error) {
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

func (w *adapterWriter) Flush() error {
	if f, ok := w.rw.(http.Flusher); ok {
		f.Flush()
		return nil
	}
	return http.NewResponseController(w.rw).Flush()
}

// Finish sets trailers through http.TrailerPrefix, which net/http and
// x/net/http2 send as a trailing HEADERS frame.
func (w *adapterWriter) Finish(trailer *httpx.Header) error {
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

func (w *adapterWriter) Hijack() (net.Conn, *bufio.Reader, error) {
	return nil, nil, httpx.ErrHijackUnsupported
}

func (w *adapterWriter) Written() bool { return w.wrote }

var _ httpx.ResponseWriter = (*adapterWriter)(nil)
