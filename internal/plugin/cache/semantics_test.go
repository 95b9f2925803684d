package cache

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// TestClientConditionals: a client's If-None-Match / If-Modified-Since on
// a fresh stored response is answered by the cache (RFC 9111 4.3.2).
func TestClientConditionals(t *testing.T) {
	lm := "Mon, 02 Jan 2006 15:04:05 GMT"
	tests := []struct {
		name    string
		method  string
		stored  []string // upstream response fields
		status  int      // upstream (stored) status
		reqHdrs []string
		want    int
	}{
		{"inm strong match", "GET", []string{`ETag: "v1"`}, 200, []string{`If-None-Match: "v1"`}, 304},
		{"inm weak match", "GET", []string{`ETag: W/"v1"`}, 200, []string{`If-None-Match: "v1"`}, 304},
		{"inm list", "GET", []string{`ETag: "v1"`}, 200, []string{`If-None-Match: "a", W/"v1"`}, 304},
		{"inm second field", "GET", []string{`ETag: "v1"`}, 200, []string{`If-None-Match: "a"`, `If-None-Match: "v1"`}, 304},
		{"inm star", "GET", nil, 200, []string{`If-None-Match: *`}, 304},
		{"inm no match", "GET", []string{`ETag: "v1"`}, 200, []string{`If-None-Match: "v2"`}, 200},
		{"inm no etag stored", "GET", nil, 200, []string{`If-None-Match: "v1"`}, 200},
		{"inm wins over ims", "GET", []string{`ETag: "v1"`, "Last-Modified: " + lm}, 200,
			[]string{`If-None-Match: "v2"`, "If-Modified-Since: " + lm}, 200},
		{"ims equal", "GET", []string{"Last-Modified: " + lm}, 200, []string{"If-Modified-Since: " + lm}, 304},
		{"ims later", "GET", []string{"Last-Modified: " + lm}, 200, []string{"If-Modified-Since: Tue, 03 Jan 2006 00:00:00 GMT"}, 304},
		{"ims earlier", "GET", []string{"Last-Modified: " + lm}, 200, []string{"If-Modified-Since: Sun, 01 Jan 2006 00:00:00 GMT"}, 200},
		{"ims rfc850", "GET", []string{"Last-Modified: " + lm}, 200, []string{"If-Modified-Since: Monday, 02-Jan-06 15:04:05 GMT"}, 304},
		{"ims invalid", "GET", []string{"Last-Modified: " + lm}, 200, []string{"If-Modified-Since: yesterday"}, 200},
		{"ims by Date", "GET", []string{"Date: " + httpDate(time.Now().Add(-20*time.Second))}, 200,
			[]string{"If-Modified-Since: " + httpDate(time.Now())}, 304},
		{"ims before Date", "GET", []string{"Date: " + httpDate(time.Now())}, 200,
			[]string{"If-Modified-Since: " + httpDate(time.Now().Add(-time.Hour))}, 200},
		{"head", "HEAD", []string{`ETag: "v1"`}, 200, []string{`If-None-Match: "v1"`}, 304},
		{"stored 404 ignores conditionals", "GET", []string{`ETag: "v1"`}, 404, []string{`If-None-Match: "v1"`}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, map[string]any{})
			hdrs := append([]string{"Cache-Control: max-age=60", "Content-Type: text/plain", "X-Other: 1"}, tt.stored...)
			o := static(tt.status, "payload", hdrs...)
			o.do(plugintest.NewCtx(tt.method, "/c"), p)
			r := o.do(plugintest.NewCtx(tt.method, "/c", tt.reqHdrs...), p)
			if r.status != tt.want || r.header.Get("X-Cache-Status") != StatusHit {
				t.Fatalf("got %d %s, want %d HIT", r.status, r.header.Get("X-Cache-Status"), tt.want)
			}
			if o.calls.Load() != 1 {
				t.Fatalf("%d upstream calls", o.calls.Load())
			}
			if r.status == 304 {
				if r.body != "" || r.header.Has("Content-Type") || r.header.Has("X-Other") || r.header.Has("Content-Length") {
					t.Fatalf("304 carries %q %v", r.body, r.header.Fields())
				}
				if r.header.Get("Cache-Control") != "max-age=60" || r.header.Get("Age") == "" {
					t.Fatalf("304 lacks Cache-Control/Age: %v", r.header.Fields())
				}
				for _, name := range []string{"ETag", "Last-Modified", "Date"} {
					stored := static(0, "", tt.stored...)
					var h httpx.Header
					for _, f := range stored.handlerFields() {
						h.Add(f[0], f[1])
					}
					if r.header.Get(name) != h.Get(name) {
						t.Fatalf("304 %s %q, want %q", name, r.header.Get(name), h.Get(name))
					}
				}
			} else if tt.method == "GET" && r.body != "payload" {
				t.Fatalf("body %q", r.body)
			}
		})
	}
}

