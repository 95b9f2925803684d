package limit

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
	testredis "github.com/pingap-go/pingap/internal/testutil/redis"
)

func newPlugin(t *testing.T, name string, opts map[string]any) *Plugin {
	t.Helper()
	p, err := New(plugin.Env{Name: name, Logger: slog.New(slog.DiscardHandler)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.(*Plugin).Close() })
	return p.(*Plugin)
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{"minimal", map[string]any{"max": int64(5)}, ""},
		{"all keys", map[string]any{"key": "header:X-User", "max": int64(5), "interval": "1m", "type": "rate",
			"redis": "redis://127.0.0.1:1/0", "redis_fail_open": false, "redis_timeout": "50ms"}, ""},
		{"interval int seconds", map[string]any{"max": int64(5), "interval": int64(2)}, ""},
		{"inflight", map[string]any{"max": int64(5), "type": "inflight", "key": "cookie:sid"}, ""},
		{"query key", map[string]any{"max": int64(5), "key": "query:k"}, ""},
		{"missing max", map[string]any{}, "max"},
		{"zero max", map[string]any{"max": int64(0)}, "max"},
		{"max wrong type", map[string]any{"max": "five"}, "max"},
		{"bad key", map[string]any{"max": int64(1), "key": "path"}, "key"},
		{"empty header name", map[string]any{"max": int64(1), "key": "header:"}, "key"},
		{"bad type", map[string]any{"max": int64(1), "type": "leaky"}, "type"},
		{"bad interval", map[string]any{"max": int64(1), "interval": "soon"}, "interval"},
		{"zero interval", map[string]any{"max": int64(1), "interval": "0s"}, "interval"},
		{"bad redis url", map[string]any{"max": int64(1), "redis": "http://x"}, "redis"},
		{"bad fail open", map[string]any{"max": int64(1), "redis_fail_open": "yes"}, "redis_fail_open"},
		{"zero redis timeout", map[string]any{"max": int64(1), "redis_timeout": "0s"}, "redis_timeout"},
		{"unknown", map[string]any{"max": int64(1), "burst": int64(2)}, "burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{Name: "l"}, tt.opts)
			if p != nil {
				p.(*Plugin).Close()
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

func run(p plugin.Plugin, headers ...string) plugintest.Result {
	c := plugintest.NewCtx("GET", "/x", headers...)
	return plugintest.Run(c, plugintest.Upstream{Body: "ok"}, p)
}

func runWith(p plugin.Plugin, c *httpx.Ctx) plugintest.Result {
	return plugintest.Run(c, plugintest.Upstream{Body: "ok"}, p)
}

// expectWindow sends max allowed requests then one refused one.
func expectWindow(t *testing.T, p plugin.Plugin, max int, headers ...string) {
	t.Helper()
	for i := 0; i < max; i++ {
		res := run(p, headers...)
		if res.Status != 200 {
			t.Fatalf("request %d: status %d, want 200", i+1, res.Status)
		}
		if got, want := res.Header.Get("X-RateLimit-Remaining"), httpx.Itoa(int64(max-1-i)); got != want {
			t.Fatalf("request %d: remaining %q, want %q", i+1, got, want)
		}
		if res.Header.Get("X-RateLimit-Limit") != httpx.Itoa(int64(max)) || res.Header.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("request %d: headers %v", i+1, res.Header.Fields())
		}
	}
	res := run(p, headers...)
	if res.Status != 429 || res.Upstream {
		t.Fatalf("request %d: status %d upstream %v, want 429 without upstream", max+1, res.Status, res.Upstream)
	}
	if !strings.Contains(res.Body, `"error"`) || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("429 body %q is not the JSON error", res.Body)
	}
	for _, h := range []string{"Retry-After", "X-RateLimit-Reset"} {
		if v := res.Header.Get(h); v != "1" {
			t.Fatalf("%s = %q, want integer seconds \"1\"", h, v)
		}
	}
	if res.Header.Get("X-RateLimit-Remaining") != "0" || res.Header.Get("X-RateLimit-Limit") != httpx.Itoa(int64(max)) {
		t.Fatalf("429 headers %v", res.Header.Fields())
	}
}

func TestRateRefusesSixthAndRecovers(t *testing.T) {
	interval := 200 * time.Millisecond
	p := newPlugin(t, "l", map[string]any{"max": int64(5), "interval": "200ms"})
	expectWindow(t, p, 5)
	time.Sleep(interval + 20*time.Millisecond) // the bucket refills in one interval
	expectWindow(t, p, 5)
}

func TestRatePartialRefill(t *testing.T) {
	p := newPlugin(t, "l", map[string]any{"max": int64(2), "interval": "200ms"})
	run(p)
	run(p)
	if res := run(p); res.Status != 429 {
		t.Fatalf("third request %d, want 429", res.Status)
	}
	// One token comes back every 100ms: poll (bounded) until it does.
	deadline := time.Now().Add(2 * time.Second)
	for run(p).Status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("no token came back within 2s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		key            string
		a, b, noneHdrs []string
	}{
		{"header:X-User", []string{"X-User: alice"}, []string{"X-User: bob"}, nil},
		{"cookie:sid", []string{"Cookie: x=1; sid=alice"}, []string{"Cookie: sid=bob"}, []string{"Cookie: other=alice"}},
		{"query:k", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			p := newPlugin(t, "l", map[string]any{"max": int64(1), "interval": "1h", "key": tt.key})
			mk := func(user string, hdrs []string) *httpx.Ctx {
				if tt.key == "query:k" {
					if user == "" {
						return plugintest.NewCtx("GET", "/x?j=alice")
					}
					return plugintest.NewCtx("GET", "/x?a=1&k="+user)
				}
				return plugintest.NewCtx("GET", "/x", hdrs...)
			}
			if res := runWith(p, mk("alice", tt.a)); res.Status != 200 {
				t.Fatalf("alice first: %d", res.Status)
			}
			if res := runWith(p, mk("alice", tt.a)); res.Status != 429 {
				t.Fatalf("alice second: %d, want 429", res.Status)
			}
			if res := runWith(p, mk("bob", tt.b)); res.Status != 200 {
				t.Fatalf("bob: %d, want 200 (own bucket)", res.Status)
			}
			// Requests without the key value share the empty key.
			if res := runWith(p, mk("", tt.noneHdrs)); res.Status != 200 {
				t.Fatalf("keyless first: %d", res.Status)
			}
			if res := runWith(p, mk("", tt.noneHdrs)); res.Status != 429 {
				t.Fatalf("keyless second: %d, want 429", res.Status)
			}
		})
	}
}

