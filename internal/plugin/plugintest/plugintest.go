// Package plugintest builds request contexts and runs plugins the way the
// engine does, for plugin table tests without sockets.
package plugintest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// NewCtx returns a context for method and target ("/path?query") from
// client 127.0.0.1:40000 to server 127.0.0.1:8080 with the given header
// lines ("Name: value"). A Host line sets Req.Host.
func NewCtx(method, target string, headers ...string) *httpx.Ctx {
	c := &httpx.Ctx{}
	c.Req.Method = method
	c.Req.RequestURI = target
	path, query, _ := strings.Cut(target, "?")
	c.Req.Path = path
	c.Req.RawQuery = query
	c.Req.Proto = "HTTP/1.1"
	c.Req.Host = "example.com"
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		value = strings.TrimSpace(value)
		if strings.EqualFold(name, "Host") {
			c.Req.Host = value
			continue
		}
		c.Req.Header.Add(name, value)
	}
	c.Req.Body = http0{}
	c.Conn.RemoteAddr = netip.MustParseAddrPort("127.0.0.1:40000")
	c.Conn.LocalAddr = netip.MustParseAddrPort("127.0.0.1:8080")
	c.Conn.Server = "test"
	c.ClientIP = c.Conn.RemoteAddr.Addr()
	c.Scheme = "http"
	c.Context = context.Background()
	c.Start = time.Now()
	return c
}

// SetBody gives the request a body.
func SetBody(c *httpx.Ctx, body string) {
	c.Req.Body = strings.NewReader(body)
	c.Req.ContentLength = int64(len(body))
}

type http0 struct{}

func (http0) Read([]byte) (int, error) { return 0, io.EOF }

// Result is what a Run produced.
type Result struct {
	// Handled reports whether a plugin answered (no upstream was called).
	Handled bool
	// Upstream reports whether the fake upstream was called, and UpstreamReq
	// holds a copy of the request header it saw.
	Upstream       bool
	UpstreamHeader httpx.Header
	UpstreamPath   string
	UpstreamBody   string
	Status         int
	Header         httpx.Header
	Body           string
}

// Upstream is a fake upstream answer used by Run when no plugin answers.
type Upstream struct {
	Status int
	Header []string // "Name: value"
	Body   string
}

// Run runs plugins as one chain on c like the engine: request phase, the
// fake upstream when no plugin answered, response phase, body filters, and
// Finish. It returns the final response.
func Run(c *httpx.Ctx, up Upstream, plugins ...plugin.Plugin) Result {
	ch := plugin.NewChain(plugins...)
	ran, handled := ch.Request(c)
	var res Result
	res.Handled = handled
	if !handled {
		res.Upstream = true
		res.UpstreamHeader = c.Req.Header.Clone()
		res.UpstreamPath = c.Req.Path
		if c.Req.Body != nil {
			b, _ := io.ReadAll(c.Req.Body)
			res.UpstreamBody = string(b)
		}
		status := up.Status
		if status == 0 {
			status = 200
		}
		for _, h := range up.Header {
			name, value, _ := strings.Cut(h, ":")
			c.Resp.Header.Add(name, strings.TrimSpace(value))
		}
		c.Send(status, "", []byte(up.Body))
	}
	ch.Response(c, ran)
	var out bytes.Buffer
	var w httpx.BodyWriter = &sink{&out}
	filters := c.BodyFilters()
	for i := len(filters) - 1; i >= 0; i-- {
		w = filters[i](w)
	}
	if c.Resp.Body != nil {
		io.Copy(w, c.Resp.Body)
	}
	w.Close()
	ch.Finish(c, ran)
	res.Status = c.Resp.Status
	res.Header = c.Resp.Header.Clone()
	res.Body = out.String()
	return res
}

type sink struct{ b *bytes.Buffer }

func (s *sink) Write(p []byte) (int, error) { return s.b.Write(p) }
func (s *sink) Flush() error                { return nil }
func (s *sink) Close() error                { return nil }

// Recorder is an httpx.ResponseWriter that records what was written, for
// code that drives a ResponseWriter directly.
type Recorder struct {
	Status   int
	Header   httpx.Header
	Body     bytes.Buffer
	Trailer  httpx.Header
	Info     []int
	Finished bool
	written  bool
}

var _ httpx.ResponseWriter = (*Recorder)(nil)

func (r *Recorder) WriteInformational(status int, h *httpx.Header) error {
	r.Info = append(r.Info, status)
	return nil
}
func (r *Recorder) WriteHeader(status int, h *httpx.Header, contentLength int64) error {
	r.Status, r.written = status, true
	r.Header.CopyFrom(h)
	return nil
}
func (r *Recorder) Write(p []byte) (int, error) { return r.Body.Write(p) }
func (r *Recorder) Flush() error                { return nil }
func (r *Recorder) Finish(trailer *httpx.Header) error {
	if trailer != nil {
		r.Trailer.CopyFrom(trailer)
	}
	r.Finished = true
	return nil
}
func (r *Recorder) Hijack() (net.Conn, *bufio.Reader, error) {
	return nil, nil, httpx.ErrHijackUnsupported
}
func (r *Recorder) Written() bool { return r.written }
