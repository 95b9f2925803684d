package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/rawsock"
)

// h2 is the HTTP/2 client for one addr: net/http's Transport restricted to
// HTTP/2 (ALPN "h2" over TLS, prior-knowledge h2c without TLS). HTTP/2 is
// used for gRPC upstreams, where request and response trailers matter and
// multiplexing makes connection churn rare; it is not the keep-alive hot
// path, so it converts to and from net/http types.
type h2 struct {
	addr   string
	scheme string
	rt     *http.Transport

	dials    atomic.Uint64
	requests atomic.Uint64
}

// dialError marks an error from our dial functions: nothing was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func newH2(cfg config.Upstream, addr string, tlsConf *tls.Config) *h2 {
	t := &h2{addr: addr, scheme: "http"}
	connTimeout := orDuration(cfg.ConnectionTimeout, DefaultConnectionTimeout)
	dialer := &net.Dialer{Timeout: connTimeout}
	maxIdle := cfg.MaxIdleConns
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdleConns
	}
	var protos http.Protocols
	tr := &http.Transport{
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        maxIdle,
		MaxIdleConnsPerHost: maxIdle,
		IdleConnTimeout:     orDuration(cfg.IdleTimeout, DefaultIdleTimeout),
		DisableCompression:  true,
		Proxy:               nil,
	}
	if tlsConf != nil {
		t.scheme = "https"
		conf := tlsConf.Clone()
		conf.NextProtos = []string{"h2"}
		tr.TLSClientConfig = conf
		protos.SetHTTP2(true)
		// Our own TLS dial marks handshake failures as dial errors; net/http
		// reads the negotiated protocol from the returned *tls.Conn.
		tr.DialTLSContext = func(ctx context.Context, network, a string) (net.Conn, error) {
			t.dials.Add(1)
			ctx, cancel := context.WithTimeout(ctx, connTimeout)
			defer cancel()
			nc, err := dialer.DialContext(ctx, network, a)
			if err != nil {
				return nil, &dialError{err}
			}
			tc := tls.Client(rawsock.WrapTCP(nc), conf)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, &dialError{err}
			}
			if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
				tc.Close()
				return nil, &dialError{errors.New("upstream did not negotiate h2 (ALPN " + p + ")")}
			}
			return tc, nil
		}
	} else {
		protos.SetUnencryptedHTTP2(true)
		tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
			t.dials.Add(1)
			nc, err := dialer.DialContext(ctx, network, a)
			if err != nil {
				return nil, &dialError{err}
			}
			return rawsock.WrapTCP(nc), nil
		}
	}
	tr.Protocols = &protos
	t.rt = tr
	return t
}

// Stats implements Stats; reused is requests that did not open a connection.
func (t *h2) Stats() (dials, reused uint64) {
	d, r := t.dials.Load(), t.requests.Load()
	if r < d {
		return d, 0
	}
	return d, r - d
}

// CloseIdle implements httpx.RoundTripper.
func (t *h2) CloseIdle() { t.rt.CloseIdleConnections() }