func TestKeyIP(t *testing.T) {
	p := newPlugin(t, "l", map[string]any{"max": int64(1), "interval": "1h"})
	from := func(ip string) int {
		c := plugintest.NewCtx("GET", "/")
		c.ClientIP = netip.MustParseAddr(ip)
		return runWith(p, c).Status
	}
	if s := from("10.0.0.1"); s != 200 {
		t.Fatalf("first 10.0.0.1: %d", s)
	}
	if s := from("10.0.0.1"); s != 429 {
		t.Fatalf("second 10.0.0.1: %d", s)
	}
	if s := from("2001:db8::1"); s != 200 {
		t.Fatalf("2001:db8::1: %d", s)
	}
}

func TestCookieAndQueryParsing(t *testing.T) {
	tests := []struct {
		in, name, want string
		ok             bool
	}{
		{"a=1; b=2", "b", "2", true},
		{"a=1;b=2", "b", "2", true},
		{`a="q v"`, "a", "q v", true},
		{"ab=1", "a", "", false},
		{"", "a", "", false},
	}
	for _, tt := range tests {
		if got, ok := httpx.Cookie(tt.in, tt.name); got != tt.want || ok != tt.ok {
			t.Errorf("httpx.Cookie(%q,%q) = %q,%v", tt.in, tt.name, got, ok)
		}
	}
	if v, ok := httpx.QueryValue("a=1&k=x%20y&k=2", "k"); v != "x%20y" || !ok {
		t.Errorf("queryValue = %q %v", v, ok)
	}
	if _, ok := httpx.QueryValue("kk=1", "k"); ok {
		t.Error("queryValue matched a prefix")
	}
}

// acquire runs only the request phase, keeping the request in flight.
func acquire(p *Plugin, key string) (*httpx.Ctx, bool) {
	c := plugintest.NewCtx("GET", "/", "X-K: "+key)
	handled := p.Request(c)
	p.Response(c)
	return c, !handled
}

func testInflight(t *testing.T, a, b *Plugin) {
	t.Helper()
	c1, ok1 := acquire(a, "k")
	c2, ok2 := acquire(b, "k")
	if !ok1 || !ok2 {
		t.Fatalf("first two refused: %v %v", ok1, ok2)
	}
	if got := c2.Resp.Header.Get("X-RateLimit-Remaining"); got != "0" {
		t.Fatalf("remaining after 2 of 2 = %q", got)
	}
	c3, ok3 := acquire(a, "k")
	if ok3 || c3.Resp.Status != 429 || c3.Resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third: allowed %v status %d headers %v", ok3, c3.Resp.Status, c3.Resp.Header.Fields())
	}
	a.Finish(c3) // a refused request gives nothing back
	cOther, ok := acquire(b, "other")
	if !ok {
		t.Fatal("another key was refused")
	}
	b.Finish(cOther)
	a.Finish(c1)
	c4, ok4 := acquire(b, "k")
	if !ok4 {
		t.Fatal("slot not given back by Finish")
	}
	c5, ok5 := acquire(a, "k")
	if ok5 {
		t.Fatal("a refused request's Finish released a slot")
	}
	a.Finish(c5)
	b.Finish(c2)
	b.Finish(c4)
}

func TestInflightLocal(t *testing.T) {
	p := newPlugin(t, "l", map[string]any{"max": int64(2), "type": "inflight", "key": "header:X-K"})
	testInflight(t, p, p)
	// Every slot was released; a sweep a period later empties the maps.
	later := p.now() + int64(2*time.Second)
	for i := range p.shards {
		for k, s := range p.shards[i].slots {
			if s.n != 0 {
				t.Fatalf("slot %q still holds %d", k, s.n)
			}
		}
		p.sweep(&p.shards[i], later)
		if n := len(p.shards[i].slots); n != 0 {
			t.Fatalf("shard %d holds %d slots after sweep", i, n)
		}
	}
}