// handlerFields returns the fields a static origin answers with.
func (o *origin) handlerFields() [][2]string {
	_, hdrs, _ := o.handler(nil)
	var out [][2]string
	for _, h := range hdrs {
		for i := 0; i < len(h); i++ {
			if h[i] == ':' {
				v := h[i+1:]
				for len(v) > 0 && v[0] == ' ' {
					v = v[1:]
				}
				out = append(out, [2]string{h[:i], v})
				break
			}
		}
	}
	return out
}

// TestConditionalOnStaleEntry: a client's conditional on a stale entry goes
// upstream with the client's own validators; an upstream 304 naming the
// stored ETag reaches the client and freshens the stored response.
func TestConditionalOnStaleEntry(t *testing.T) {
	p := mustNew(t, map[string]any{})
	var sawINM atomic.Value
	var n atomic.Int32
	o := &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		sawINM.Store(c.Req.Header.Get("If-None-Match"))
		if n.Add(1) == 1 {
			return 200, []string{"Cache-Control: max-age=10", "Age: 20", `ETag: "v1"`}, "payload"
		}
		return 304, []string{"Cache-Control: max-age=60", `ETag: "v1"`}, ""
	}}
	get(p, o, "/cs") // stale on arrival
	r := get(p, o, "/cs", `If-None-Match: "v1", "v0"`)
	if sawINM.Load() != `"v1", "v0"` {
		t.Fatalf("upstream saw If-None-Match %q", sawINM.Load())
	}
	if r.status != 304 || r.header.Get("X-Cache-Status") != StatusExpired {
		t.Fatalf("got %d %s", r.status, r.header.Get("X-Cache-Status"))
	}
	r = get(p, o, "/cs")
	if r.status != 200 || r.body != "payload" || r.header.Get("X-Cache-Status") != StatusHit || r.header.Get("Cache-Control") != "max-age=60" {
		t.Fatalf("after freshening: %d %q %s %v", r.status, r.body, r.header.Get("X-Cache-Status"), r.header.Fields())
	}
	if n.Load() != 2 {
		t.Fatalf("%d upstream calls", n.Load())
	}
}

func TestParseIMFFixdate(t *testing.T) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Mon, 02 Jan 2006 15:04:05 GMT", "Thu, 31 Dec 2099 23:59:59 GMT"} {
		want, _ := time.Parse(httpTimeFormat, s)
		got, ok := parseIMFFixdate(s)
		if !ok || got != want.Unix() {
			t.Errorf("%q: %d %v, want %d", s, got, ok, want.Unix())
		}
	}
	for _, s := range []string{"", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
		"Sun, 0x Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT"} {
		if _, ok := parseIMFFixdate(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

// TestAge: the Age field of hits is the corrected initial age plus the
// time stored (RFC 9111 4.2.3).
func TestAge(t *testing.T) {
	tests := []struct {
		name   string
		hdrs   []string
		lo, hi int64
		fresh  bool
	}{
		{"no age", nil, 0, 1, true},
		{"upstream age", []string{"Age: 30"}, 30, 31, true},
		{"date in the past", []string{"Date: " + httpDate(time.Now().Add(-40*time.Second))}, 39, 41, true},
		{"age beats date", []string{"Age: 50", "Date: " + httpDate(time.Now().Add(-10*time.Second))}, 50, 51, true},
		{"date in the future", []string{"Date: " + httpDate(time.Now().Add(time.Hour))}, 0, 1, true},
		{"invalid age", []string{"Age: soon"}, 0, 1, true},
		{"older than max-age", []string{"Age: 61"}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, map[string]any{})
			o := static(200, "x", append([]string{"Cache-Control: max-age=60"}, tt.hdrs...)...)
			get(p, o, "/age")
			r := get(p, o, "/age")
			if !tt.fresh {
				if r.header.Get("X-Cache-Status") != StatusExpired {
					t.Fatalf("status %s", r.header.Get("X-Cache-Status"))
				}
				return
			}
			if r.header.Get("X-Cache-Status") != StatusHit {
				t.Fatalf("status %s", r.header.Get("X-Cache-Status"))
			}
			age, err := strconv.ParseInt(r.header.Get("Age"), 10, 64)
			if err != nil || age < tt.lo || age > tt.hi || r.header.Count("Age") != 1 {
				t.Fatalf("Age %v, want %d..%d", r.header.Fields(), tt.lo, tt.hi)
			}
		})
	}
}

