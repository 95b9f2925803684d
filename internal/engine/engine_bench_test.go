package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/testutil/race"
)

// The end-to-end proxy benchmarks run the real engine, server and upstream
// transport in-process over loopback: a client on one keep-alive
// connection -> Engine (server, router, plugin chain, proxy, transport) ->
// a raw-TCP backend answering every request with the same 512-byte body.
// The client and the backend allocate nothing per request, so allocs/op is
// the proxy's own.

// backendResponse is what the benchmark backend answers (a 512-byte body,
// like the shared harness's origin).
var backendResponse = []byte("HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/plain\r\nContent-Length: 512\r\n\r\n" + strings.Repeat("x", 512))

// startBackend starts a raw HTTP/1.1 backend on 127.0.0.1:0 that answers
// every request with backendResponse, after skipping its body (only
// Content-Length framing: the benchmark clients send nothing else).
func startBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReaderSize(c, 4096)
				for {
					cl := 0
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
							for _, d := range bytes.TrimRight(v, "\r\n") {
								cl = cl*10 + int(d-'0')
							}
						}
					}
					if _, err := br.Discard(cl); err != nil {
						return
					}
					if _, err := c.Write(backendResponse); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// benchConfig is the shared harness's topology: one server, one prefix
// location, one upstream (here with one addr). extra is appended verbatim
// (plugin sections), basic goes into [basic].
func benchConfig(backend, extra, basic string) string {
	return fmt.Sprintf(`
[basic]
name = "bench"
%s

[upstreams.origin]
addrs = [%q]
algorithm = "round_robin"

[locations.all]
upstream = "origin"
path = "/"
path_type = "prefix"

[servers.bench]
addr = "127.0.0.1:0"
locations = ["all"]
%s`, basic, backend, extra)
}

// startEngine starts an Engine on cfgText and returns the "bench" server's
// address.
func startEngine(tb testing.TB, cfgText string) (*Engine, string) {
	tb.Helper()
	cfg, err := config.Parse([]byte(cfgText), "bench.toml")
	if err != nil {
		tb.Fatal(err)
	}
	e := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err := e.Start(cfg); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	return e, e.Addr("bench")
}

// benchClient is a minimal keep-alive HTTP/1.1 client on one connection
// that allocates nothing per request.
type benchClient struct {
	nc  net.Conn
	br  *bufio.Reader
	req []byte
}

func dialBench(tb testing.TB, addr string) *benchClient {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &benchClient{
		nc: nc,
		br: bufio.NewReaderSize(nc, 1024),
		req: []byte("GET /api/v1/items/42?fields=a,b HTTP/1.1\r\nHost: bench.example\r\n" +
			"User-Agent: wrk/4.1\r\nAccept: */*\r\n\r\n"),
	}
}

// postRequest is a small API call with a JSON body, for dialBenchPOST.
const postRequest = "POST /api/v1/items HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: wrk/4.1\r\n" +
	"Content-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"name\":\"item\",\"count\":42}"

// dialBenchPOST is dialBench with a POST of a small body as the request.
func dialBenchPOST(tb testing.TB, addr string) *benchClient {
	c := dialBench(tb, addr)
	c.req = []byte(postRequest)
	return c
}

// do sends one request and reads the whole response; it returns the status
// and the body length.
func (c *benchClient) do() (status, n int, err error) {
	if _, err := c.nc.Write(c.req); err != nil {
		return 0, 0, err
	}
	cl := -1
	for first := true; ; first = false {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		if first {
			if len(line) < 12 {
				return 0, 0, fmt.Errorf("bad status line %q", line)
			}
			status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			cl = 0
			for _, d := range bytes.TrimRight(v, "\r\n") {
				cl = cl*10 + int(d-'0')
			}
		}
	}
	if cl < 0 {
		return status, 0, fmt.Errorf("no Content-Length")
	}
	if _, err := c.br.Discard(cl); err != nil {
		return status, 0, err
	}
	return status, cl, nil
}