func TestSweepDropsIdleKeys(t *testing.T) {
	p := newPlugin(t, "l", map[string]any{"max": int64(5), "interval": "1s"})
	for i := 0; i < 300; i++ {
		c := plugintest.NewCtx("GET", "/")
		c.ClientIP = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		runWith(p, c)
	}
	count := func() int {
		n := 0
		for i := range p.shards {
			n += len(p.shards[i].buckets)
		}
		return n
	}
	if n := count(); n != 300 {
		t.Fatalf("%d buckets, want 300", n)
	}
	later := p.now() + int64(2*time.Second)
	for i := range p.shards {
		p.sweep(&p.shards[i], later)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d buckets after sweep, want 0", n)
	}
}

func TestRedisSharedRate(t *testing.T) {
	addr := testredis.Start(t)
	opts := map[string]any{"max": int64(5), "interval": "300ms", "redis": "redis://" + addr + "/0"}
	a := newPlugin(t, "shared", opts) // two instances, as if two proxies
	b := newPlugin(t, "shared", opts)
	for i := 0; i < 5; i++ {
		p := a
		if i%2 == 1 {
			p = b
		}
		res := run(p)
		if res.Status != 200 {
			t.Fatalf("request %d: %d", i+1, res.Status)
		}
		if got := res.Header.Get("X-RateLimit-Remaining"); got != httpx.Itoa(int64(4-i)) {
			t.Fatalf("request %d: remaining %q", i+1, got)
		}
	}
	for _, p := range []*Plugin{a, b} {
		res := run(p)
		if res.Status != 429 || res.Header.Get("Retry-After") != "1" {
			t.Fatalf("over the shared limit: %d %v", res.Status, res.Header.Fields())
		}
	}
	// Another plugin name has its own counters.
	if res := run(newPlugin(t, "other", opts)); res.Status != 200 {
		t.Fatalf("other plugin: %d", res.Status)
	}
	time.Sleep(320 * time.Millisecond) // one interval refills the bucket
	for i := 0; i < 5; i++ {
		if res := run(b); res.Status != 200 {
			t.Fatalf("after the interval, request %d: %d", i+1, res.Status)
		}
	}
}

func TestRedisSharedInflight(t *testing.T) {
	addr := testredis.Start(t)
	opts := map[string]any{"max": int64(2), "type": "inflight", "key": "header:X-K", "redis": "redis://" + addr}
	testInflight(t, newPlugin(t, "inf", opts), newPlugin(t, "inf", opts))
}

// blackhole accepts TCP connections and never answers: a hung Redis.
func blackhole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRedisDown(t *testing.T) {
	const timeout = 50 * time.Millisecond
	tests := []struct {
		name     string
		addr     func(*testing.T) string
		failOpen bool
		want     int
	}{
		{"refused fail open", closedPort, true, 200},
		{"refused fail closed", closedPort, false, 429},
		{"hung fail open", blackhole, true, 200},
		{"hung fail closed", blackhole, false, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, typ := range []string{"rate", "inflight"} {
				p := newPlugin(t, "down", map[string]any{"max": int64(1), "type": typ, "redis": "redis://" + tt.addr(t),
					"redis_fail_open": tt.failOpen, "redis_timeout": "50ms"})
				for i := 0; i < 3; i++ { // the first call hits Redis, later ones the backoff
					start := time.Now()
					res := run(p)
					elapsed := time.Since(start)
					if res.Status != tt.want {
						t.Fatalf("%s request %d: status %d, want %d", typ, i, res.Status, tt.want)
					}
					// Generous bound: the point is "bounded by the timeout", not speed.
					if elapsed > timeout+500*time.Millisecond {
						t.Fatalf("%s request %d took %v with redis_timeout %v", typ, i, elapsed, timeout)
					}
					if tt.want == 200 && res.Header.Has("X-RateLimit-Limit") {
						t.Fatalf("fail-open response carries X-RateLimit fields")
					}
				}
			}
		})
	}
}

func TestRedisRecoversAfterBackoff(t *testing.T) {
	addr := testredis.Start(t)
	p := newPlugin(t, "rec", map[string]any{"max": int64(10), "redis": "redis://" + addr, "redis_fail_open": false})
	if res := run(p); res.Status != 200 || !res.Header.Has("X-RateLimit-Limit") {
		t.Fatalf("healthy redis: %d", res.Status)
	}
	// Pretend Redis just failed: requests are refused without calling it...
	p.downUntil.Store(p.now() + int64(time.Hour))
	if res := run(p); res.Status != 429 {
		t.Fatalf("during backoff: %d", res.Status)
	}
	// ...until the backoff ends.
	p.downUntil.Store(0)
	if res := run(p); res.Status != 200 || res.Header.Get("X-RateLimit-Remaining") != "8" {
		t.Fatalf("after backoff: %d %v", res.Status, res.Header.Fields())
	}
}