func TestInitialAgeResponseDelay(t *testing.T) {
	now := time.Now()
	var h httpx.Header
	h.Add("Age", "10")
	if got := initialAge(&h, now.Add(-5*time.Second), now); got != 15*time.Second {
		t.Fatalf("Age + delay = %v, want 15s", got)
	}
	h.Add("Date", httpDate(now.Add(-time.Minute)))
	if got := initialAge(&h, now.Add(-5*time.Second), now); got < 59*time.Second || got > 61*time.Second {
		t.Fatalf("apparent age %v, want 60s", got)
	}
}

// TestAgeAfterRevalidation: a 304 restarts the age from the 304's own.
func TestAgeAfterRevalidation(t *testing.T) {
	p := mustNew(t, map[string]any{})
	var n atomic.Int32
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		if n.Add(1) == 1 {
			return 200, []string{"Cache-Control: max-age=10", "Age: 100", `ETag: "e"`}, "body"
		}
		return 304, []string{"Cache-Control: max-age=10", "Age: 3", `ETag: "e"`}, ""
	}}
	get(p, o, "/ar")
	r := get(p, o, "/ar")
	if r.header.Get("X-Cache-Status") != StatusExpired || r.body != "body" || (r.header.Get("Age") != "3" && r.header.Get("Age") != "4") {
		t.Fatalf("revalidated: %s %q Age %q", r.header.Get("X-Cache-Status"), r.body, r.header.Get("Age"))
	}
	if r := get(p, o, "/ar"); r.header.Get("X-Cache-Status") != StatusHit || (r.header.Get("Age") != "3" && r.header.Get("Age") != "4") {
		t.Fatalf("hit after revalidation: %s Age %q", r.header.Get("X-Cache-Status"), r.header.Get("Age"))
	}
}

// TestRequestMaxAge: a request max-age smaller than the entry's age
// revalidates.
func TestRequestMaxAge(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := static(200, "x", "Cache-Control: max-age=600", "Age: 30")
	get(p, o, "/rma")
	if r := get(p, o, "/rma", "Cache-Control: max-age=60"); r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("max-age=60: %s", r.header.Get("X-Cache-Status"))
	}
	if r := get(p, o, "/rma", "Cache-Control: max-age=10"); r.header.Get("X-Cache-Status") != StatusExpired {
		t.Fatalf("max-age=10: %s", r.header.Get("X-Cache-Status"))
	}
}

