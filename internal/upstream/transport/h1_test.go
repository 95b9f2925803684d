package transport

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

func backendAddr(ts *httptest.Server) string { return strings.TrimPrefix(ts.URL, "http://") }

func TestKeepAliveReuse(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %s", r.Method, r.RequestURI, r.Host, r.Header.Get("X-Req"))
	}))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{}, backendAddr(ts))
	for i := range 100 {
		req := get(fmt.Sprintf("/p/%d?q=1", i), "example.com")
		req.Header.Add("X-Req", "v")
		_, body, res, err := do(t, rt, req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := fmt.Sprintf("GET /p/%d?q=1 example.com v", i); body != want {
			t.Fatalf("body %q, want %q", body, want)
		}
		if res.Reused != (i > 0) {
			t.Fatalf("request %d: Reused=%v", i, res.Reused)
		}
	}
	if dials, reused := rt.Stats(); dials != 1 || reused != 99 {
		t.Fatalf("dials=%d reused=%d, want 1 and 99", dials, reused)
	}
}

func TestNoBodyResponsesReturnConn(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		case "/empty":
			w.Header().Set("Content-Length", "0")
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	}))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{}, backendAddr(ts))
	for _, tc := range []struct {
		method, path string
		status       int
		cl           int64
	}{{"GET", "/204", 204, 0}, {"GET", "/304", 304, 0}, {"GET", "/empty", 200, 0}, {"HEAD", "/x", 200, 5}, {"GET", "/x", 200, 5}} {
		req := get(tc.path, "h")
		req.Method = tc.method
		var resp httpx.Response
		if _, err := rt.RoundTrip(context.Background(), req, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Status != tc.status || resp.ContentLength != tc.cl {
			t.Fatalf("%s %s: status %d cl %d", tc.method, tc.path, resp.Status, resp.ContentLength)
		}
		// HEAD keeps the declared length but has no body.
		if (tc.cl == 0 || tc.method == "HEAD") && resp.Body != nil {
			t.Fatalf("%s %s: body not nil", tc.method, tc.path)
		}
		if resp.Body != nil {
			io.ReadAll(resp.Body)
		}
		if rt.idleLen() != 1 {
			t.Fatalf("%s %s: idle %d, want 1", tc.method, tc.path, rt.idleLen())
		}
	}
	if dials, _ := rt.Stats(); dials != 1 {
		t.Fatalf("dials %d", dials)
	}
}

func TestMaxIdleConns(t *testing.T) {
	const n = 5
	var arrived sync.WaitGroup
	arrived.Add(n)
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release
		io.WriteString(w, "ok")
	}))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{MaxIdleConns: 2}, backendAddr(ts))
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, body, _, err := do(t, rt, get("/", "h"))
			if err == nil && body != "ok" {
				err = fmt.Errorf("body %q", body)
			}
			errs <- err
		}()
	}
	arrived.Wait()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := rt.idleLen(); got != 2 {
		t.Fatalf("idle %d, want 2", got)
	}
	if dials, _ := rt.Stats(); dials != n {
		t.Fatalf("dials %d, want %d", dials, n)
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{IdleTimeout: config.Duration(50 * time.Millisecond)}, backendAddr(ts))
	if _, _, _, err := do(t, rt, get("/", "h")); err != nil {
		t.Fatal(err)
	}
	if rt.idleLen() != 1 {
		t.Fatalf("idle %d", rt.idleLen())
	}
	// The periodic sweep closes it without any further request.
	waitFor(t, "idle sweep", func() bool { return rt.idleLen() == 0 })
	_, _, res, err := do(t, rt, get("/", "h"))
	if err != nil || res.Reused {
		t.Fatalf("after sweep: err %v reused %v", err, res.Reused)
	}
	if dials, _ := rt.Stats(); dials != 2 {
		t.Fatalf("dials %d, want 2", dials)
	}
}

func TestIdleTimeoutCheckedOnReuse(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{IdleTimeout: config.Duration(time.Hour)}, backendAddr(ts))
	if _, _, _, err := do(t, rt, get("/", "h")); err != nil {
		t.Fatal(err)
	}
	// Age the pooled connection instead of waiting.
	rt.mu.Lock()
	rt.idle[0].idleAt = time.Now().Add(-2 * time.Hour)
	rt.mu.Unlock()
	_, _, res, err := do(t, rt, get("/", "h"))
	if err != nil || res.Reused {
		t.Fatalf("err %v reused %v, want a fresh connection", err, res.Reused)
	}
}

