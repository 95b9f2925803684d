package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/pingap-go/pingap/internal/httpx"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer serves h on 127.0.0.1:0 and returns the address.
func startServer(t testing.TB, h Handler, opts Options) (string, *Server) {
	t.Helper()
	return startServerOn(t, "tcp", "127.0.0.1:0", h, opts)
}

func startServerOn(t testing.TB, network, addr string, h Handler, opts Options) (string, *Server) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s := New(h, opts)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String(), s
}

// echo answers with the request's facts in X- fields and the body echoed;
// request trailers come back as response trailers (chunked).
func echo(c *httpx.Ctx) {
	body, err := io.ReadAll(c.Req.Body)
	var h httpx.Header
	if err != nil {
		h.Add("Content-Type", "text/plain")
		msg := err.Error()
		c.W.WriteHeader(400, &h, int64(len(msg)))
		c.W.Write([]byte(msg))
		c.W.Finish(nil)
		return
	}
	h.Add("X-Method", c.Req.Method)
	h.Add("X-Path", c.Req.Path)
	h.Add("X-Query", c.Req.RawQuery)
	h.Add("X-Uri", c.Req.RequestURI)
	h.Add("X-Host", c.Req.Host)
	h.Add("X-Proto", c.Req.Proto)
	h.Add("X-Scheme", c.Scheme)
	h.Add("X-Server", c.Conn.Server)
	h.Add("X-Client-Ip", c.ClientIP.String())
	h.Add("X-Content-Length", fmt.Sprint(c.Req.ContentLength))
	h.Add("X-Host-Field", c.Req.Header.Get("Host"))
	if c.Req.Trailer.Len() > 0 {
		h.Add("Trailer", "X-Echo-Trailer")
		c.W.WriteHeader(200, &h, -1)
		c.W.Write(body)
		var tr httpx.Header
		tr.Add("X-Echo-Trailer", c.Req.Trailer.Get("X-Sum"))
		c.W.Finish(&tr)
		return
	}
	c.W.WriteHeader(200, &h, int64(len(body)))
	c.W.Write(body)
	c.W.Finish(nil)
}

type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one response (method tells HEAD framing).
func (c *rawClient) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

// expectClosed checks that the server closes the connection (EOF or reset)
// with nothing more to read.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.br.ReadByte()
	if err == nil {
		c.t.Fatalf("connection still open, read %q", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("connection not closed by the server")
	}
}

func TestKeepAlive(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{Name: "web"})
	c := dialRaw(t, addr)
	for i, path := range []string{"/one", "/two/../three"} {
		c.send("GET " + path + "?q=" + fmt.Sprint(i) + " HTTP/1.1\r\nHost: example.com\r\n\r\n")
		resp, _ := c.read("GET")
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("request %d: status %d close %v", i, resp.StatusCode, resp.Close)
		}
		want := map[string]string{"X-Method": "GET", "X-Host": "example.com", "X-Proto": "HTTP/1.1",
			"X-Scheme": "http", "X-Server": "web", "X-Client-Ip": "127.0.0.1", "X-Query": fmt.Sprint("q=", i)}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("request %d: %s = %q, want %q", i, k, got, v)
			}
		}
		if resp.Header.Get("Date") == "" {
			t.Error("no Date")
		}
	}
}