// blockingOrigin answers version 1 (with the given fields) at once, then
// blocks every later call until release is closed and answers a fresh
// version.
func blockingOrigin(hdrs ...string) (*origin, chan struct{}) {
	release := make(chan struct{})
	var n atomic.Int32
	return &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		v := n.Add(1)
		if v == 1 {
			return 200, hdrs, "v1"
		}
		<-release
		return 200, []string{"Cache-Control: max-age=60"}, fmt.Sprint("v", v)
	}}, release
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStaleWhileRevalidateWindow: STALE is served only within the window,
// not under must-revalidate, and not to a request with no-cache; the
// others wait for the revalidation and then HIT.
func TestStaleWhileRevalidateWindow(t *testing.T) {
	tests := []struct {
		name    string
		hdrs    []string
		reqHdrs []string
		stale   bool
	}{
		{"within window", []string{"Cache-Control: max-age=10, stale-while-revalidate=30", "Age: 20"}, nil, true},
		{"beyond window", []string{"Cache-Control: max-age=10, stale-while-revalidate=5", "Age: 20"}, nil, false},
		{"must-revalidate", []string{"Cache-Control: max-age=10, stale-while-revalidate=30, must-revalidate", "Age: 20"}, nil, false},
		{"request no-cache", []string{"Cache-Control: max-age=10, stale-while-revalidate=30", "Age: 20"}, []string{"Cache-Control: no-cache"}, false},
		{"no directive", []string{"Cache-Control: max-age=10", "Age: 20"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, map[string]any{})
			o, release := blockingOrigin(tt.hdrs...)
			get(p, o, "/w")
			done := make(chan result, 2)
			go func() { done <- get(p, o, "/w") }()
			waitFor(t, "revalidation upstream", func() bool { return o.calls.Load() == 2 })
			if tt.stale {
				r := get(p, o, "/w", tt.reqHdrs...)
				if r.body != "v1" || r.header.Get("X-Cache-Status") != StatusStale {
					t.Fatalf("got %q %s, want v1 STALE", r.body, r.header.Get("X-Cache-Status"))
				}
				if age, _ := strconv.Atoi(r.header.Get("Age")); age < 20 {
					t.Fatalf("stale Age %q", r.header.Get("Age"))
				}
				close(release)
				<-done
				return
			}
			go func() { done <- get(p, o, "/w", tt.reqHdrs...) }()
			waitFor(t, "a waiter", func() bool { return waiters(p, "/w") == 1 })
			close(release)
			a, b := <-done, <-done
			for _, r := range []result{a, b} {
				if r.body != "v2" || r.header.Get("X-Cache-Status") == StatusStale {
					t.Fatalf("got %q %s", r.body, r.header.Get("X-Cache-Status"))
				}
			}
			if o.calls.Load() != 2 {
				t.Fatalf("%d upstream calls", o.calls.Load())
			}
		})
	}
}

// TestStaleIfErrorWindow: a stale entry replaces an upstream 5xx within
// stale-if-error; beyond it, or for a 4xx, the upstream answer goes
// through (EXPIRED).
func TestStaleIfErrorWindow(t *testing.T) {
	tests := []struct {
		name    string
		hdrs    []string
		errCode int
		stale   bool
	}{
		{"502 within", []string{"Cache-Control: max-age=10, stale-if-error=60", "Age: 20"}, 502, true},
		{"500 within", []string{"Cache-Control: max-age=10, stale-if-error=60", "Age: 20"}, 500, true},
		{"503 within", []string{"Cache-Control: max-age=10, stale-if-error=60", "Age: 20"}, 503, true},
		{"504 within", []string{"Cache-Control: max-age=10, stale-if-error=60", "Age: 20"}, 504, true},
		{"beyond window", []string{"Cache-Control: max-age=10, stale-if-error=5", "Age: 20"}, 502, false},
		{"4xx is no error", []string{"Cache-Control: max-age=10, stale-if-error=60", "Age: 20"}, 403, false},
		{"501 is no outage", []string{"Cache-Control: max-age=10, stale-if-error=60", "Age: 20"}, 501, false},
		{"no directive", []string{"Cache-Control: max-age=10", "Age: 20"}, 502, false},
		{"no-cache response", []string{"Cache-Control: no-cache, stale-if-error=60", `ETag: "x"`}, 502, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, map[string]any{})
			get(p, static(200, "good", tt.hdrs...), "/sie")
			r := get(p, static(tt.errCode, `{"error":"x"}`), "/sie")
			if tt.stale {
				if r.status != 200 || r.body != "good" || r.header.Get("X-Cache-Status") != StatusStale || r.header.Get("Age") == "" {
					t.Fatalf("got %d %q %s", r.status, r.body, r.header.Get("X-Cache-Status"))
				}
				return
			}
			if r.status != tt.errCode || r.header.Get("X-Cache-Status") != StatusExpired {
				t.Fatalf("got %d %s, want %d EXPIRED", r.status, r.header.Get("X-Cache-Status"), tt.errCode)
			}
		})
	}
}

