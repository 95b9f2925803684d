package server

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

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

// BenchmarkIdleConnMemory reports the memory an idle keep-alive connection
// holds (heap + goroutine stacks, server and client side together divided
// by the connection count; the client side is a bare net.Conn): "release"
// after the buffers went back to the pools, "hold" while still within the
// release window.
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, bc := range []struct {
		name    string
		release time.Duration
	}{{"release", 20 * time.Millisecond}, {"hold", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				b.ReportMetric(idleConnKB(b, bc.release), "KB/idleconn")
			}
		})
	}
}

func idleConnKB(b *testing.B, release time.Duration) float64 {
	const conns = 500
	addr, s := startServer(b, benchHandler(), Options{idleRelease: release})
	defer s.Close()
	runtime.GC()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cs := make([]net.Conn, 0, conns)
	req := []byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	buf := make([]byte, 4096)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, c)
		c.Write(req)
		c.Read(buf)
	}
	time.Sleep(200 * time.Millisecond) // past the release window
	runtime.GC()
	runtime.GC() // twice: sync.Pool keeps a victim generation
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	used := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	for _, c := range cs {
		c.Close()
	}
	return float64(used) / conns / 1024
}
