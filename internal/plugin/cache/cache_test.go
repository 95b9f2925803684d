package cache

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func mustNew(t testing.TB, opts map[string]any) *Plugin {
	t.Helper()
	p, err := New(plugin.Env{Name: "cache"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	pl := p.(*Plugin)
	if pl.scanDone != nil {
		<-pl.scanDone // tests look at the rebuilt index
	}
	return pl
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{"defaults", map[string]any{}, ""},
		{"all keys", map[string]any{"max_size": "10MB", "max_entry_size": "64KB", "ttl": "1m", "methods": []any{"GET"},
			"dir": "DIR", "dir_max_size": "100MB",
			"key": []any{"host", "uri", "header:X-Tenant"}, "purge_ip_list": []any{"10.0.0.0/8", "::1"}, "lock_timeout": "1s"}, ""},
		{"ttl int", map[string]any{"ttl": int64(30)}, ""},
		{"max_size too small", map[string]any{"max_size": "1KB"}, "max_size"},
		{"bad max_size", map[string]any{"max_size": "huge"}, "max_size"},
		{"zero max_entry_size", map[string]any{"max_entry_size": int64(0)}, "max_entry_size"},
		{"dir unusable", map[string]any{"dir": "/dev/null/x"}, "dir"},
		{"dir_max_size too small", map[string]any{"dir_max_size": int64(10)}, "dir_max_size"},
		{"bad dir_max_size", map[string]any{"dir_max_size": "lots"}, "dir_max_size"},
		{"bad ttl", map[string]any{"ttl": "forever"}, "ttl"},
		{"empty methods", map[string]any{"methods": []any{}}, "methods"},
		{"lower-case method", map[string]any{"methods": []any{"get"}}, "methods"},
		{"purge method", map[string]any{"methods": []any{"PURGE"}}, "methods"},
		{"bad key part", map[string]any{"key": []any{"path"}}, "key"},
		{"empty key", map[string]any{"key": []any{}}, "key"},
		{"bad purge ip", map[string]any{"purge_ip_list": []any{"localhost"}}, "purge_ip_list"},
		{"bad purge cidr", map[string]any{"purge_ip_list": []any{"10.0.0.0/33"}}, "purge_ip_list"},
		{"bad lock_timeout", map[string]any{"lock_timeout": "x"}, "lock_timeout"},
		{"unknown", map[string]any{"size": "1MB"}, "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts["dir"] == "DIR" {
				tt.opts["dir"] = t.TempDir()
			}
			pl, err := New(plugin.Env{Name: "c"}, tt.opts)
			if pl != nil {
				pl.(*Plugin).Close()
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

// origin is a counting fake upstream. handler builds the answer from the
// request; it may block.
type origin struct {
	calls   atomic.Int32
	handler func(c *httpx.Ctx) (status int, header []string, body string)
}

type result struct {
	status int
	header httpx.Header
	body   string
}

type sink struct{ b *bytes.Buffer }

func (s sink) Write(p []byte) (int, error) { return s.b.Write(p) }
func (sink) Flush() error                  { return nil }
func (sink) Close() error                  { return nil }

// do runs the chain like the engine (request phase, upstream, response
// phase, body filters, Finish), with o as the upstream. Unlike
// plugintest.Run it lets the upstream see the request, count, and block.
func (o *origin) do(c *httpx.Ctx, plugins ...plugin.Plugin) result {
	ch := plugin.NewChain(plugins...)
	ran, handled := ch.Request(c)
	if !handled {
		o.calls.Add(1)
		status, hdrs, body := o.handler(c)
		for _, h := range hdrs {
			name, value, _ := strings.Cut(h, ":")
			c.Resp.Header.Add(name, strings.TrimSpace(value))
		}
		c.Send(status, "", []byte(body))
	}
	ch.Response(c, ran)
	var out bytes.Buffer
	var w httpx.BodyWriter = sink{&out}
	filters := c.BodyFilters()
	for i := len(filters) - 1; i >= 0; i-- {
		w = filters[i](w)
	}
	if c.Resp.Body != nil {
		io.Copy(w, c.Resp.Body)
	}
	w.Close()
	ch.Finish(c, ran)
	return result{status: c.Resp.Status, header: c.Resp.Header.Clone(), body: out.String()}
}

func static(status int, body string, header ...string) *origin {
	return &origin{handler: func(*httpx.Ctx) (int, []string, string) { return status, header, body }}
}

func get(p *Plugin, o *origin, target string, headers ...string) result {
	return o.do(plugintest.NewCtx("GET", target, headers...), p)
}

func TestHitAfterMiss(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := static(200, "hello", "Cache-Control: max-age=60", "Content-Type: text/plain")
	r1 := get(p, o, "/a")
	if r1.header.Get("X-Cache-Status") != StatusMiss || r1.body != "hello" {
		t.Fatalf("first: %s %q", r1.header.Get("X-Cache-Status"), r1.body)
	}
	r2 := get(p, o, "/a")
	if r2.header.Get("X-Cache-Status") != StatusHit || r2.body != "hello" || r2.status != 200 {
		t.Fatalf("second: %d %s %q", r2.status, r2.header.Get("X-Cache-Status"), r2.body)
	}
	if r2.header.Get("Content-Type") != "text/plain" || r2.header.Get("Age") == "" {
		t.Fatalf("hit header %v", r2.header.Fields())
	}
	if n := o.calls.Load(); n != 1 {
		t.Fatalf("%d upstream calls, want 1", n)
	}
	// Another URI, host or method is another key.
	get(p, o, "/a?x=1")
	o.do(plugintest.NewCtx("GET", "/a", "Host: other.example"), p)
	o.do(plugintest.NewCtx("HEAD", "/a"), p)
	if n := o.calls.Load(); n != 4 {
		t.Fatalf("%d upstream calls, want 4", n)
	}
	// Host case and port do not matter.
	if r := o.do(plugintest.NewCtx("GET", "/a", "Host: EXAMPLE.com:80"), p); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("host with port/case: %s", r.header.Get("X-Cache-Status"))
	}
}

func TestStorageDecisions(t *testing.T) {
	tests := []struct {
		name     string
		opts     map[string]any
		method   string
		reqHdrs  []string
		status   int
		respHdrs []string
		stored   bool
		first    string // X-Cache-Status of the first request
	}{
		{"max-age", nil, "GET", nil, 200, []string{"Cache-Control: max-age=60"}, true, StatusMiss},
		{"s-maxage", nil, "GET", nil, 200, []string{"Cache-Control: s-maxage=60"}, true, StatusMiss},
		{"s-maxage beats max-age=0", nil, "GET", nil, 200, []string{"Cache-Control: max-age=0, s-maxage=60"}, true, StatusMiss},
		{"expires", nil, "GET", nil, 200, []string{"Date: " + httpDate(time.Now()), "Expires: " + httpDate(time.Now().Add(time.Hour))}, true, StatusMiss},
		{"expires in the past", nil, "GET", nil, 200, []string{"Date: " + httpDate(time.Now()), "Expires: " + httpDate(time.Now().Add(-time.Hour))}, false, StatusMiss},
		{"invalid expires", nil, "GET", nil, 200, []string{"Expires: 0"}, false, StatusMiss},
		{"no freshness, no ttl", nil, "GET", nil, 200, nil, false, StatusMiss},
		{"no freshness, ttl", map[string]any{"ttl": "1m"}, "GET", nil, 200, nil, true, StatusMiss},
		{"no-store", map[string]any{"ttl": "1m"}, "GET", nil, 200, []string{"Cache-Control: no-store"}, false, StatusMiss},
		{"private", map[string]any{"ttl": "1m"}, "GET", nil, 200, []string{"Cache-Control: private, max-age=60"}, false, StatusMiss},
		{"private with fields", nil, "GET", nil, 200, []string{`Cache-Control: private="set-cookie", max-age=60`}, false, StatusMiss},
		{"set-cookie", nil, "GET", nil, 200, []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"}, false, StatusMiss},
		{"vary star", nil, "GET", nil, 200, []string{"Cache-Control: max-age=60", "Vary: *"}, false, StatusMiss},
		{"404 cacheable", nil, "GET", nil, 404, []string{"Cache-Control: max-age=60"}, true, StatusMiss},
		{"500 not cacheable", nil, "GET", nil, 500, []string{"Cache-Control: max-age=60"}, false, StatusMiss},
		{"302 not cached", nil, "GET", nil, 302, []string{"Cache-Control: max-age=60"}, false, StatusMiss},
		{"authorization", nil, "GET", []string{"Authorization: Bearer x"}, 200, []string{"Cache-Control: max-age=60"}, false, StatusMiss},
		{"authorization public", nil, "GET", []string{"Authorization: Bearer x"}, 200, []string{"Cache-Control: public, max-age=60"}, true, StatusMiss},
		{"request no-store", nil, "GET", []string{"Cache-Control: no-store"}, 200, []string{"Cache-Control: max-age=60"}, false, StatusBypass},
		{"POST bypass", nil, "POST", nil, 200, []string{"Cache-Control: max-age=60"}, false, StatusBypass},
		{"upgrade bypass", nil, "GET", []string{"Upgrade: websocket", "Connection: Upgrade"}, 200, []string{"Cache-Control: max-age=60"}, false, StatusBypass},
		{"POST configured", map[string]any{"methods": []any{"GET", "POST"}}, "POST", nil, 200, []string{"Cache-Control: max-age=60"}, true, StatusMiss},
		{"HEAD", nil, "HEAD", nil, 200, []string{"Cache-Control: max-age=60"}, true, StatusMiss},
		{"HEAD not configured", map[string]any{"methods": []any{"GET"}}, "HEAD", nil, 200, []string{"Cache-Control: max-age=60"}, false, StatusBypass},
		{"too large", map[string]any{"max_entry_size": int64(10)}, "GET", nil, 200, []string{"Cache-Control: max-age=60"}, false, StatusMiss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts == nil {
				opts = map[string]any{}
			}
			p := mustNew(t, opts)
			o := static(tt.status, "body of the response", tt.respHdrs...)
			r1 := o.do(plugintest.NewCtx(tt.method, "/s", tt.reqHdrs...), p)
			if got := r1.header.Get("X-Cache-Status"); got != tt.first {
				t.Fatalf("first X-Cache-Status %q, want %q", got, tt.first)
			}
			if r1.body != "body of the response" || r1.status != tt.status {
				t.Fatalf("first response %d %q", r1.status, r1.body)
			}
			r2 := o.do(plugintest.NewCtx(tt.method, "/s", tt.reqHdrs...), p)
			hit := r2.header.Get("X-Cache-Status") == StatusHit
			if hit != tt.stored {
				t.Fatalf("second X-Cache-Status %q, stored want %v", r2.header.Get("X-Cache-Status"), tt.stored)
			}
			wantCalls := int32(2)
			if tt.stored {
				wantCalls = 1
				if r2.status != tt.status {
					t.Fatalf("hit status %d", r2.status)
				}
				if tt.method != "HEAD" && r2.body != "body of the response" {
					t.Fatalf("hit body %q", r2.body)
				}
			}
			if n := o.calls.Load(); n != wantCalls {
				t.Fatalf("%d upstream calls, want %d", n, wantCalls)
			}
		})
	}
}

func httpDate(t time.Time) string { return t.UTC().Format(httpTimeFormat) }

func TestVary(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		return 200, []string{"Cache-Control: max-age=60", "Vary: Accept-Language"}, "lang=" + c.Req.Header.Get("Accept-Language")
	}}
	tests := []struct {
		lang   []string
		want   string
		status string
	}{
		{[]string{"en"}, "lang=en", StatusMiss},
		{[]string{"fr"}, "lang=fr", StatusMiss},
		{[]string{"en"}, "lang=en", StatusHit},
		{[]string{"fr"}, "lang=fr", StatusHit},
		{nil, "lang=", StatusMiss},
		{nil, "lang=", StatusHit},
		{[]string{"en", "fr"}, "lang=en", StatusMiss}, // two fields: "en, fr"
		{[]string{"en", "fr"}, "lang=en", StatusHit},
	}
	for i, tt := range tests {
		var hdrs []string
		for _, l := range tt.lang {
			hdrs = append(hdrs, "Accept-Language: "+l)
		}
		r := get(p, o, "/v", hdrs...)
		if r.body != tt.want || r.header.Get("X-Cache-Status") != tt.status {
			t.Fatalf("step %d (%v): %q %s, want %q %s", i, tt.lang, r.body, r.header.Get("X-Cache-Status"), tt.want, tt.status)
		}
	}
	if n := o.calls.Load(); n != 4 {
		t.Fatalf("%d upstream calls, want 4", n)
	}
}

func TestHeaderValueIs(t *testing.T) {
	var h httpx.Header
	h.Add("A", "x")
	h.Add("A", "y")
	for want, ok := range map[string]bool{"x, y": true, "x": false, "x, y, z": false, "x,y": false, "": false} {
		if got := headerValueIs(&h, "a", want); got != ok {
			t.Errorf("headerValueIs(%q) = %v", want, got)
		}
	}
	var empty httpx.Header
	if !headerValueIs(&empty, "a", "") || headerValueIs(&empty, "a", "x") {
		t.Error("missing field")
	}
}

func TestRevalidation(t *testing.T) {
	p := mustNew(t, map[string]any{})
	var sawINM, sawIMS atomic.Value
	o := &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		sawINM.Store(c.Req.Header.Get("If-None-Match"))
		sawIMS.Store(c.Req.Header.Get("If-Modified-Since"))
		if c.Req.Header.Get("If-None-Match") == `"v1"` {
			return 304, []string{"Cache-Control: max-age=60", `ETag: "v1"`}, ""
		}
		return 200, []string{"Cache-Control: max-age=0", `ETag: "v1"`, "Last-Modified: Mon, 02 Jan 2006 15:04:05 GMT", "Content-Type: text/plain"}, "payload"
	}}
	r1 := get(p, o, "/r")
	if r1.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("first %s", r1.header.Get("X-Cache-Status"))
	}
	// max-age=0: stored, stale at once, revalidated with the validators.
	r2 := get(p, o, "/r")
	if sawINM.Load() != `"v1"` || sawIMS.Load() != "Mon, 02 Jan 2006 15:04:05 GMT" {
		t.Fatalf("revalidation sent If-None-Match %q If-Modified-Since %q", sawINM.Load(), sawIMS.Load())
	}
	if r2.status != 200 || r2.body != "payload" || r2.header.Get("X-Cache-Status") != StatusExpired {
		t.Fatalf("after 304: %d %q %s", r2.status, r2.body, r2.header.Get("X-Cache-Status"))
	}
	if r2.header.Get("Content-Type") != "text/plain" || r2.header.Get("Cache-Control") != "max-age=60" {
		t.Fatalf("stored header not updated from the 304: %v", r2.header.Fields())
	}
	// The 304 made it fresh for 60s.
	r3 := get(p, o, "/r")
	if r3.header.Get("X-Cache-Status") != StatusHit || r3.body != "payload" {
		t.Fatalf("third %s %q", r3.header.Get("X-Cache-Status"), r3.body)
	}
	if n := o.calls.Load(); n != 2 {
		t.Fatalf("%d upstream calls, want 2", n)
	}
	// A client's own If-None-Match on a hit gets 304 from the cache.
	r4 := get(p, o, "/r", `If-None-Match: W/"v1"`)
	if r4.status != 304 || r4.body != "" || r4.header.Get("ETag") != `"v1"` {
		t.Fatalf("client conditional: %d %q", r4.status, r4.body)
	}
	// Request no-cache forces a revalidation.
	get(p, o, "/r", "Cache-Control: no-cache")
	if n := o.calls.Load(); n != 3 {
		t.Fatalf("no-cache: %d upstream calls, want 3", n)
	}
}