func TestNormalizedPathAndURI(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send("GET /a//b/%2e%2E/c/./d?x=%2F HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, _ := c.read("GET")
	if p, u := resp.Header.Get("X-Path"), resp.Header.Get("X-Uri"); p != "/a/c/d" || u != "/a//b/%2e%2E/c/./d?x=%2F" {
		t.Fatalf("path %q uri %q", p, u)
	}
}

func TestPipelined(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		"HEAD /3 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /4 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"GET /5 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	for i, want := range []struct{ method, path, body string }{
		{"GET", "/1", ""}, {"POST", "/2", "hello"}, {"HEAD", "/3", ""}, {"POST", "/4", "abc"}, {"GET", "/5", ""},
	} {
		resp, body := c.read(want.method)
		if resp.StatusCode != 200 || resp.Header.Get("X-Path") != want.path || body != want.body {
			t.Fatalf("response %d: status %d path %q body %q", i, resp.StatusCode, resp.Header.Get("X-Path"), body)
		}
	}
	c.expectClosed()
}

func TestChunkedRequestTrailersEchoed(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 1234\r\n\r\n")
	resp, body := c.read("POST")
	if resp.StatusCode != 200 || body != "hello world" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("response not chunked: %v", resp.TransferEncoding)
	}
	if got := resp.Trailer.Get("X-Echo-Trailer"); got != "1234" {
		t.Fatalf("trailer %q (%v)", got, resp.Trailer)
	}
	if resp.Header.Get("X-Content-Length") != "-1" {
		t.Fatalf("ContentLength %s", resp.Header.Get("X-Content-Length"))
	}
	// The connection is still usable.
	c.send("GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != "/after" {
		t.Fatal("connection not reusable after a chunked body")
	}
}

func TestMalformedChunkedBody(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
	resp, _ := c.read("POST")
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.expectClosed()
}

func TestExpectContinue(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send("PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	if blank, _ := c.br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("got %q after 100", blank)
	}
	c.send("data")
	resp, body := c.read("PUT")
	if resp.StatusCode != 200 || body != "data" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}

func TestExpectContinueRefusedClosesConn(t *testing.T) {
	// A handler that answers without reading the body: no 100 is sent and
	// the connection must close (the client may or may not send the body).
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		c.W.WriteHeader(413, nil, 0)
		c.W.Finish(nil)
	}), Options{})
	c := dialRaw(t, addr)
	c.send("PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	resp, _ := c.read("PUT")
	if resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("status %d close %v", resp.StatusCode, resp.Close)
	}
	c.expectClosed()
}

func TestHeaderTooLarge(t *testing.T) {
	var called atomic.Bool
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) { called.Store(true); echo(c) }), Options{MaxHeaderBytes: 8 << 10})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n")
	resp, body := c.read("GET")
	if resp.StatusCode != 431 || !resp.Close || resp.Header.Get("Content-Type") != "application/json" ||
		body != `{"error":"request header fields too large"}` {
		t.Fatalf("status %d close %v body %q", resp.StatusCode, resp.Close, body)
	}
	c.expectClosed()
	if called.Load() {
		t.Fatal("handler called")
	}
}

