package server

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"testing"

	"github.com/pingap-go/pingap/internal/httpx"
)

var benchBody = []byte("hello, world")

func benchHandler() Handler {
	return HandlerFunc(func(c *httpx.Ctx) {
		// c.Resp.Header is reused across requests, as the engine does.
		c.Resp.Header.Add("Content-Type", "text/plain")
		c.W.WriteHeader(200, &c.Resp.Header, int64(len(benchBody)))
		c.W.Write(benchBody)
		c.W.Finish(nil)
	})
}

// readBenchResponse reads one response head and its Content-Length body
// without allocating.
func readBenchResponse(b *testing.B, br *bufio.Reader) {
	cl := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			cl = 0
			for _, c := range v[:len(v)-2] {
				cl = cl*10 + int(c-'0')
			}
		}
	}
	if cl < 0 {
		b.Fatal("no Content-Length")
	}
	if _, err := br.Discard(cl); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkServeKeepAlive measures the whole HTTP/1.1 server path with a
// real loopback client doing sequential keep-alive GETs (client and server
// allocations both count; the client allocates nothing).
func BenchmarkServeKeepAlive(b *testing.B) {
	addr, _ := startServer(b, benchHandler(), Options{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := []byte("GET /api/v1/items/42?fields=a,b HTTP/1.1\r\nHost: bench.example\r\n" +
		"User-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n")
	br := bufio.NewReader(conn)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		readBenchResponse(b, br)
	}
}

// BenchmarkServePipelined sends 16 requests per write, measuring the
// batched-flush path.
func BenchmarkServePipelined(b *testing.B) {
	addr, _ := startServer(b, benchHandler(), Options{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	one := "GET /p HTTP/1.1\r\nHost: bench.example\r\n\r\n"
	const depth = 16
	req := bytes.Repeat([]byte(one), depth)
	br := bufio.NewReader(conn)
	b.ReportAllocs()
	b.ReportMetric(depth, "req/op")
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		for range depth {
			readBenchResponse(b, br)
		}
	}
}

// BenchmarkNetHTTPKeepAlive is the same loop against a net/http server, for
// comparison (allocs/op is the number to compare on a shared machine).
func BenchmarkNetHTTPKeepAlive(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "12")
		w.Write(benchBody)
	})}
	go hs.Serve(ln)
	defer hs.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := []byte("GET /api/v1/items/42?fields=a,b HTTP/1.1\r\nHost: bench.example\r\n" +
		"User-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n")
	br := bufio.NewReader(conn)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		readBenchResponse(b, br)
	}
}