func TestExpiredRefetch(t *testing.T) {
	p := mustNew(t, map[string]any{})
	var n atomic.Int32
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		return 200, []string{"Cache-Control: max-age=1", "Age: 1"}, fmt.Sprint("v", n.Add(1))
	}}
	// Age: 1 with max-age=1 is stale on arrival: every request refetches.
	get(p, o, "/e")
	r := get(p, o, "/e")
	if r.header.Get("X-Cache-Status") != StatusExpired || r.body != "v2" {
		t.Fatalf("got %s %q", r.header.Get("X-Cache-Status"), r.body)
	}
}

func TestStaleIfError(t *testing.T) {
	p := mustNew(t, map[string]any{})
	fail := false
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		if fail {
			return 502, nil, `{"error":"bad gateway"}`
		}
		return 200, []string{"Cache-Control: max-age=0, stale-if-error=60"}, "good"
	}}
	get(p, o, "/sie")
	fail = true
	r := get(p, o, "/sie")
	if r.status != 200 || r.body != "good" || r.header.Get("X-Cache-Status") != StatusStale {
		t.Fatalf("stale-if-error: %d %q %s", r.status, r.body, r.header.Get("X-Cache-Status"))
	}
	// must-revalidate forbids it.
	p2 := mustNew(t, map[string]any{})
	fail = false
	o.handler = func(*httpx.Ctx) (int, []string, string) {
		if fail {
			return 502, nil, "down"
		}
		return 200, []string{"Cache-Control: max-age=0, must-revalidate, stale-if-error=60", `ETag: "x"`}, "good"
	}
	get(p2, o, "/sie")
	fail = true
	if r := get(p2, o, "/sie"); r.status != 502 {
		t.Fatalf("must-revalidate served stale: %d %q", r.status, r.body)
	}
}