// TestCacheStatusContract: X-Cache-Status for every kind of request.
func TestCacheStatusContract(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		method  string
		reqHdrs []string
		prime   bool // a GET /x stored first
		want    string
	}{
		{"absent", nil, "GET", nil, false, StatusMiss},
		{"present", nil, "GET", nil, true, StatusHit},
		{"HEAD absent", nil, "HEAD", nil, false, StatusMiss},
		{"POST", nil, "POST", nil, true, StatusBypass},
		{"PUT", nil, "PUT", nil, false, StatusBypass},
		{"OPTIONS", nil, "OPTIONS", nil, false, StatusBypass},
		{"method not configured", map[string]any{"methods": []any{"GET"}}, "HEAD", nil, false, StatusBypass},
		{"request no-store", nil, "GET", []string{"Cache-Control: no-store"}, true, StatusBypass},
		{"request no-store among others", nil, "GET", []string{"Cache-Control: max-age=5, NO-STORE"}, true, StatusBypass},
		{"upgrade", nil, "GET", []string{"Upgrade: websocket"}, true, StatusBypass},
		{"request no-cache", nil, "GET", []string{"Cache-Control: no-cache"}, true, StatusExpired},
		{"range absent", nil, "GET", []string{"Range: bytes=0-1"}, false, StatusMiss},
		{"authorization absent", nil, "GET", []string{"Authorization: Basic eA=="}, false, StatusMiss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts == nil {
				opts = map[string]any{}
			}
			p := mustNew(t, opts)
			o := static(200, "x", "Cache-Control: max-age=60")
			if tt.prime {
				get(p, o, "/x")
			}
			r := o.do(plugintest.NewCtx(tt.method, "/x", tt.reqHdrs...), p)
			if got := r.header.Get("X-Cache-Status"); got != tt.want || r.header.Count("X-Cache-Status") != 1 {
				t.Fatalf("X-Cache-Status %v, want %s", r.header.Fields(), tt.want)
			}
		})
	}
	// A response that must not be stored is still a MISS, also the next time.
	p := mustNew(t, map[string]any{})
	o := static(200, "x", "Cache-Control: no-store")
	for i := 0; i < 2; i++ {
		if r := get(p, o, "/ns"); r.header.Get("X-Cache-Status") != StatusMiss {
			t.Fatalf("uncacheable response %d: %s", i, r.header.Get("X-Cache-Status"))
		}
	}
}

// TestPurgeContract: PURGE answers 200/404/403 with the JSON error body;
// the default list is loopback only (IPv4, IPv6, IPv4-mapped).
func TestPurgeContract(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := static(200, "x", "Cache-Control: max-age=60")
	purge := func(ip string) result {
		c := plugintest.NewCtx("PURGE", "/pc")
		c.ClientIP = netip.MustParseAddr(ip)
		return o.do(c, p)
	}
	for _, ip := range []string{"192.168.1.1", "10.0.0.1", "::2", "fe80::1", "128.0.0.1"} {
		if r := purge(ip); r.status != 403 || r.body != `{"error":"purge not allowed"}` {
			t.Fatalf("%s: %d %q", ip, r.status, r.body)
		}
	}
	for _, ip := range []string{"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"} {
		get(p, o, "/pc")
		if r := purge(ip); r.status != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q", ip, r.status, r.body)
		}
		if r := purge(ip); r.status != 404 || r.body != `{"error":"not cached"}` {
			t.Fatalf("%s again: %d %q", ip, r.status, r.body)
		}
	}
}

// TestHitForMiss: a key marked not storable is cached again as soon as its
// response is storable; an upstream error does not mark it.
func TestHitForMiss(t *testing.T) {
	p := mustNew(t, map[string]any{})
	var n atomic.Int32
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		if n.Add(1) == 1 {
			return 200, []string{"Cache-Control: private"}, "mine"
		}
		return 200, []string{"Cache-Control: max-age=60"}, "public"
	}}
	get(p, o, "/hfm")
	passing := func(path string) bool {
		c := plugintest.NewCtx("GET", path)
		key := p.appendKey(c, "GET", nil)
		sh := p.store.shardFor(key)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		_, ok := sh.pass[string(key)]
		return ok
	}
	if !passing("/hfm") {
		t.Fatal("private response did not mark the key")
	}
	if r := get(p, o, "/hfm"); r.body != "public" || r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("second: %q %s", r.body, r.header.Get("X-Cache-Status"))
	}
	if passing("/hfm") {
		t.Fatal("a stored response left the mark")
	}
	if r := get(p, o, "/hfm"); r.body != "public" || r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("third: %q %s", r.body, r.header.Get("X-Cache-Status"))
	}
	for _, code := range []int{500, 502, 503, 504} {
		path := fmt.Sprint("/err", code)
		if r := get(p, static(code, "down"), path); r.status != code || r.header.Get("X-Cache-Status") != StatusMiss {
			t.Fatalf("%d: %d %s", code, r.status, r.header.Get("X-Cache-Status"))
		}
		if passing(path) {
			t.Fatalf("%d marked the key", code)
		}
	}
}