// RoundTrip implements httpx.RoundTripper.
func (t *h2) RoundTrip(ctx context.Context, req *httpx.OutRequest, resp *httpx.Response) (httpx.RoundTripResult, error) {
	var res httpx.RoundTripResult
	if req.Upgrade != "" {
		// Not a connect error, although nothing was sent: a connect error
		// is retried on another addr (all addrs of the upstream speak
		// HTTP/2, so that cannot help) and counts toward passive marking,
		// which let any client take an addr down with a few upgrade
		// requests. The proxy answers 502.
		return res, &httpx.TransportError{Op: "protocol", Sent: true, Err: errors.New("upgrade is not supported over HTTP/2 upstreams")}
	}
	t.requests.Add(1)
	path, query, _ := strings.Cut(req.URI, "?")
	hreq := &http.Request{
		Method:     req.Method,
		URL:        &url.URL{Scheme: t.scheme, Host: t.addr, Opaque: path, RawQuery: query},
		Host:       req.Host,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     make(http.Header, headerLen(req.Header)),
	}
	if req.Header != nil {
		for _, f := range req.Header.Fields() {
			hreq.Header[http.CanonicalHeaderKey(f.Name)] = append(hreq.Header[http.CanonicalHeaderKey(f.Name)], f.Value)
		}
	}
	// gRPC requires "te: trailers" (it detects proxies that drop trailers);
	// a proxy strips TE as hop-by-hop, so restore it for gRPC requests.
	if ct := hreq.Header["Content-Type"]; len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc") {
		hreq.Header["Te"] = []string{"trailers"}
	}
	var rb *reqBody
	if req.Body != nil && req.ContentLength != 0 {
		hreq.ContentLength = req.ContentLength
		if req.Trailer != nil {
			// A non-nil map tells the HTTP/2 client to send the trailers it
			// holds once the body ended; reqBody fills it at io.EOF. The
			// names are announced in a "trailer" field (net/http servers
			// only keep announced trailers): those of a forwarded Trailer
			// field and those already known.
			hreq.Trailer = http.Header{}
			for _, v := range hreq.Header["Trailer"] {
				for name := range strings.SplitSeq(v, ",") {
					if name = strings.TrimSpace(name); name != "" {
						hreq.Trailer[http.CanonicalHeaderKey(name)] = nil
					}
				}
			}
			delete(hreq.Header, "Trailer")
			for _, f := range req.Trailer.Fields() {
				hreq.Trailer[http.CanonicalHeaderKey(f.Name)] = nil
			}
		}
		rb = &reqBody{r: req.Body, src: req.Trailer, dst: hreq.Trailer}
		hreq.Body = rb
		hreq.GetBody = rb.rewind
	} else {
		hreq.Body = http.NoBody
	}

	// read_timeout bounds the wait for the head; the timer's cancel must not
	// outlive the body, so it stops once RoundTrip returns.
	ctx, cancel := context.WithCancel(ctx)
	var timedOut atomic.Bool
	var timer *time.Timer
	if req.ReadTimeout > 0 {
		timer = time.AfterFunc(req.ReadTimeout, func() { timedOut.Store(true); cancel() })
	}
	hres, err := t.rt.RoundTrip(hreq.WithContext(ctx))
	if timer != nil && !timer.Stop() && timedOut.Load() {
		if err == nil {
			hres.Body.Close()
		}
		cancel()
		rb.stop()
		return res, &httpx.TransportError{Op: "read", Sent: true, Timeout: true, Err: context.DeadlineExceeded}
	}
	if err != nil {
		cancel()
		// net/http may return (a canceled context) before its body
		// writer is done: stop waits for its Read. A rewound body for
		// the proxy's retry (below) is a new reader over kept and r.
		rb.stop()
		var de *dialError
		if errors.As(err, &de) {
			if rb != nil && rb.touched {
				// The dial failed on net/http's resend after an earlier
				// attempt had read body bytes (a GOAWAY'd stream). A
				// dial error promises the proxy that req can be sent
				// again as is, so req.Body becomes the rewound body; one
				// too long to replay makes this a failure after sending.
				if rb.over {
					return res, &httpx.TransportError{Op: "write", Sent: true, Err: de.err}
				}
				req.Body = io.MultiReader(bytes.NewReader(rb.kept), rb.r)
			}
			return res, &httpx.TransportError{Op: "dial", Err: de.err}
		}
		var be *errBodySource
		if errors.As(err, &be) {
			return res, be
		}
		return res, &httpx.TransportError{Op: "read", Sent: true, Timeout: isTimeout(err), Err: err}
	}
	resp.Status = hres.StatusCode
	resp.Header.Reset()
	for k, vs := range hres.Header {
		for _, v := range vs {
			resp.Header.Add(k, v)
		}
	}
	resp.Trailer.Reset()
	resp.ContentLength = hres.ContentLength
	if hres.StatusCode == 204 || hres.StatusCode == 304 || req.Method == "HEAD" {
		resp.ContentLength = 0
	}
	resp.Body = &respBody{res: hres, dst: &resp.Trailer, cancel: cancel, req: rb}
	return res, nil
}

func headerLen(h *httpx.Header) int {
	if h == nil {
		return 0
	}
	return h.Len()
}