func TestPurge(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := static(200, "x", "Cache-Control: max-age=60")
	purge := func(ip, target string) result {
		c := plugintest.NewCtx("PURGE", target)
		c.ClientIP = netip.MustParseAddr(ip)
		return o.do(c, p)
	}
	get(p, o, "/p")
	o.do(plugintest.NewCtx("HEAD", "/p"), p)
	if r := purge("10.1.2.3", "/p"); r.status != 403 || !strings.Contains(r.body, `"error"`) {
		t.Fatalf("non-loopback purge: %d %q", r.status, r.body)
	}
	if r := get(p, o, "/p"); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatal("refused purge removed the entry")
	}
	if r := purge("127.0.0.1", "/p"); r.status != 200 {
		t.Fatalf("purge: %d %q", r.status, r.body)
	}
	if r := purge("::1", "/p"); r.status != 404 {
		t.Fatalf("second purge: %d, want 404", r.status)
	}
	if r := o.do(plugintest.NewCtx("HEAD", "/p"), p); r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("HEAD variant not purged: %s", r.header.Get("X-Cache-Status"))
	}
	if r := get(p, o, "/p"); r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatal("entry still cached after purge")
	}
	if o.calls.Load() != 4 {
		t.Fatalf("upstream saw %d requests (a PURGE reached it?)", o.calls.Load())
	}
	// A configured list replaces the loopback default.
	p2 := mustNew(t, map[string]any{"purge_ip_list": []any{"10.0.0.0/8"}})
	get(p2, o, "/q")
	c := plugintest.NewCtx("PURGE", "/q")
	if r := o.do(c, p2); r.status != 403 {
		t.Fatalf("loopback with a configured list: %d", r.status)
	}
	c = plugintest.NewCtx("PURGE", "/q")
	c.ClientIP = netip.MustParseAddr("10.9.9.9")
	if r := o.do(c, p2); r.status != 200 {
		t.Fatalf("listed client: %d", r.status)
	}
}