func (c *benchClient) mustDo(tb testing.TB) {
	status, n, err := c.do()
	if err != nil {
		tb.Fatal(err)
	}
	if status != 200 || n != 512 {
		tb.Fatalf("got %d with %d body bytes, want 200 with 512", status, n)
	}
}

// BenchmarkProxy is the plain proxy path end to end: one keep-alive client
// connection, GET through the engine to a 512-byte backend, no access log
// (as in the shared harness, where no proxy logs).
func BenchmarkProxy(b *testing.B) {
	_, addr := startEngine(b, benchConfig(startBackend(b), "", "access_log = false"))
	c := dialBench(b, addr)
	c.mustDo(b) // dial the upstream connection outside the loop
	b.ReportAllocs()
	for b.Loop() {
		c.mustDo(b)
	}
}

// BenchmarkProxyPOST is BenchmarkProxy with a small request body (26
// bytes, declared length), which goes upstream with the head in one write.
func BenchmarkProxyPOST(b *testing.B) {
	_, addr := startEngine(b, benchConfig(startBackend(b), "", "access_log = false"))
	c := dialBenchPOST(b, addr)
	c.mustDo(b)
	b.ReportAllocs()
	for b.Loop() {
		c.mustDo(b)
	}
}

// BenchmarkProxyAccessLog adds a file access log in the default format.
func BenchmarkProxyAccessLog(b *testing.B) {
	path := b.TempDir() + "/access.log"
	_, addr := startEngine(b, benchConfig(startBackend(b), "", fmt.Sprintf("access_log = %q", path)))
	c := dialBench(b, addr)
	c.mustDo(b)
	b.ReportAllocs()
	for b.Loop() {
		c.mustDo(b)
	}
}

// maxProxyAllocs is the allocation budget of one request on the plain proxy
// path (no plugins, no access log): the request head string (the server's
// one allocation per parse) and the upstream response head string (the
// transport's). TestProxyAllocs guards it.
const maxProxyAllocs = 2

// TestProxyAllocs guards allocations per request on the plain proxy path,
// in-process and end to end (client, engine, backend): counting, never
// timing. testing.AllocsPerRun counts every allocation in the process, so
// the client and the backend are written to allocate nothing.
func TestProxyAllocs(t *testing.T) {
	checkProxyAllocs(t, dialBench, "request", "Proxy$")
}

// TestProxyAllocsPOST: a small POST costs the same two allocations: the
// proxy's per-request state is reused once the transport has read the
// body to its end (a body of declared length reports io.EOF with its last
// bytes to the transport, see proxy.clientBody).
func TestProxyAllocsPOST(t *testing.T) {
	checkProxyAllocs(t, dialBenchPOST, "POST", "ProxyPOST$")
}