// replayLimit is how much of a request body reqBody keeps for a resend.
const replayLimit = 64 << 10

// errNoReplay is GetBody's answer when the body cannot be sent again.
var errNoReplay = errors.New("request body too large to resend")

// reqBody is the request body handed to net/http: on io.EOF it copies the
// request trailers (filled by the server once the client body ended) into
// the map net/http sends as HTTP/2 trailers.
//
// It also keeps the first replayLimit bytes it has yielded, so that GetBody
// (rewind) can hand net/http the same body again. net/http's HTTP/2 client
// resends a request on a new connection when the upstream did not process
// its stream (a GOAWAY during a graceful shutdown or restart, or
// REFUSED_STREAM), but only with GetBody once body bytes were written;
// without it a backend's rolling restart turned in-flight POSTs into 502s.
// net/http calls GetBody after the failed attempt's body writer is done, so
// the same reader can be rewound. A body longer than replayLimit is not
// kept, and the request then fails as before.
type reqBody struct {
	r   io.Reader
	src *httpx.Header
	dst http.Header

	kept    []byte // the first bytes read from r, while not over
	over    bool   // more than replayLimit bytes read: no replay
	pos     int    // replay position in kept
	touched bool   // r was read from

	// net/http reads the body on its own goroutine, which may outlive
	// RoundTrip: the upstream can answer before the body ended (gRPC
	// streams, an early 401). r belongs to the client's request, which
	// the server reuses once the handler returns, so stop (from the
	// response body's Close, or a failed RoundTrip) waits for a Read in
	// progress and makes later Reads fail without touching r. mu is held
	// across each Read of r.
	mu      sync.Mutex
	stopped bool
}

// errBodyStopped is what a Read after stop returns.
var errBodyStopped = errors.New("request body no longer available: the exchange ended")

// stop ends the use of r; see the mu field. A nil b does nothing.
func (b *reqBody) stop() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
}

// rewind is the request's GetBody.
func (b *reqBody) rewind() (io.ReadCloser, error) {
	if b.over {
		return nil, errNoReplay
	}
	b.pos = 0
	return b, nil
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return 0, errBodyStopped
	}
	if b.pos < len(b.kept) {
		n := copy(p, b.kept[b.pos:])
		b.pos += n
		return n, nil
	}
	b.touched = true
	n, err := b.r.Read(p)
	if n > 0 && !b.over {
		if len(b.kept)+n > replayLimit {
			b.over, b.kept = true, nil
		} else {
			b.kept = append(b.kept, p[:n]...)
		}
		b.pos = len(b.kept)
	}
	if err == io.EOF && b.src != nil && b.dst != nil {
		for _, f := range b.src.Fields() {
			k := http.CanonicalHeaderKey(f.Name)
			b.dst[k] = append(b.dst[k], f.Value)
		}
		b.src = nil
	}
	if err != nil && err != io.EOF {
		err = &errBodySource{err}
	}
	return n, err
}

func (b *reqBody) Close() error { return nil }

// respBody is the response body: at io.EOF the HTTP/2 trailers (gRPC's
// grpc-status and grpc-message) are copied into the response's Trailer.
type respBody struct {
	res    *http.Response
	dst    *httpx.Header
	cancel context.CancelFunc
	req    *reqBody // stopped at Close; may be nil
	done   bool
}

func (b *respBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.res.Body.Read(p)
	if err == io.EOF {
		b.done = true
		for k, vs := range b.res.Trailer {
			for _, v := range vs {
				b.dst.Add(k, v)
			}
		}
		b.res.Body.Close()
		b.cancel()
	} else if err != nil {
		err = &httpx.TransportError{Op: "read", Sent: true, Timeout: isTimeout(err), Err: err}
	}
	return n, err
}

// Close ends the exchange. It returns once net/http no longer reads the
// request body (the engine calls it after the client's response is
// complete, before the handler returns).
func (b *respBody) Close() error {
	if !b.done {
		b.done = true
		b.res.Body.Close()
		b.cancel()
	}
	b.req.stop()
	b.req = nil
	return nil
}