// TestHygiene sends what RFC 9112 says a server MUST reject: each gets its
// status with the JSON error body and Connection: close, and the handler
// never runs.
func TestHygiene(t *testing.T) {
	var called atomic.Int32
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) { called.Add(1); echo(c) }), Options{MaxHeaderBytes: 1024})
	tests := []struct {
		name, req string
		status    int
	}{
		{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
		{"bare LF", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400},
		{"NUL", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
		{"invalid Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", 400},
		{"two Content-Lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE not chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400},
		{"TE unknown coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"bad method", "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad field name", "GET / HTTP/1.1\r\nHost: h\r\nA\"b: c\r\n\r\n", 400},
		{"bad field value", "GET / HTTP/1.1\r\nHost: h\r\nX: \x7f\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  b\r\n\r\n", 400},
		{"asterisk GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"authority-form GET", "GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"CONNECT", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501},
		{"HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505},
		{"head too large", "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("b", 2000) + "\r\n\r\n", 431},
		{"bad path encoding", "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(tt.req)
			resp, body := c.read("GET")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			if !resp.Close || !strings.HasPrefix(body, `{"error":"`) || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("close %v body %q", resp.Close, body)
			}
			c.expectClosed()
		})
	}
	if n := called.Load(); n != 0 {
		t.Fatalf("handler called %d times", n)
	}
}

func TestSlowlorisTimeout(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{ReadHeaderTimeout: 300 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n")
	// Dribble a byte now and then: the head deadline is not extended.
	for range 3 {
		time.Sleep(50 * time.Millisecond)
		c.send("X")
	}
	c.expectClosed()

	// Same for the second request of a keep-alive connection, once its
	// first byte arrived.
	c = dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	c.send("GET / HTTP/1.1\r\n")
	c.expectClosed()
}

func TestIdleTimeout(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{IdleTimeout: 200 * time.Millisecond, ReadHeaderTimeout: 5 * time.Second})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	start := time.Now()
	c.expectClosed()
	if time.Since(start) > 4*time.Second {
		t.Fatal("idle connection outlived the idle timeout by far")
	}
}

// TestIdleTimeoutFromHandlerEnd: a handler that tells when it finished
// (Ctx.End, the engine's clock reading for metrics) sets where the idle
// timeout counts from: here an hour's timeout that the End of an hour
// ago (less 200 ms) makes end at once, where the server's own reading
// would keep the connection for the hour.
func TestIdleTimeoutFromHandlerEnd(t *testing.T) {
	h := HandlerFunc(func(c *httpx.Ctx) {
		echo(c)
		c.End = time.Now().Add(-time.Hour + 200*time.Millisecond)
	})
	addr, _ := startServer(t, h, Options{IdleTimeout: time.Hour, ReadHeaderTimeout: 5 * time.Second})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	c.expectClosed() // within its 5 s
}

// TestIdleBuffersReleased waits past the release window so the buffers go
// back to the pools, then sends the next request: it must be served
// normally (the byte read without buffers is replayed), over plain TCP and
// over TLS (a read timeout must not break the TLS state).
func TestIdleBuffersReleased(t *testing.T) {
	cert, pool := selfSigned(t)
	for _, useTLS := range []bool{false, true} {
		opts := Options{idleRelease: 50 * time.Millisecond}
		if useTLS {
			opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		}
		addr, _ := startServer(t, HandlerFunc(echo), opts)
		c := dialRaw(t, addr)
		if useTLS {
			tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			c.conn = tc
			c.br = bufio.NewReader(tc)
		}
		c.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
		c.read("GET")
		time.Sleep(200 * time.Millisecond)
		c.send("POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz")
		resp, body := c.read("POST")
		if resp.Header.Get("X-Path") != "/b" || body != "xyz" {
			t.Fatalf("tls=%v: path %q body %q", useTLS, resp.Header.Get("X-Path"), body)
		}
		// And once more with the buffers kept (within the window).
		c.send("GET /c HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != "/c" {
			t.Fatalf("tls=%v: third request", useTLS)
		}
	}
}

func TestBodylessResponses(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		status := 200
		switch c.Req.Path {
		case "/204":
			status = 204
		case "/304":
			status = 304
		}
		var h httpx.Header
		h.Add("Content-Length", "999") // framing fields from the handler are ignored
		h.Add("Transfer-Encoding", "gzip")
		c.W.WriteHeader(status, &h, 5)
		c.W.Write([]byte("hello")) // must not reach the wire
		c.W.Finish(nil)
	}), Options{})
	c := dialRaw(t, addr)
	// All on one connection: a body sent by mistake would break the framing
	// of the next response.
	c.send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, _ := c.read("HEAD")
	if resp.StatusCode != 200 || resp.ContentLength != 5 {
		t.Fatalf("HEAD: status %d length %d", resp.StatusCode, resp.ContentLength)
	}
	for _, p := range []string{"/204", "/304"} {
		c.send("GET " + p + " HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("GET")
		if resp.StatusCode != map[string]int{"/204": 204, "/304": 304}[p] || body != "" || resp.Header.Get("Content-Length") != "" {
			t.Fatalf("%s: status %d body %q header %v", p, resp.StatusCode, body, resp.Header)
		}
	}
	c.send("GET /200 HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, body := c.read("GET")
	if resp.StatusCode != 200 || body != "hello" || resp.TransferEncoding != nil {
		t.Fatalf("status %d body %q te %v", resp.StatusCode, body, resp.TransferEncoding)
	}
}

func TestHTTP10CloseDelimited(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		c.W.WriteHeader(200, nil, -1)
		c.W.Write([]byte("part1,"))
		c.W.Flush()
		c.W.Write([]byte("part2"))
		c.W.Finish(nil)
	}), Options{})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.0\r\n\r\n")
	all, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatal(err)
	}
	s := string(all)
	if !strings.HasPrefix(s, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(s, "\r\n\r\npart1,part2") ||
		strings.Contains(s, "chunked") || !strings.Contains(s, "Connection: close\r\n") {
		t.Fatalf("got %q", s)
	}
}