// checkProxyAllocs counts the allocations per request of the client dial
// makes against maxProxyAllocs; bench names the benchmark to profile.
func checkProxyAllocs(t *testing.T, dial func(testing.TB, string) *benchClient, what, bench string) {
	if race.Enabled {
		// The race detector drops sync.Pool items at random, so pooled
		// objects are reallocated: counts are meaningless there. `make
		// unit` runs this test again without -race.
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	_, addr := startEngine(t, benchConfig(startBackend(t), "", "access_log = false"))
	c := dial(t, addr)
	for range 10 { // warm pools, the upstream connection, the Date cache
		c.mustDo(t)
	}
	var failed error
	allocs := testing.AllocsPerRun(500, func() {
		if _, _, err := c.do(); err != nil && failed == nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs > maxProxyAllocs {
		t.Fatalf("%.1f allocations per proxied %s, budget %d (profile with: go test -run '^$' -bench '%s' -memprofile mem.out -memprofilerate 1 ./internal/engine)", allocs, what, maxProxyAllocs, bench)
	}
	t.Logf("%.2f allocations per proxied %s (budget %d)", allocs, what, maxProxyAllocs)
}

// largeConfig is a configuration with nLoc locations spread over nUp
// upstreams (two addrs each), all on one server: hosts, prefixes, exact
// paths and regexes mixed, a few header operations.
func largeConfig(nLoc, nUp int) string {
	var b strings.Builder
	b.WriteString("[basic]\nname = \"large\"\naccess_log = false\n\n")
	for i := range nUp {
		fmt.Fprintf(&b, "[upstreams.up%d]\naddrs = [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n\n", i, 20000+2*i, 20001+2*i)
	}
	names := make([]string, nLoc)
	for i := range nLoc {
		names[i] = fmt.Sprintf("%q", fmt.Sprintf("loc%d", i))
		fmt.Fprintf(&b, "[locations.loc%d]\nupstream = \"up%d\"\n", i, i%nUp)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "path = \"/api/v%d/\"\npath_type = \"prefix\"\n", i)
		case 1:
			fmt.Fprintf(&b, "host = \"svc%d.example.com\"\npath = \"/\"\npath_type = \"prefix\"\n", i)
		case 2:
			fmt.Fprintf(&b, "path = \"/exact/%d\"\npath_type = \"exact\"\nproxy_set_headers = { \"X-Loc\" = \"loc%d\" }\n", i, i)
		case 3:
			fmt.Fprintf(&b, "path = \"^/re/%d/[0-9]+$\"\npath_type = \"regex\"\nheaders_add = [\"X-Route: r%d\"]\n", i, i)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "[servers.main]\naddr = \"127.0.0.1:0\"\nlocations = [%s]\n", strings.Join(names, ", "))
	return b.String()
}

// BenchmarkApplyLargeConfig parses a configuration with 1,000 locations
// and 100 upstreams and applies it to a running engine (a reload: compile
// the snapshot, swap it in, retire the old one). It must stay well under a
// second per op.
func BenchmarkApplyLargeConfig(b *testing.B) {
	text := []byte(largeConfig(1000, 100))
	cfg, err := config.Parse(text, "large.toml")
	if err != nil {
		b.Fatal(err)
	}
	e := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err := e.Start(cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := config.Parse(text, "large.toml")
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Apply(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildLargeConfig compiles the same configuration without
// applying it (pingap -t).
func BenchmarkBuildLargeConfig(b *testing.B) {
	text := []byte(largeConfig(1000, 100))
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := config.Parse(text, "large.toml")
		if err != nil {
			b.Fatal(err)
		}
		if err := Check(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdleConnMemory reports what one idle keep-alive client
// connection costs after it carried a proxied request: heap and goroutine
// stack growth over the engine's baseline, divided by the connection count
// (the client side, a bare net.Conn, is included). It measures memory, not
// time; the shared harness's many-connections scenario is its end-to-end
// counterpart (KB/conn at 10K connections).
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 1000
	_, addr := startEngine(b, benchConfig(startBackend(b), "", "access_log = false"))
	warm := dialBench(b, addr)
	warm.mustDo(b)
	for b.Loop() {
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cs := make([]*benchClient, 0, conns)
		for range conns {
			c := dialBench(b, addr)
			c.mustDo(b)
			cs = append(cs, c)
		}
		time.Sleep(1500 * time.Millisecond) // past the server's buffer release window
		runtime.GC()
		runtime.GC() // twice: sync.Pool keeps a victim generation
		runtime.ReadMemStats(&after)
		heap := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / conns / 1024
		stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / conns / 1024
		b.ReportMetric(heap, "heapKB/conn")
		b.ReportMetric(stack, "stackKB/conn")
		b.ReportMetric(heap+stack, "KB/conn")
		start := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
		metrics.Read(start)
		b.ReportMetric(float64(start[0].Value.Uint64()), "startstack-B")
		for _, c := range cs {
			c.nc.Close()
		}
	}
}
