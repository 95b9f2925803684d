package engine

import (
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/metrics"
	"github.com/pingap-go/pingap/internal/tracing"
	"go.opentelemetry.io/otel/trace"
)

// serverHandler is the handler of one [servers.NAME] listener. It looks the
// server up in the current snapshot on every request, so a reload changes
// routes without touching the listener.
type serverHandler struct {
	e *Engine
	// name is the [servers.NAME] the listener serves; a reload that renames
	// a server on the same addr changes it without touching the socket.
	name atomic.Pointer[string]
	// last is the server found for name in one snapshot: requests between
	// two reloads skip the lookup by name.
	last atomic.Pointer[serverLookup]
}

type serverLookup struct {
	snap *Snapshot
	name *string
	ss   *serverState // nil: the snapshot has no such server
}

// server returns the listener's server in snap (nil when it left the
// config).
func (h *serverHandler) server(snap *Snapshot) *serverState {
	name := h.name.Load()
	if l := h.last.Load(); l != nil && l.snap == snap && l.name == name {
		return l.ss
	}
	ss := snap.servers[*name]
	h.last.Store(&serverLookup{snap: snap, name: name, ss: ss})
	return ss
}

func newServerHandler(e *Engine, name string) *serverHandler {
	h := &serverHandler{e: e}
	h.name.Store(&name)
	return h
}

// ServeHTTPX runs one request: route, plugins, proxy, response.
func (h *serverHandler) ServeHTTPX(c *httpx.Ctx) {
	e := h.e
	snap := e.snap.Load()
	e.metrics.RequestStarted()
	defer e.metrics.RequestDone()
	// The client address (trusted_proxies applied) before the server span
	// starts: its client.address must match the access log's remote_addr.
	c.ClientIP = clientIP(c, snap.trusted)
	tr := e.tracer.Load()
	var span trace.Span
	if tr != nil {
		c.Context, span = tr.StartServer(c)
		defer tr.EndServer(span, c)
	}
	defer func() {
		if v := recover(); v != nil {
			e.log.Error("panic while serving a request", slog.Any("panic", v), slog.String("path", c.Req.Path), slog.String("stack", string(debug.Stack())))
			if !c.W.Written() {
				c.Resp.Body = nil
				c.Error(500, "internal error")
				e.write(c)
			}
		}
	}()
	ss := h.server(snap)
	if ss == nil {
		// The listener's server left the config; it is draining.
		c.Error(503, "server is being removed")
		e.write(c)
		e.finish(c, nil, tr, span)
		return
	}
	if c.Conn.TLS == nil && e.acme != nil && e.acme(c) {
		e.write(c)
		e.finish(c, nil, tr, span)
		return
	}

	m, ok := ss.router.Match(c.Req.Host, c.Req.Path)
	if !ok {
		c.Error(404, "no location matches")
		e.respond(c, ss)
		e.finish(c, ss.notFound, tr, span)
		return
	}
	l := m.Value()
	c.Location = l.Name
	c.Req.Path = m.RewritePath()

	ran, handled := l.Chain.Request(c)
	if handled && ran > 0 && ran <= len(l.PluginNames) {
		e.metrics.PluginResponse(l.PluginNames[ran-1], c.Resp.Status)
	}
	if !handled {
		host := e.proxy.Forward(c, &l.Route, tr)
		if c.Hijacked {
			l.Chain.Finish(c, ran)
			e.finish(c, l.Metrics, tr, span)
			return
		}
		if host != nil {
			defer host.Done(false)
		}
	}
	l.Chain.Response(c, ran)
	applyResponseHeaders(c, l)
	e.respond(c, ss)
	l.Chain.Finish(c, ran)
	e.finish(c, l.Metrics, tr, span)
}

// respond writes the response of a request that reached server ss,
// advertising HTTP/3 when the server has it.
func (e *Engine) respond(c *httpx.Ctx, ss *serverState) {
	if ss.altSvc != "" {
		c.Resp.Header.Set("Alt-Svc", ss.altSvc)
	}
	e.write(c)
}

// applyResponseHeaders runs the location's headers_remove, headers_set and
// headers_add, in that order.
func applyResponseHeaders(c *httpx.Ctx, l *Location) {
	for _, name := range l.RespRemove {
		c.Resp.Header.Del(name)
	}
	for _, op := range l.RespSet {
		c.Resp.Header.Set(op.Name, op.Value.String(c))
	}
	for _, op := range l.RespAdd {
		c.Resp.Header.Add(op.Name, op.Value.String(c))
	}
}