func TestHTTP10KeepAlive(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	for range 2 {
		c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, _ := c.read("GET")
		if resp.Close || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("close %v connection %q", resp.Close, resp.Header.Get("Connection"))
		}
	}
	c.send("GET / HTTP/1.0\r\n\r\n")
	if resp, _ := c.read("GET"); !resp.Close {
		t.Fatal("HTTP/1.0 without keep-alive kept open")
	}
	c.expectClosed()
}

func TestConnectionClose(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	resp, _ := c.read("GET")
	if !resp.Close {
		t.Fatalf("close %v", resp.Close)
	}
	c.expectClosed()
}

func TestPanicAnswers500(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		if c.Req.Path == "/panic" {
			panic("boom")
		}
		echo(c)
	}), Options{})
	c := dialRaw(t, addr)
	c.send("GET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, body := c.read("GET")
	if resp.StatusCode != 500 || body != `{"error":"internal server error"}` || !resp.Close {
		t.Fatalf("status %d body %q close %v", resp.StatusCode, body, resp.Close)
	}
	c.expectClosed()
	c = dialRaw(t, addr)
	c.send("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := c.read("GET"); resp.StatusCode != 200 {
		t.Fatalf("after panic: status %d", resp.StatusCode)
	}
}

func TestNoResponseAnswers500(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {}), Options{})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, body := c.read("GET")
	if resp.StatusCode != 500 || !strings.Contains(body, "error") {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}

func TestUnreadBodyDrained(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		c.W.WriteHeader(200, nil, 2)
		c.W.Write([]byte("ok"))
		c.W.Finish(nil)
	}), Options{})
	c := dialRaw(t, addr)
	c.send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789")
	c.send("POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	c.send("GET /c HTTP/1.1\r\nHost: h\r\n\r\n")
	for i := range 3 {
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "ok" || resp.Close {
			t.Fatalf("response %d: status %d body %q close %v", i, resp.StatusCode, body, resp.Close)
		}
	}
}

func TestLargeUnreadBodyCloses(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		c.W.WriteHeader(200, nil, 0)
		c.W.Finish(nil)
	}), Options{})
	c := dialRaw(t, addr)
	c.send(fmt.Sprintf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", 10<<20))
	resp, _ := c.read("POST")
	if !resp.Close {
		t.Fatal("connection kept with 10MB of unread body")
	}
}

// TestEarlyAnswerSurvivesUpload: an answer given before a large upload
// was read (an early 413) reaches a client that keeps sending, whole: the
// server half-closes and discards input instead of closing with unread
// input, which would reset the connection and drop what is still queued
// for the client.
func TestEarlyAnswerSurvivesUpload(t *testing.T) {
	answer := bytes.Repeat([]byte("413 "), 256<<10) // 1 MB: more than socket buffers take at once
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		var h httpx.Header
		h.Add("Content-Type", "text/plain")
		c.W.WriteHeader(413, &h, int64(len(answer)))
		c.W.Write(answer)
		c.W.Finish(nil)
	}), Options{})
	for i := range 3 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		const size = 8 << 20
		fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", size)
		go func() { // keeps sending while the answer comes back
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := conn.Write(chunk); err != nil {
					return
				}
			}
		}()
		// Read only once the server is done writing what its buffers take
		// and has finished with the request (the bad case: it closes).
		time.Sleep(200 * time.Millisecond)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			t.Fatalf("attempt %d: the early answer was lost: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != 413 || err != nil || len(body) != len(answer) || !resp.Close {
			t.Fatalf("attempt %d: %d close=%v, %d of %d bytes, %v", i, resp.StatusCode, resp.Close, len(body), len(answer), err)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		httpx.SetBodyLimit(&c.Req, 4)
		echo(c)
	}), Options{})
	c := dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n0\r\n\r\n")
	resp, body := c.read("POST")
	if resp.StatusCode != 400 || body != httpx.ErrBodyTooLarge.Error() {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}