func TestKeyWithHeader(t *testing.T) {
	p := mustNew(t, map[string]any{"key": []any{"uri", "header:X-Tenant"}})
	o := &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		return 200, []string{"Cache-Control: max-age=60"}, c.Req.Header.Get("X-Tenant")
	}}
	if r := get(p, o, "/k", "X-Tenant: a"); r.body != "a" {
		t.Fatal(r.body)
	}
	if r := get(p, o, "/k", "X-Tenant: b"); r.body != "b" || r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("%q %s", r.body, r.header.Get("X-Cache-Status"))
	}
	if r := get(p, o, "/k", "X-Tenant: a"); r.body != "a" || r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("%q %s", r.body, r.header.Get("X-Cache-Status"))
	}
	// Without the method in the key, HEAD shares the GET entry... and
	// a GET body is served for HEAD only as a header (the server drops it).
}

func TestLRUBound(t *testing.T) {
	// 16 shards x 4 KB: entries of ~1.3 KB, at most ~3 per shard.
	p := mustNew(t, map[string]any{"max_size": int64(numShards * 4096)})
	body := strings.Repeat("x", 1000)
	o := static(200, body, "Cache-Control: max-age=60")
	for i := 0; i < 500; i++ {
		get(p, o, fmt.Sprintf("/lru/%d", i))
	}
	var total int64
	for i := range p.store.shards {
		sh := &p.store.shards[i]
		sh.mu.Lock()
		if sh.mem.lru.size > sh.mem.lru.capacity {
			t.Errorf("shard %d holds %d bytes over %d", i, sh.mem.lru.size, sh.mem.lru.capacity)
		}
		total += sh.mem.lru.size
		sh.mu.Unlock()
	}
	if total == 0 || total > numShards*4096 {
		t.Fatalf("total %d bytes", total)
	}
	// The most recent entry survived.
	if r := get(p, o, "/lru/499"); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("most recent entry evicted")
	}
	// A recently used old entry survives newer inserts into its shard.
	before := o.calls.Load()
	get(p, o, "/lru/499")
	if o.calls.Load() != before {
		t.Fatal("hit went upstream")
	}
}