func TestStaleConnRetried(t *testing.T) {
	// The backend answers one request per connection, announcing nothing,
	// then closes: the pooled connection is stale when the next request
	// comes.
	closed := make(chan struct{}, 10)
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		serveScript("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")(c, br)
		c.Close()
		closed <- struct{}{}
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	for i := range 3 {
		_, body, _, err := do(t, rt, get("/", "h"))
		if err != nil || body != "ok" {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
		<-closed
	}
	if dials, reused := rt.Stats(); dials != 3 || reused != 2 {
		t.Fatalf("dials %d reused %d, want 3 and 2", dials, reused)
	}

	// A request with a body is checked before the body is read: the stale
	// connection is detected and a fresh one used.
	req := &httpx.OutRequest{Method: "POST", URI: "/", Host: "h", Body: strings.NewReader("data"), ContentLength: 4}
	if _, body, res, err := do(t, rt, req); err != nil || body != "ok" || res.Reused {
		t.Fatalf("POST on stale conn: %q %v reused=%v", body, err, res.Reused)
	}
	if dials, _ := rt.Stats(); dials != 4 {
		t.Fatalf("dials %d, want 4", dials)
	}
}

func TestStaleRetryOnlyOnce(t *testing.T) {
	// The backend answers once, then reads requests and closes without an
	// answer: the pooled connection's failure is retried once on a fresh
	// connection, whose failure is final.
	b := newRawBackend(t, serveSeq("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	if _, body, _, err := do(t, rt, get("/", "h")); err != nil || body != "ok" {
		t.Fatalf("%q %v", body, err)
	}
	_, _, _, err := do(t, rt, get("/", "h"))
	var te *httpx.TransportError
	if !errors.As(err, &te) || !te.Sent || te.Op != "read" || httpx.IsConnectError(err) {
		t.Fatalf("err %v, want a read error with Sent", err)
	}
	if n := b.accepts.Load(); n != 2 {
		t.Fatalf("accepts %d, want 2", n)
	}
}

// patternReader yields n pseudo-random bytes and hashes what it gave.
type patternReader struct {
	left  int64
	state uint64
	h     hash.Hash
}

func newPatternReader(n int64) *patternReader {
	return &patternReader{left: n, state: 88172645463325252, h: sha256.New()}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		r.state ^= r.state << 13
		r.state ^= r.state >> 7
		r.state ^= r.state << 17
		p[i] = byte(r.state)
	}
	r.left -= int64(len(p))
	r.h.Write(p)
	return len(p), nil
}

func (r *patternReader) sum() string { return hex.EncodeToString(r.h.Sum(nil)) }

func TestRequestBodyStreamed(t *testing.T) {
	const size = 50 << 20
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprintf(w, "%v %d %s %s", r.TransferEncoding, n, hex.EncodeToString(h.Sum(nil)), r.Trailer.Get("X-Checksum"))
	}))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{}, backendAddr(ts))
	for _, chunked := range []bool{true, false} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			src := newPatternReader(size)
			req := &httpx.OutRequest{Method: "PUT", URI: "/upload", Host: "h", Header: &httpx.Header{}, Body: src, ContentLength: size}
			var tr httpx.Header
			if chunked {
				req.ContentLength = -1
				tr.Add("X-Checksum", "after-body")
				req.Trailer = &tr
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, body, _, err := do(t, rt, req)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("[] %d %s ", size, src.sum())
			if chunked {
				want = fmt.Sprintf("[chunked] %d %s after-body", size, src.sum())
			}
			if body != want {
				t.Fatalf("got %q\nwant %q", body, want)
			}
			// Client and server together must not have buffered the body.
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 8<<20 {
				t.Fatalf("allocated %d bytes for a %d byte body", grown, size)
			}
		})
	}
}