func TestInformational(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		var h httpx.Header
		h.Add("Link", "</style.css>; rel=preload")
		if err := c.W.WriteInformational(103, &h); err != nil {
			t.Error(err)
		}
		c.W.WriteHeader(200, nil, 0)
		c.W.Finish(nil)
	}), Options{})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, _ := c.read("GET")
	if resp.StatusCode != 103 || resp.Header.Get("Link") == "" {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp, _ := c.read("GET"); resp.StatusCode != 200 {
		t.Fatalf("final status %d", resp.StatusCode)
	}
}

func TestHijack(t *testing.T) {
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		var h httpx.Header
		h.Add("Upgrade", "echo")
		c.W.WriteHeader(101, &h, -1)
		nc, br, err := c.W.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		go func() {
			defer nc.Close()
			line, _ := br.ReadString('\n')
			io.WriteString(nc, "echo:"+line)
		}()
	}), Options{})
	c := dialRaw(t, addr)
	// The first upgraded bytes arrive with the head: they must be in the
	// hijacker's reader.
	c.send("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" || resp.Header.Get("Connection") != "Upgrade" {
		t.Fatalf("resp %v err %v", resp, err)
	}
	line, err := c.br.ReadString('\n')
	if err != nil || line != "echo:ping\n" {
		t.Fatalf("got %q, %v", line, err)
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	addr, s := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		if c.Req.Path == "/slow" {
			close(entered)
			<-release
		}
		echo(c)
	}), Options{})

	idle := dialRaw(t, addr)
	idle.send("GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
	idle.read("GET")

	busy := dialRaw(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- s.Shutdown(context.Background()) }()

	idle.expectClosed() // idle keep-alive connection closed at once
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		// The listener is closed; on some systems the dial may still be
		// accepted by the kernel backlog, so only a served request would
		// be an error: nothing to assert here beyond Shutdown's result.
		_ = err
	}
	close(release)
	resp, _ := busy.read("GET")
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("in-flight: status %d close %v", resp.StatusCode, resp.Close)
	}
	select {
	case err := <-shutdownDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the request finished")
	}
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{})
	addr, s := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		close(entered)
		<-release
	}), Options{})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	c.expectClosed()
}

func TestSetOptionsAppliesToNextRequest(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{Name: "a"})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := c.read("GET"); resp.Header.Get("X-Server") != "a" {
		t.Fatal("name a")
	}
	s.SetOptions(Options{Name: "b", Logger: quietLogger()})
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := c.read("GET"); resp.Header.Get("X-Server") != "b" {
		t.Fatal("SetOptions not applied on the open connection")
	}
}

func TestOnConnHook(t *testing.T) {
	var open atomic.Int32
	closed := make(chan struct{}, 1)
	addr, _ := startServer(t, HandlerFunc(echo), Options{OnConn: func(o bool) {
		if o {
			open.Add(1)
		} else {
			open.Add(-1)
			closed <- struct{}{}
		}
	}})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	c.read("GET")
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("OnConn(false) not called")
	}
	if open.Load() != 0 {
		t.Fatalf("open = %d", open.Load())
	}
}