// TestCoalescing: 20 concurrent misses for one key make one upstream
// request; the 19 others wait and are served from the filled entry.
func TestCoalescing(t *testing.T) {
	p := mustNew(t, map[string]any{})
	release := make(chan struct{})
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		<-release
		return 200, []string{"Cache-Control: max-age=60"}, "filled"
	}}
	const n = 20
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = get(p, o, "/slow")
		}()
	}
	// Wait (bounded) until one request is upstream and 19 wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if o.calls.Load() == 1 && waiters(p, "/slow") == n-1 {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			wg.Wait()
			t.Fatalf("calls %d waiters %d", o.calls.Load(), waiters(p, "/slow"))
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if c := o.calls.Load(); c != 1 {
		t.Fatalf("%d upstream calls, want 1", c)
	}
	hits := 0
	for _, r := range results {
		if r.body != "filled" || r.status != 200 {
			t.Fatalf("result %d %q", r.status, r.body)
		}
		if r.header.Get("X-Cache-Status") == StatusHit {
			hits++
		}
	}
	if hits != n-1 {
		t.Fatalf("%d hits, want %d", hits, n-1)
	}
}

func waiters(p *Plugin, path string) int32 {
	c := plugintest.NewCtx("GET", path)
	key := p.appendKey(c, "GET", nil)
	sh := p.store.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f := sh.flights[string(key)]; f != nil {
		return f.waiters.Load()
	}
	return 0
}