func TestChunkedResponseTrailers(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status, X-Sum")
		io.WriteString(w, "part1,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("X-Sum", "abc")
	}))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{}, backendAddr(ts))
	for range 2 {
		resp, body, _, err := do(t, rt, get("/", "h"))
		if err != nil {
			t.Fatal(err)
		}
		if body != "part1,part2" || resp.ContentLength != -1 {
			t.Fatalf("body %q cl %d", body, resp.ContentLength)
		}
		if resp.Trailer.Get("grpc-status") != "0" || resp.Trailer.Get("x-sum") != "abc" {
			t.Fatalf("trailer %v", resp.Trailer.Fields())
		}
	}
	if dials, _ := rt.Stats(); dials != 1 {
		t.Fatalf("dials %d, chunked response did not return the conn", dials)
	}
}

func TestReadTimeout(t *testing.T) {
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		io.Copy(io.Discard, br) // never answers
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	req := get("/", "h")
	req.ReadTimeout = 100 * time.Millisecond
	_, _, _, err := do(t, rt, req)
	var te *httpx.TransportError
	if !errors.As(err, &te) || te.Op != "read" || !te.Timeout || !te.Sent || !httpx.IsTimeout(err) {
		t.Fatalf("err %#v, want read timeout", err)
	}
	if rt.idleLen() != 0 {
		t.Fatal("timed-out conn pooled")
	}
}

func TestContextCancel(t *testing.T) {
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		io.Copy(io.Discard, br)
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	var resp httpx.Response
	_, err := rt.RoundTrip(ctx, get("/", "h"), &resp)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rt := newH1ForTest(t, config.Upstream{ConnectionTimeout: config.Duration(time.Second)}, addr)
	_, _, _, err = do(t, rt, get("/", "h"))
	var te *httpx.TransportError
	if !errors.As(err, &te) || te.Op != "dial" || te.Sent || !httpx.IsConnectError(err) {
		t.Fatalf("err %#v, want dial error not sent", err)
	}
}

func TestInvalidFraming(t *testing.T) {
	good := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	tests := []struct {
		name   string
		resp   string
		inBody bool // the error shows while reading the body
	}{
		{"two content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false},
		{"cl and te", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"bad status line", "HTTP/1.1 2OO OK\r\n\r\n", false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", true},
		{"chunk missing CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX0\r\n\r\n", true},
		{"101 without upgrade", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newRawBackend(t, serveSeq(tt.resp, good))
			rt := newH1ForTest(t, config.Upstream{}, b.addr())
			_, _, _, err := do(t, rt, get("/", "h"))
			var te *httpx.TransportError
			if !errors.As(err, &te) || te.Op != "protocol" {
				t.Fatalf("err %v, want protocol error", err)
			}
			if rt.idleLen() != 0 {
				t.Fatal("conn with invalid framing pooled")
			}
			if _, body, res, err := do(t, rt, get("/", "h")); err != nil || body != "ok" || res.Reused {
				t.Fatalf("next request: %q %v reused=%v", body, err, res.Reused)
			}
			if n := b.accepts.Load(); n != 2 {
				t.Fatalf("accepts %d, want 2", n)
			}
		})
	}
}

func TestTruncatedBody(t *testing.T) {
	b := newRawBackend(t, serveScript("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	_, body, _, err := do(t, rt, get("/", "h"))
	if !errors.Is(err, io.ErrUnexpectedEOF) || body != "abc" {
		t.Fatalf("%q %v", body, err)
	}
}

func TestBodyCloseEarlyDiscardsConn(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100000))
	}))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{}, backendAddr(ts))
	var resp httpx.Response
	if _, err := rt.RoundTrip(context.Background(), get("/", "h"), &resp); err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	httpx.CloseBody(&resp)
	if rt.idleLen() != 0 {
		t.Fatal("half-read conn pooled")
	}
}

func TestUntilCloseBody(t *testing.T) {
	b := newRawBackend(t, serveScript("HTTP/1.1 200 OK\r\n\r\nall of it"))
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	resp, body, _, err := do(t, rt, get("/", "h"))
	if err != nil || body != "all of it" || resp.ContentLength != -1 {
		t.Fatalf("%q %v %d", body, err, resp.ContentLength)
	}
	if rt.idleLen() != 0 {
		t.Fatal("until-close conn pooled")
	}
}

