package transport

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

// fixedBackend answers every request head on a connection with the same
// 512-byte response, reading heads line by line (no allocation per request,
// so the benchmark measures the client).
func fixedBackend(b *testing.B) string {
	resp := "HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/plain\r\nContent-Length: 512\r\n\r\n" + strings.Repeat("x", 512)
	be := newRawBackend(b, func(c net.Conn, br *bufio.Reader) {
		out := []byte(resp)
		for {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) == 2 {
					break
				}
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	})
	return be.addr()
}

// BenchmarkRoundTripKeepAlive is one GET with a few header fields and a
// 512-byte response over a pooled loopback connection: the proxy's hot path.
func BenchmarkRoundTripKeepAlive(b *testing.B) {
	rt := newH1ForTest(b, config.Upstream{}, fixedBackend(b))
	h := &httpx.Header{}
	h.Add("User-Agent", "bench")
	h.Add("Accept", "*/*")
	h.Add("X-Forwarded-For", "127.0.0.1")
	req := &httpx.OutRequest{Method: "GET", URI: "/index.html?a=1", Host: "example.com", Header: h, ReadTimeout: 0}
	var resp httpx.Response
	buf := make([]byte, 4096)
	ctx := context.Background()
	run := func() {
		if _, err := rt.RoundTrip(ctx, req, &resp); err != nil {
			b.Fatal(err)
		}
		for {
			_, err := resp.Body.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		httpx.CloseBody(&resp)
	}
	run()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		run()
	}
	b.StopTimer()
	if dials, _ := rt.Stats(); dials != 1 {
		b.Fatalf("dials %d", dials)
	}
}

// BenchmarkRoundTripKeepAliveTimeout is the same with read_timeout set (one
// deadline update per request).
func BenchmarkRoundTripKeepAliveTimeout(b *testing.B) {
	rt := newH1ForTest(b, config.Upstream{}, fixedBackend(b))
	req := &httpx.OutRequest{Method: "GET", URI: "/", Host: "example.com", Header: &httpx.Header{}, ReadTimeout: 60e9}
	var resp httpx.Response
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.RoundTrip(context.Background(), req, &resp); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		httpx.CloseBody(&resp)
	}
}

// BenchmarkStdTransportKeepAlive is the same exchange through net/http's
// Transport, for comparison.
func BenchmarkStdTransportKeepAlive(b *testing.B) {
	addr := fixedBackend(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	u := &url.URL{Scheme: "http", Host: addr, Path: "/index.html", RawQuery: "a=1"}
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		req := &http.Request{Method: "GET", URL: u, Host: "example.com", Header: http.Header{
			"User-Agent": {"bench"}, "Accept": {"*/*"}, "X-Forwarded-For": {"127.0.0.1"}}}
		res, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := res.Body.Read(buf); err != nil {
				break
			}
		}
		res.Body.Close()
	}
}

// BenchmarkRoundTripKeepAliveCancellable is the keep-alive round trip with
// a cancellable context (HTTP/2 streams): cancellation costs a
// context.AfterFunc registration per request.
func BenchmarkRoundTripKeepAliveCancellable(b *testing.B) {
	rt := newH1ForTest(b, config.Upstream{}, fixedBackend(b))
	req := &httpx.OutRequest{Method: "GET", URI: "/", Host: "example.com", Header: &httpx.Header{}}
	var resp httpx.Response
	buf := make([]byte, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.RoundTrip(ctx, req, &resp); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		httpx.CloseBody(&resp)
	}
}