// TestCoalescingUncacheable: waiters behind an uncacheable response go
// upstream themselves, and later requests skip waiting (hit for pass).
func TestCoalescingUncacheable(t *testing.T) {
	p := mustNew(t, map[string]any{})
	release := make(chan struct{})
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		<-release
		return 200, []string{"Cache-Control: private"}, "mine"
	}}
	const n = 5
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := get(p, o, "/private"); r.body != "mine" {
				t.Errorf("body %q", r.body)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for o.calls.Load() != 1 || waiters(p, "/private") != n-1 {
		if time.Now().After(deadline) {
			close(release)
			wg.Wait()
			t.Fatalf("calls %d waiters %d", o.calls.Load(), waiters(p, "/private"))
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if c := o.calls.Load(); c != n {
		t.Fatalf("%d upstream calls, want %d", c, n)
	}
	// Now marked: concurrent requests go upstream without a flight.
	c := plugintest.NewCtx("GET", "/private")
	if p.Request(c) {
		t.Fatal("served an uncacheable key")
	}
	if waiters(p, "/private") != 0 || len(p.store.shardFor(p.appendKey(c, "GET", nil)).flights) != 0 {
		t.Fatal("a pass request took a flight")
	}
	p.Finish(c)
}

func TestLockTimeout(t *testing.T) {
	p := mustNew(t, map[string]any{"lock_timeout": "50ms"})
	release := make(chan struct{})
	var first atomic.Bool
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		if first.CompareAndSwap(false, true) {
			<-release
		}
		return 200, []string{"Cache-Control: max-age=60"}, "x"
	}}
	done := make(chan result)
	go func() { done <- get(p, o, "/lock") }()
	deadline := time.Now().Add(5 * time.Second)
	for o.calls.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("first request never went upstream")
		}
		time.Sleep(time.Millisecond)
	}
	// The second waits 50ms, then goes upstream itself.
	r := get(p, o, "/lock")
	if r.body != "x" || o.calls.Load() != 2 || r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("after lock timeout: %q calls %d %s", r.body, o.calls.Load(), r.header.Get("X-Cache-Status"))
	}
	close(release)
	<-done
	if r := get(p, o, "/lock"); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatal("leader did not fill")
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	p := mustNew(t, map[string]any{})
	var version atomic.Int32
	release := make(chan struct{})
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		v := version.Add(1)
		if v == 2 {
			<-release
		}
		return 200, []string{"Cache-Control: max-age=0, stale-while-revalidate=60"}, fmt.Sprint("v", v)
	}}
	get(p, o, "/swr")
	done := make(chan result)
	go func() { done <- get(p, o, "/swr") }() // revalidates, blocked upstream
	deadline := time.Now().Add(5 * time.Second)
	for o.calls.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("revalidation never went upstream")
		}
		time.Sleep(time.Millisecond)
	}
	r := get(p, o, "/swr")
	if r.body != "v1" || r.header.Get("X-Cache-Status") != StatusStale {
		t.Fatalf("while revalidating: %q %s", r.body, r.header.Get("X-Cache-Status"))
	}
	close(release)
	if r := <-done; r.body != "v2" || r.header.Get("X-Cache-Status") != StatusExpired {
		t.Fatalf("revalidating request: %q %s", r.body, r.header.Get("X-Cache-Status"))
	}
}