func TestIPv6Listener(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	ln.Close()
	addr, _ := startServerOn(t, "tcp", "[::1]:0", HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n")
	resp, _ := c.read("GET")
	if resp.Header.Get("X-Client-Ip") != "::1" || resp.Header.Get("X-Host") != "[::1]" {
		t.Fatalf("client ip %q host %q", resp.Header.Get("X-Client-Ip"), resp.Header.Get("X-Host"))
	}
}

func TestNetHTTPClient(t *testing.T) {
	// A stock client (keep-alive pool, its own framing) against the server.
	addr, _ := startServer(t, HandlerFunc(echo), Options{})
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 5 {
		resp, err := client.Post("http://"+addr+"/p", "text/plain", strings.NewReader(strings.Repeat("x", i*3000)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) != i*3000 {
			t.Fatalf("status %d len %d", resp.StatusCode, len(body))
		}
	}
}

// TestSlowReaderTimesOut: a client that stops reading cannot block a
// handler's writes forever.
func TestSlowReaderTimesOut(t *testing.T) {
	result := make(chan error, 1)
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		c.W.WriteHeader(200, nil, -1)
		chunk := make([]byte, 64<<10)
		var err error
		for i := 0; i < 4096 && err == nil; i++ { // up to 256 MB
			_, err = c.W.Write(chunk)
		}
		result <- err
	}), Options{sendTimeout: 200 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	select {
	case err := <-result:
		if !isTimeout(err) {
			t.Fatalf("write error %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler still writing to a client that does not read")
	}
}

func TestShutdownTwice(t *testing.T) {
	addr, s := startServer(t, HandlerFunc(echo), Options{})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			errs <- s.Shutdown(ctx)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c.expectClosed()
}

// TestSlowBodyTimesOut: a client that stops sending its body cannot hold
// the handler forever.
func TestSlowBodyTimesOut(t *testing.T) {
	result := make(chan error, 1)
	addr, _ := startServer(t, HandlerFunc(func(c *httpx.Ctx) {
		_, err := io.ReadAll(c.Req.Body)
		result <- err
		c.W.WriteHeader(408, nil, 0)
		c.W.Finish(nil)
	}), Options{sendTimeout: 200 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
	select {
	case err := <-result:
		if !isTimeout(err) {
			t.Fatalf("body read error %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler still waiting for a stalled body")
	}
}

// TestParkedConnection: a keep-alive connection idle past the release
// window is parked (its wait continues on a new goroutine) again and again
// and keeps serving; the OnConn hook hears of its close exactly once; a
// parked connection is idle for Shutdown, which closes it at once.
func TestParkedConnection(t *testing.T) {
	var opened, closed atomic.Int32
	opts := Options{idleRelease: 20 * time.Millisecond, OnConn: func(open bool) {
		if open {
			opened.Add(1)
		} else {
			closed.Add(1)
		}
	}}
	addr, s := startServer(t, HandlerFunc(echo), opts)
	c := dialRaw(t, addr)
	time.Sleep(60 * time.Millisecond) // parked before its first request
	for i := range 3 {
		path := fmt.Sprintf("/p%d", i)
		c.send("GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp, _ := c.read("GET"); resp.Header.Get("X-Path") != path {
			t.Fatalf("request %d: X-Path %q", i, resp.Header.Get("X-Path"))
		}
		time.Sleep(60 * time.Millisecond) // parked again
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a parked connection: %v", err)
	}
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("parked connection still open after Shutdown")
	}
	for i := 0; i < 200 && closed.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond) // the hook runs just after the conn is forgotten
	}
	if opened.Load() != 1 || closed.Load() != 1 {
		t.Fatalf("OnConn: %d opens, %d closes, want 1 and 1", opened.Load(), closed.Load())
	}
}

// TestConnSize keeps the per-connection state within the allocator's
// 320-byte size class: every keep-alive connection holds one, idle or not
// (the per-request part, reqState, is pooled and held only while serving).
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 320 {
		t.Fatalf("conn is %d bytes, over the 320-byte size class", n)
	}
}