// bodySink is the innermost BodyWriter: it writes to the client and counts.
type bodySink struct {
	c *httpx.Ctx
}

func (b bodySink) Write(p []byte) (int, error) {
	n, err := b.c.W.Write(p)
	b.c.BytesOut += int64(n)
	return n, err
}
func (b bodySink) Flush() error { return b.c.W.Flush() }
func (b bodySink) Close() error { return nil }

// write sends c.Resp to the client: head, body through the plugins' body
// filters, trailers.
func (e *Engine) write(c *httpx.Ctx) {
	resp := &c.Resp
	if resp.Status == 0 {
		resp.Status = 502
	}
	body := resp.Body
	defer httpx.CloseBody(resp)
	filters := c.BodyFilters()
	cl := resp.ContentLength
	if body == nil && c.Req.Method != "HEAD" {
		cl = 0
	}
	if len(filters) > 0 && body != nil {
		// Filters may change the length; they set ContentLength to -1 when
		// they do.
		cl = resp.ContentLength
	}
	noBody := c.Req.Method == "HEAD" || resp.Status < 200 || resp.Status == 204 || resp.Status == 304
	if err := c.W.WriteHeader(resp.Status, &resp.Header, cl); err != nil {
		return
	}
	if body != nil && !noBody {
		var w httpx.BodyWriter = bodySink{c}
		for i := len(filters) - 1; i >= 0; i-- {
			w = filters[i](w)
		}
		if err := e.copyBody(w, body, cl < 0); err != nil {
			// The body broke mid-way (upstream died): the response cannot be
			// completed, so it is not finished; the server closes the
			// connection and the client sees a truncated message.
			e.log.Debug("response body copy failed", slog.String("error", err.Error()))
			return
		}
		if err := w.Close(); err != nil {
			return
		}
	}
	var trailer *httpx.Header
	if resp.Trailer.Len() > 0 {
		trailer = &resp.Trailer
	}
	c.W.Finish(trailer)
}

// copyBody streams src into w. A streamed body (unknown length: chunked,
// server-sent events, long polling) is flushed after every read so nothing
// waits in a buffer.
func (e *Engine) copyBody(w httpx.BodyWriter, src io.Reader, stream bool) error {
	bp := e.copyBufs.Get().(*[]byte)
	defer e.copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if stream {
				if ferr := w.Flush(); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// finish records the request in metrics and the access log.
func (e *Engine) finish(c *httpx.Ctx, lm *metrics.LocationMetrics, tr *tracing.Tracer, span trace.Span) {
	d := time.Since(c.Start)
	if !c.Start.IsZero() {
		c.End = c.Start.Add(d) // the server's too (one clock reading)
	}
	if lm != nil {
		lm.Observe(c.Req.Method, c.Resp.Status, d, c.BytesIn, c.BytesOut)
	}
	if cs, ok := c.Resp.Header.Lookup("X-Cache-Status"); ok {
		e.metrics.CacheResponse(cs)
	}
	if al := e.accessLog.Load(); al != nil && *al != nil {
		(*al).Log(c, tr.AccessTraceID(c, span))
	}
}

// clientIP returns the client address: the peer, or, when the peer is a
// trusted proxy, the right-most X-Forwarded-For entry that is not itself a
// trusted proxy (RFC 7239 §7.4: entries left of an untrusted hop cannot be
// believed).
func clientIP(c *httpx.Ctx, trusted []netip.Prefix) netip.Addr {
	peer := c.Conn.RemoteAddr.Addr().Unmap()
	if len(trusted) == 0 || !inPrefixes(peer, trusted) {
		return peer
	}
	ip := peer
	// Walk every X-Forwarded-For value from the right.
	fields := c.Req.Header.Fields()
	for i := len(fields) - 1; i >= 0; i-- {
		if !httpx.EqualFold(fields[i].Name, "X-Forwarded-For") {
			continue
		}
		v := fields[i].Value
		for len(v) > 0 {
			part := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				part, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				return ip
			}
			a = a.Unmap()
			ip = a
			if !inPrefixes(a, trusted) {
				return a
			}
		}
	}
	return ip
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
