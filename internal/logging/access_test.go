package logging

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/testutil/race"
)

var testNow = time.Date(2026, 11, 25, 21, 0, 0, 123456789, time.UTC)

func testCtx() *httpx.Ctx {
	c := &httpx.Ctx{}
	c.Req.Method = "GET"
	c.Req.Host = "example.com:8443"
	c.Req.RequestURI = "/api/users?id=7&x=%20"
	c.Req.Path = "/users"
	c.Req.RawQuery = "id=7&x=%20"
	c.Resp.Status = 200
	c.Conn.RemoteAddr = netip.MustParseAddrPort("10.1.2.3:5555")
	c.ClientIP = netip.MustParseAddr("203.0.113.9")
	c.Start = testNow.Add(-12345 * time.Microsecond)
	c.RequestID = "req-1"
	c.Location = "api"
	c.Upstream = "backend"
	c.UpstreamAddr = "127.0.0.1:8080"
	c.UpstreamDuration = 2500 * time.Microsecond
	c.BytesIn = 17
	c.BytesOut = 512
	return c
}

func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("line %q is not one newline-terminated line", line)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return m
}

func TestAppendAccess(t *testing.T) {
	trace := "4bf92f3577b34da6a3ce929d0e0e4736"
	cases := []struct {
		name   string
		mod    func(c *httpx.Ctx)
		trace  string
		want   map[string]any // json.Number values compare by string
		absent []string
	}{
		{
			name:  "full",
			trace: trace,
			want: map[string]any{
				"time": "2026-11-25T21:00:00.123Z", "level": "INFO", "msg": "access",
				"remote_addr": "203.0.113.9", "method": "GET", "host": "example.com:8443",
				"path": "/api/users", "query": "id=7&x=%20", "status": "200", "bytes": "512",
				"bytes_in": "17", "duration_ms": "12.345", "location": "api", "upstream": "backend",
				"upstream_addr": "127.0.0.1:8080", "upstream_ms": "2.500", "request_id": "req-1",
				"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
			},
			absent: []string{"tls"},
		},
		{
			name: "no upstream, no query, no ids, tls, peer ip",
			mod: func(c *httpx.Ctx) {
				c.Req.RequestURI = "/health"
				c.Upstream, c.UpstreamAddr, c.UpstreamDuration = "", "", 0
				c.RequestID = ""
				c.Location = ""
				c.Resp.Status = 404
				c.ClientIP = netip.Addr{}
				c.Conn.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
			},
			want: map[string]any{
				"remote_addr": "10.1.2.3", "path": "/health", "status": "404", "location": "",
				"upstream": "", "upstream_addr": "", "tls": "TLS 1.3",
			},
			absent: []string{"query", "request_id", "trace_id", "upstream_ms"},
		},
		{
			name: "no request uri: path and raw query, mapped v6 ip",
			mod: func(c *httpx.Ctx) {
				c.Req.RequestURI = ""
				c.ClientIP = netip.MustParseAddr("::ffff:192.0.2.1")
			},
			want: map[string]any{"path": "/users", "query": "id=7&x=%20", "remote_addr": "192.0.2.1"},
		},
		{
			name: "escaping",
			mod: func(c *httpx.Ctx) {
				c.Req.RequestURI = "/a\"b\\c\x01\xff?q=\n"
				c.Req.Host = "h\u2028"
				c.Req.Method = "G\tET"
				c.ClientIP = netip.MustParseAddr("2001:db8::1")
			},
			want: map[string]any{
				"path": "/a\"b\\c\x01\ufffd", "query": "q=\n", "host": "h\u2028",
				"method": "G\tET", "remote_addr": "2001:db8::1",
			},
		},
		{
			name: "zero ctx",
			mod:  func(c *httpx.Ctx) { *c = httpx.Ctx{} },
			want: map[string]any{
				"remote_addr": "", "method": "", "path": "", "status": "0", "bytes": "0",
				"duration_ms": "0.000",
			},
			absent: []string{"query", "tls", "upstream_ms"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testCtx()
			if tc.mod != nil {
				tc.mod(c)
			}
			got := decodeLine(t, AppendAccess(nil, c, testNow, tc.trace))
			for k, v := range tc.want {
				g, ok := got[k]
				if !ok {
					t.Errorf("field %s missing", k)
					continue
				}
				if n, isNum := g.(json.Number); isNum {
					g = n.String()
				}
				if g != v {
					t.Errorf("%s = %#v, want %#v", k, g, v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := got[k]; ok {
					t.Errorf("field %s present, want absent", k)
				}
			}
			for _, k := range []string{"status", "bytes", "duration_ms", "bytes_in"} {
				if _, isNum := got[k].(json.Number); !isNum {
					t.Errorf("%s is %T, want a JSON number", k, got[k])
				}
			}
		})
	}
}

func TestAccessLogFileConcurrentAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	a, err := NewAccessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 4, 300
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testCtx()
			for i := 0; i < per; i++ {
				a.Log(c, "")
			}
		}()
	}
	wg.Wait()
	rotated := filepath.Join(dir, "access.log.1")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Log(testCtx(), "0af7651916cd43dd8448eb211c80319c")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Log(testCtx(), "") // after Close: dropped, no panic
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	if n := checkFile(t, rotated); n != workers*per {
		t.Fatalf("rotated file has %d lines, want %d", n, workers*per)
	}
	if n := checkFile(t, path); n != 1 {
		t.Fatalf("new file has %d lines, want 1", n)
	}
}