func TestConnectionClose(t *testing.T) {
	b := newRawBackend(t, serveScript(
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	for range 2 {
		if _, body, res, err := do(t, rt, get("/", "h")); err != nil || body != "ok" || res.Reused {
			t.Fatalf("%q %v reused=%v", body, err, res.Reused)
		}
	}
}

func TestInformational(t *testing.T) {
	b := newRawBackend(t, serveScript("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"+
		"HTTP/1.1 100 Continue\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok"))
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	var got []string
	req := get("/", "h")
	req.OnInformational = func(status int, h *httpx.Header) error {
		got = append(got, fmt.Sprintf("%d %s", status, h.Get("Link")))
		return nil
	}
	resp, body, _, err := do(t, rt, req)
	if err != nil || body != "ok" || resp.Status != 200 || resp.Header.Get("X-Final") != "1" || resp.Header.Has("Link") {
		t.Fatalf("%d %q %v %v", resp.Status, body, err, resp.Header.Fields())
	}
	if len(got) != 2 || got[0] != "103 </s.css>; rel=preload" || got[1] != "100 " {
		t.Fatalf("informational %q", got)
	}
}

func TestUpgrade(t *testing.T) {
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") != "echo" || req.Header.Get("Connection") != "Upgrade" {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		// Bytes right after the head must reach the client.
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello;")
		io.Copy(c, br)
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	req := get("/ws", "h")
	req.Upgrade = "echo"
	var resp httpx.Response
	res, err := rt.RoundTrip(context.Background(), req, &resp)
	if err != nil || resp.Status != 101 || res.Upgraded == nil {
		t.Fatalf("status %d err %v upgraded %v", resp.Status, err, res.Upgraded)
	}
	defer res.Upgraded.Close()
	if _, err := io.WriteString(res.Upgraded, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(res.Upgraded, buf); err != nil || string(buf) != "hello;ping" {
		t.Fatalf("read %q %v", buf, err)
	}
	if rt.idleLen() != 0 {
		t.Fatal("upgraded conn pooled")
	}
}

func TestRequestFraming(t *testing.T) {
	heads := make(chan string, 10)
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			var sb strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				sb.WriteString(line)
				if line == "\r\n" {
					break
				}
			}
			req := sb.String()
			if strings.Contains(req, "Content-Length: 3\r\n") {
				io.CopyN(io.Discard, br, 3)
			}
			heads <- req
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	h := &httpx.Header{}
	h.Add("X-A", "1")
	h.Add("x-b", "two words")
	for _, tc := range []struct {
		req  *httpx.OutRequest
		want string
	}{
		{&httpx.OutRequest{Method: "GET", URI: "/a?b=c", Host: "example.com:8080", Header: h},
			"GET /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nX-A: 1\r\nx-b: two words\r\n\r\n"},
		{&httpx.OutRequest{Method: "POST", URI: "/", Host: "h"},
			"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{&httpx.OutRequest{Method: "POST", URI: "/", Host: "h", Body: strings.NewReader("abc"), ContentLength: 3},
			"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"},
	} {
		if _, _, _, err := do(t, rt, tc.req); err != nil {
			t.Fatal(err)
		}
		if got := <-heads; got != tc.want {
			t.Fatalf("head %q\nwant %q", got, tc.want)
		}
	}
}

func TestRequestBodyErrorNotForwardedComplete(t *testing.T) {
	got := make(chan string, 1)
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			got <- "head error"
			return
		}
		_, err = io.ReadAll(req.Body)
		got <- fmt.Sprint(err)
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	body := io.MultiReader(strings.NewReader("partial"), iotestErrReader{httpx.ErrBodyTooLarge})
	req := &httpx.OutRequest{Method: "POST", URI: "/", Host: "h", Body: body, ContentLength: -1}
	_, _, _, err := do(t, rt, req)
	if !errors.Is(err, httpx.ErrBodyTooLarge) {
		t.Fatalf("err %v, want ErrBodyTooLarge", err)
	}
	var te *httpx.TransportError
	if errors.As(err, &te) {
		t.Fatalf("a client body error is reported as a transport error: %v", err)
	}
	if s := <-got; s == "<nil>" {
		t.Fatal("upstream saw a complete body")
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestConcurrentRoundTrips(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", r.URL.Path, b)
	}))
	defer ts.Close()
	rt := newH1ForTest(t, config.Upstream{MaxIdleConns: 4}, backendAddr(ts))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				req := get(fmt.Sprintf("/%d/%d", g, i), "h")
				want := req.URI + ":"
				if i%2 == 1 {
					req.Method = "POST"
					req.Body = strings.NewReader("payload")
					req.ContentLength = -1
					want += "payload"
				}
				_, body, _, err := do(t, rt, req)
				if err == nil && body != want {
					err = fmt.Errorf("body %q, want %q", body, want)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := rt.idleLen(); n > 4 {
		t.Fatalf("idle %d > max 4", n)
	}
}

func TestConnReuseRules(t *testing.T) {
	tests := []struct {
		name   string
		resp   string
		reused bool // the second request reuses the connection
	}{
		{"keep-alive", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
		{"extra bytes after body", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newRawBackend(t, serveSeq(tt.resp, tt.resp))
			rt := newH1ForTest(t, config.Upstream{}, b.addr())
			for i := range 2 {
				_, body, res, err := do(t, rt, get("/", "h"))
				if err != nil || body != "ok" {
					t.Fatalf("request %d: %q %v", i, body, err)
				}
				if i == 1 && res.Reused != tt.reused {
					t.Fatalf("reused %v, want %v", res.Reused, tt.reused)
				}
			}
		})
	}
}

func TestUpgradeRefused(t *testing.T) {
	b := newRawBackend(t, serveSeq("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	req := get("/ws", "h")
	req.Upgrade = "websocket"
	_, body, res, err := do(t, rt, req)
	if err != nil || body != "no" || res.Upgraded != nil {
		t.Fatalf("%q %v %v", body, err, res.Upgraded)
	}
	if rt.idleLen() != 0 {
		t.Fatal("conn of an upgrade request pooled")
	}
}

func TestBodyReadTimeout(t *testing.T) {
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
		io.Copy(io.Discard, br) // the rest never comes
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	req := get("/", "h")
	req.ReadTimeout = 100 * time.Millisecond
	_, body, _, err := do(t, rt, req)
	if body != "abc" || !isTimeout(err) {
		t.Fatalf("%q %v, want a timeout", body, err)
	}
}

// TestGarbageResponses sends assorted broken answers: every one must give
// an error (or a short body), never a panic or a pooled connection.
func TestGarbageResponses(t *testing.T) {
	garbage := []string{
		"", "H", "HTTP/1.1", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK\r\n", "\x00\x01\x02\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
		"HTTP/1.1 999 Whatever\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 80) + "\r\n",
	}
	for i, g := range garbage {
		b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
			if _, err := http.ReadRequest(br); err == nil {
				io.WriteString(c, g)
			}
		})
		rt := newH1ForTest(t, config.Upstream{}, b.addr())
		_, _, _, err := do(t, rt, get("/", "h"))
		if err == nil {
			t.Fatalf("garbage %d accepted", i)
		}
		if rt.idleLen() != 0 {
			t.Fatalf("garbage %d: conn pooled", i)
		}
	}
}

// TestReadTimeoutOnReusedConn: the deadlines a pooled connection keeps
// from the previous request (they are not moved when nearly unchanged)
// still time out a request whose answer never comes; and a pause longer
// than the tolerance re-arms them, so a slow-but-in-time answer passes.
func TestReadTimeoutOnReusedConn(t *testing.T) {
	var n atomic.Int32
	b := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			switch n.Add(1) {
			case 1, 2:
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			case 3:
				time.Sleep(150 * time.Millisecond) // in time (200 ms)
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			default:
				io.Copy(io.Discard, br) // never answers
				return
			}
		}
	})
	rt := newH1ForTest(t, config.Upstream{}, b.addr())
	req := get("/", "h")
	req.ReadTimeout = 200 * time.Millisecond
	for i := range 2 { // back to back: the second keeps the first's deadlines
		if _, body, _, err := do(t, rt, req); err != nil || body != "ok" {
			t.Fatalf("request %d: %q %v", i+1, body, err)
		}
	}
	time.Sleep(100 * time.Millisecond) // past the tolerance: deadlines move
	if _, body, res, err := do(t, rt, req); err != nil || body != "ok" || !res.Reused {
		t.Fatalf("request 3 (answer after 150 ms of 200): %q reused=%v %v", body, res.Reused, err)
	}
	_, _, _, err := do(t, rt, req)
	var te *httpx.TransportError
	if !errors.As(err, &te) || te.Op != "read" || !te.Timeout {
		t.Fatalf("request 4: err %v, want a read timeout", err)
	}
}