func TestBypassHeader(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := static(200, "x", "Cache-Control: max-age=60")
	r := o.do(plugintest.NewCtx("DELETE", "/b"), p)
	if r.header.Get("X-Cache-Status") != StatusBypass {
		t.Fatalf("%v", r.header.Fields())
	}
}

func TestAbortedFillReleasesWaiters(t *testing.T) {
	p := mustNew(t, map[string]any{})
	c := plugintest.NewCtx("GET", "/abort")
	if p.Request(c) {
		t.Fatal("served")
	}
	key := p.appendKey(c, "GET", nil)
	sh := p.store.shardFor(key)
	sh.mu.Lock()
	f := sh.flights[string(key)]
	sh.mu.Unlock()
	if f == nil {
		t.Fatal("no flight")
	}
	// The request fails before any response: only Finish runs.
	p.Finish(c)
	select {
	case <-f.done:
	default:
		t.Fatal("Finish did not release the flight")
	}
}

func TestParseCacheControl(t *testing.T) {
	var h httpx.Header
	h.Add("Cache-Control", `public, max-age="30", s-maxage=abc`)
	h.Add("Cache-Control", `no-cache="a, b", stale-while-revalidate=5, stale-if-error=99999999999999`)
	cc := parseCacheControl(&h)
	if !cc.public || cc.maxAge != 30*time.Second || cc.sMaxAge != 0 || !cc.noCache ||
		cc.staleWhileRevalidate != 5*time.Second || cc.staleIfErr != (1<<31)*time.Second {
		t.Fatalf("%+v", cc)
	}
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := static(200, "x", "Cache-Control: max-age=60")
	get(p, o, "/u")
	o.do(plugintest.NewCtx("HEAD", "/u"), p)
	if r := o.do(plugintest.NewCtx("POST", "/u"), p); r.header.Get("X-Cache-Status") != StatusBypass {
		t.Fatalf("POST: %s", r.header.Get("X-Cache-Status"))
	}
	if r := get(p, o, "/u"); r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("GET after POST: %s, want MISS", r.header.Get("X-Cache-Status"))
	}
	if r := o.do(plugintest.NewCtx("HEAD", "/u"), p); r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("HEAD after POST: %s, want MISS", r.header.Get("X-Cache-Status"))
	}
	// A failed unsafe request changes nothing.
	bad := static(500, "no", "Cache-Control: max-age=60")
	bad.do(plugintest.NewCtx("DELETE", "/u"), p)
	if r := get(p, o, "/u"); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("GET after failed DELETE: %s, want HIT", r.header.Get("X-Cache-Status"))
	}
}

func TestRangeRequests(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		if c.Req.Header.Has("Range") {
			return 206, []string{"Content-Range: bytes 0-0/5", "Cache-Control: max-age=60"}, "h"
		}
		return 200, []string{"Cache-Control: max-age=60"}, "hello"
	}}
	if r := get(p, o, "/range", "Range: bytes=0-0"); r.status != 206 || r.body != "h" {
		t.Fatalf("range miss: %d %q", r.status, r.body)
	}
	// The 206 neither filled nor poisoned the key.
	if r := get(p, o, "/range"); r.header.Get("X-Cache-Status") != StatusMiss || r.body != "hello" {
		t.Fatalf("after range: %s %q", r.header.Get("X-Cache-Status"), r.body)
	}
	if r := get(p, o, "/range"); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("not cached: %s", r.header.Get("X-Cache-Status"))
	}
	// A hit ignores Range and sends the whole entry.
	if r := get(p, o, "/range", "Range: bytes=0-0"); r.status != 200 || r.body != "hello" || r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("range hit: %d %q", r.status, r.body)
	}
}