func checkFile(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		m := decodeLine(t, append(sc.Bytes(), '\n'))
		if m["msg"] != "access" {
			t.Fatalf("line %q", sc.Text())
		}
		n++
	}
	return n
}

func TestAccessLogBadPath(t *testing.T) {
	_, err := NewAccessLog(filepath.Join(t.TempDir(), "missing", "a.log"))
	if err == nil || !strings.Contains(err.Error(), "basic.access_log") {
		t.Fatalf("err = %v", err)
	}
	for _, target := range []string{"", "-"} {
		a, err := NewAccessLog(target)
		if err != nil || a.w != os.Stderr {
			t.Fatalf("NewAccessLog(%q) = %v, %v; want a stderr log", target, a, err)
		}
		a.Close()
	}
}

// syncWriter records each Write separately.
type syncWriter struct {
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *syncWriter) snapshot() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.writes...)
}

func TestAccessLogStreamBatches(t *testing.T) {
	w := &syncWriter{}
	a := NewAccessLogWriter(w)
	c := testCtx()
	const lines = 200
	for i := 0; i < lines; i++ {
		a.Log(c, "")
	}
	big := testCtx()
	big.Req.RequestURI = "/" + strings.Repeat("x", 6000)
	a.Log(big, "")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range w.snapshot() {
		if p[len(p)-1] != '\n' {
			t.Fatalf("a write does not end on a line boundary")
		}
		n := bytes.Count(p, []byte("\n"))
		if len(p) > streamBatchSize && n != 1 {
			t.Fatalf("write of %d bytes (%d lines) passes PIPE_BUF", len(p), n)
		}
		total += n
	}
	if total != lines+1 {
		t.Fatalf("%d lines written, want %d", total, lines+1)
	}
}

func TestAccessLogPeriodicFlush(t *testing.T) {
	w := &syncWriter{}
	a := NewAccessLogWriter(w)
	defer a.Close()
	a.Log(testCtx(), "")
	// The flusher, not Close, must write the line: poll (bounded).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(w.snapshot()) == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("line never flushed by the background flusher")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestAccessLogWriteError(t *testing.T) {
	boom := errors.New("disk full")
	w := &syncWriter{fail: boom}
	a := NewAccessLogWriter(w)
	a.Log(testCtx(), "")
	a.Log(testCtx(), "")
	if err := a.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	if a.Dropped() != 2 {
		t.Fatalf("Dropped = %d, want 2", a.Dropped())
	}
	if err := a.Flush(); err != nil {
		t.Fatalf("second Flush = %v, want nil (error reported once)", err)
	}
	a.Close()
}

func TestNilAccessLog(t *testing.T) {
	var a *AccessLog
	a.Log(testCtx(), "")
	if a.Flush() != nil || a.Reopen() != nil || a.Close() != nil || a.Dropped() != 0 {
		t.Fatal("nil AccessLog is not a no-op")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestAccessLogAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	a := NewAccessLogWriter(discard{})
	defer a.Close()
	c := testCtx()
	c.Conn.TLS = &tls.ConnectionState{Version: tls.VersionTLS12}
	a.Log(c, "0af7651916cd43dd8448eb211c80319c")
	if n := testing.AllocsPerRun(500, func() { a.Log(c, "0af7651916cd43dd8448eb211c80319c") }); n != 0 {
		t.Fatalf("Log allocates %v per line", n)
	}
}

func TestAccessLogReopenWhileLogging(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	a, err := NewAccessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	const per = 500
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testCtx()
			for i := 0; i < per; i++ {
				a.Log(c, "")
			}
		}()
	}
	// Rotate a few times while lines are written.
	for i := 0; i < 5; i++ {
		if err := os.Rename(path, filepath.Join(dir, "access.log."+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
		if err := a.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		total += checkFile(t, filepath.Join(dir, e.Name()))
	}
	if total != 3*per {
		t.Fatalf("%d lines across rotated files, want %d", total, 3*per)
	}
}

// FuzzAppendAccess: whatever the request carries, the line is one valid
// JSON object whose strings decode to what was sent (modulo invalid UTF-8).
func FuzzAppendAccess(f *testing.F) {
	f.Add("GET", "example.com", "/a?b=c", "api", "id-1", "")
	f.Add("P\"OST", "h\xff", "/\n?\x00", "l\u2028", "", "4bf92f3577b34da6a3ce929d0e0e4736")
	f.Fuzz(func(t *testing.T, method, host, uri, location, reqID, traceID string) {
		c := testCtx()
		c.Req.Method, c.Req.Host, c.Req.RequestURI = method, host, uri
		c.Location, c.RequestID = location, reqID
		line := AppendAccess(nil, c, testNow, traceID)
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("not one line: %q", line)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", line, err)
		}
		if m["method"] != strings.ToValidUTF8(method, "\ufffd") && strings.ToValidUTF8(method, "") == method {
			t.Fatalf("method %q decoded as %q", method, m["method"])
		}
	})
}