// TestPurgeDuringFill: a response fetched while a PURGE of its key ran is
// served to its request but not stored (it may predate the purge).
func TestPurgeDuringFill(t *testing.T) {
	p := mustNew(t, map[string]any{"dir": t.TempDir()})
	defer p.Close()
	release := make(chan struct{})
	var n atomic.Int32
	o := &origin{handler: func(*httpx.Ctx) (int, []string, string) {
		if n.Add(1) == 1 {
			<-release
			return 200, []string{"Cache-Control: max-age=60"}, "old"
		}
		return 200, []string{"Cache-Control: max-age=60"}, "new"
	}}
	done := make(chan result)
	go func() { done <- get(p, o, "/pdf") }()
	waitFor(t, "the fill upstream", func() bool { return n.Load() == 1 })
	if r := o.do(plugintest.NewCtx("PURGE", "/pdf"), p); r.status != 404 {
		t.Fatalf("purge: %d", r.status)
	}
	close(release)
	if r := <-done; r.body != "old" {
		t.Fatalf("filling request got %q", r.body)
	}
	if r := get(p, o, "/pdf"); r.body != "new" || r.header.Get("X-Cache-Status") != StatusMiss {
		t.Fatalf("after purge: %q %s", r.body, r.header.Get("X-Cache-Status"))
	}
	if r := get(p, o, "/pdf"); r.body != "new" || r.header.Get("X-Cache-Status") != StatusHit {
		t.Fatalf("refilled: %q %s", r.body, r.header.Get("X-Cache-Status"))
	}
}

// TestRequestDirectives: max-stale, min-fresh and only-if-cached (RFC 9111
// 5.2.1).
func TestRequestDirectives(t *testing.T) {
	tests := []struct {
		name     string
		stored   []string // nil: nothing stored
		reqCC    string
		status   int
		xcache   string
		upstream int32 // calls after the priming one
	}{
		{"max-stale within", []string{"Cache-Control: max-age=10", "Age: 20"}, "max-stale=30", 200, StatusStale, 0},
		{"max-stale any", []string{"Cache-Control: max-age=10", "Age: 2000"}, "max-stale", 200, StatusStale, 0},
		{"max-stale beyond", []string{"Cache-Control: max-age=10", "Age: 20"}, "max-stale=5", 200, StatusExpired, 1},
		{"max-stale vs must-revalidate", []string{"Cache-Control: max-age=10, must-revalidate", "Age: 20"}, "max-stale", 200, StatusExpired, 1},
		{"min-fresh satisfied", []string{"Cache-Control: max-age=100", "Age: 20"}, "min-fresh=50", 200, StatusHit, 0},
		{"min-fresh not satisfied", []string{"Cache-Control: max-age=100", "Age: 20"}, "min-fresh=90", 200, StatusExpired, 1},
		{"only-if-cached hit", []string{"Cache-Control: max-age=100"}, "only-if-cached", 200, StatusHit, 0},
		{"only-if-cached stale", []string{"Cache-Control: max-age=10", "Age: 20"}, "only-if-cached", 504, StatusMiss, 0},
		{"only-if-cached absent", nil, "only-if-cached", 504, StatusMiss, 0},
		{"only-if-cached + max-stale", []string{"Cache-Control: max-age=10", "Age: 20"}, "only-if-cached, max-stale", 200, StatusStale, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, map[string]any{})
			o := static(200, "x", tt.stored...)
			if tt.stored != nil {
				get(p, o, "/rd")
			}
			before := o.calls.Load()
			r := get(p, o, "/rd", "Cache-Control: "+tt.reqCC)
			if r.status != tt.status || r.header.Get("X-Cache-Status") != tt.xcache {
				t.Fatalf("got %d %s %q, want %d %s", r.status, r.header.Get("X-Cache-Status"), r.body, tt.status, tt.xcache)
			}
			if got := o.calls.Load() - before; got != tt.upstream {
				t.Fatalf("%d upstream calls, want %d", got, tt.upstream)
			}
			if tt.status == 504 && r.body != `{"error":"not cached"}` {
				t.Fatalf("504 body %q", r.body)
			}
		})
	}
}
