package proxy

import (
	"bufio"
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
	"github.com/pingap-go/pingap/internal/upstream"
)

func mustTemplate(t *testing.T, s string) *httpx.Template {
	t.Helper()
	tp, err := httpx.CompileTemplate(s, "host1")
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestBuildRequest(t *testing.T) {
	pool := &upstream.Pool{Name: "u", Config: config.Upstream{ReadTimeout: config.Duration(5e9)}}
	route := &Route{
		Pool:          pool,
		SetHeaders:    []HeaderOp{{"Host", mustTemplate(t, "internal.local")}, {"X-Real-IP", mustTemplate(t, "$remote_addr")}},
		AddHeaders:    []HeaderOp{{"X-Via", mustTemplate(t, "$hostname")}},
		RemoveHeaders: []string{"X-Drop"},
	}
	route.Compile()
	tests := []struct {
		name    string
		headers []string
		want    map[string]string // "" = absent
		uri     string
		target  string
	}{
		{
			name:    "hop-by-hop and Connection-listed fields removed",
			target:  "/a?b=c",
			headers: []string{"Connection: keep-alive, X-Secret", "X-Secret: s", "Keep-Alive: 5", "Proxy-Authorization: p", "Upgrade: foo", "TE: gzip", "X-Keep: k"},
			want:    map[string]string{"X-Secret": "", "Keep-Alive": "", "Proxy-Authorization": "", "Upgrade": "", "TE": "", "Connection": "", "X-Keep": "k"},
			uri:     "/a?b=c",
		},
		{
			name:    "TE trailers survives for gRPC",
			target:  "/g",
			headers: []string{"TE: trailers"},
			want:    map[string]string{"TE": "trailers"},
			uri:     "/g",
		},
		{
			name:    "forwarded fields appended and set",
			target:  "/",
			headers: []string{"Host: shop.test:8080", "X-Forwarded-For: 10.0.0.1", "X-Forwarded-For: 10.0.0.2", "X-Forwarded-Proto: gopher", "X-Forwarded-Host: evil"},
			want:    map[string]string{"X-Forwarded-For": "10.0.0.1, 10.0.0.2, 127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "shop.test:8080"},
			uri:     "/",
		},
		{
			name:    "proxy header operations",
			target:  "/",
			headers: []string{"X-Drop: 1", "X-Real-IP: spoofed"},
			want:    map[string]string{"X-Drop": "", "X-Real-IP": "127.0.0.1", "X-Via": "host1", "Host": ""},
			uri:     "/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := plugintest.NewCtx("GET", tt.target, tt.headers...)
			a := &attempt{}
			a.onInfo = a.informational
			a.buildRequest(c, route, c.Req.Body, "")
			if a.out.URI != tt.uri {
				t.Errorf("URI = %q, want %q", a.out.URI, tt.uri)
			}
			if a.out.Host != "internal.local" {
				t.Errorf("Host = %q, want the proxy_set_headers override", a.out.Host)
			}
			for name, want := range tt.want {
				got, ok := a.hdr.Lookup(name)
				if want == "" && ok {
					t.Errorf("%s = %q, want it removed", name, got)
				}
				if want != "" && got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if n := a.hdr.Count("X-Forwarded-For"); n != 1 {
				t.Errorf("%d X-Forwarded-For fields, want 1", n)
			}
		})
	}
}

func TestIsHopByHop(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"Connection", true}, {"connection", true}, {"CONNECTION", true},
		{"Proxy-Connection", true}, {"Keep-Alive", true}, {"keep-alive", true},
		{"Proxy-Authorization", true}, {"TE", true}, {"te", true}, {"Te", true},
		{"Trailer", true}, {"trailer", true}, {"Transfer-Encoding", true},
		{"transfer-encoding", true}, {"Upgrade", true}, {"UPGRADE", true},
		// Same lengths, other names.
		{"Tf", false}, {"XE", false}, {"Trailes", false}, {"Upgradf", false},
		{"Referer", false}, {"Connectiom", false}, {"Keep-Alivf", false},
		{"Set-Cookie", false}, {"Proxy-Connectiom", false}, {"Content-Encoding!", false},
		{"Proxy-Authorizatiom", false},
		// Not hop-by-hop here (the response strip adds Proxy-Authenticate).
		{"Proxy-Authenticate", false}, {"Content-Type", false}, {"Trailers", false},
		{"X-Connection", false}, {"", false}, {"T", false},
	}
	for _, tt := range tests {
		if got := isHopByHop(tt.name); got != tt.want {
			t.Errorf("isHopByHop(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStripConnectionFields(t *testing.T) {
	var h httpx.Header
	for _, f := range [][2]string{{"Connection", "close, X-Internal"}, {"X-Internal", "1"}, {"Keep-Alive", "timeout=5"}, {"Transfer-Encoding", "chunked"}, {"Proxy-Authenticate", "Basic"}, {"Content-Type", "text/plain"}} {
		h.Add(f[0], f[1])
	}
	stripConnectionFields(&h)
	if h.Len() != 1 || h.Get("Content-Type") != "text/plain" {
		t.Fatalf("left %v", h.Fields())
	}
}

func TestUpgradeToken(t *testing.T) {
	for _, tt := range []struct {
		headers []string
		proto   string
		want    string
	}{
		{[]string{"Connection: Upgrade", "Upgrade: websocket"}, "HTTP/1.1", "websocket"},
		{[]string{"Connection: keep-alive, upgrade", "Upgrade: websocket"}, "HTTP/1.1", "websocket"},
		{[]string{"Upgrade: websocket"}, "HTTP/1.1", ""},
		{[]string{"Connection: Upgrade", "Upgrade: websocket"}, "HTTP/2.0", ""},
	} {
		c := plugintest.NewCtx("GET", "/", tt.headers...)
		c.Req.Proto = tt.proto
		if got := upgradeToken(c); got != tt.want {
			t.Errorf("%v %s: %q, want %q", tt.headers, tt.proto, got, tt.want)
		}
	}
}

func TestClientBodyLimit(t *testing.T) {
	c := plugintest.NewCtx("POST", "/")
	plugintest.SetBody(c, "0123456789")
	b := clientBody{r: c.Req.Body, limit: 4, left: 4}
	buf := make([]byte, 64)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = b.Read(buf)
	}
	if err != httpx.ErrBodyTooLarge || b.err != httpx.ErrBodyTooLarge {
		t.Fatalf("err %v, want ErrBodyTooLarge", err)
	}
	plugintest.SetBody(c, "0123")
	b = clientBody{r: c.Req.Body, limit: 4, left: 4}
	n, _ := b.Read(buf)
	_, err = b.Read(buf)
	if n != 4 || err == httpx.ErrBodyTooLarge {
		t.Fatalf("a body exactly at the limit was refused: n=%d err=%v", n, err)
	}
}

// TestClientBodyEOFAtLength: a body of declared length reports io.EOF
// with its last bytes (a transport that reads exactly the length never
// asks again), which marks the body ended: the attempt may be reused.
// A stream of unknown length ends with its own io.EOF.
func TestClientBodyEOFAtLength(t *testing.T) {
	tests := []struct {
		name  string
		body  func() *httpx.Body
		reads []int // bytes per Read of a 4-byte buffer; the last comes with io.EOF
	}{
		{"fixed", func() *httpx.Body {
			var b httpx.Body
			b.ResetFixed(bufio.NewReader(strings.NewReader("0123456789")), 10)
			return &b
		}, []int{4, 4, 2}},
		{"fixed, a multiple of the buffer", func() *httpx.Body {
			var b httpx.Body
			b.ResetFixed(bufio.NewReader(strings.NewReader("01234567")), 8)
			return &b
		}, []int{4, 4}},
		{"stream", func() *httpx.Body {
			var b httpx.Body
			b.ResetStream(strings.NewReader("0123456"), nil)
			return &b
		}, []int{4, 3, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := clientBody{r: tt.body()}
			buf := make([]byte, 4)
			for i, want := range tt.reads {
				n, err := b.Read(buf)
				last := i == len(tt.reads)-1
				if n != want || (err == io.EOF) != last || (err != nil && err != io.EOF) {
					t.Fatalf("read %d: %d, %v; want %d (io.EOF: %v)", i, n, err, want, last)
				}
				if b.ended.Load() != last {
					t.Fatalf("read %d: ended %v, want %v", i, b.ended.Load(), last)
				}
			}
		})
	}
}

// TestRequestTarget covers the reuse of the client's request target and the
// cases where the upstream target must be rebuilt.
func TestRequestTarget(t *testing.T) {
	tests := []struct {
		name, raw, path, query, want string
		reused                       bool
	}{
		{"unchanged", "/a/b?x=1", "/a/b", "x=1", "/a/b?x=1", true},
		{"rewritten path", "/old/b?x=1", "/new/b", "x=1", "/new/b?x=1", false},
		{"normalized path", "/a/../b?x=1", "/b", "x=1", "/b?x=1", false},
		{"same length, different path", "/aa?x=1", "/bb", "x=1", "/bb?x=1", false},
		{"absolute form", "http://h/a?x=1", "/a", "x=1", "/a?x=1", false},
		{"empty query after ?", "/a?", "/a", "", "/a?", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := plugintest.NewCtx("GET", "/")
			c.Req.RequestURI, c.Req.Path, c.Req.RawQuery = tt.raw, tt.path, tt.query
			a := &attempt{}
			got := requestTarget(c, a)
			if got != tt.want {
				t.Fatalf("requestTarget = %q, want %q", got, tt.want)
			}
			if reused := len(a.buf) == 0; reused != tt.reused {
				t.Fatalf("reused the client's target: %v, want %v", reused, tt.reused)
			}
		})
	}
}

// TestForwardedForPeerCache: the cached text of the last peer must follow
// a change of peer.
func TestForwardedForPeerCache(t *testing.T) {
	a := &attempt{}
	for _, tt := range []struct{ peer, xff, want string }{
		{"10.0.0.1:1", "", "10.0.0.1"},
		{"10.0.0.1:2", "", "10.0.0.1"},
		{"[2001:db8::1]:3", "", "2001:db8::1"},
		{"10.0.0.2:4", "1.2.3.4", "1.2.3.4, 10.0.0.2"},
		{"10.0.0.2:5", "", "10.0.0.2"},
	} {
		c := plugintest.NewCtx("GET", "/")
		c.Conn.RemoteAddr = netip.MustParseAddrPort(tt.peer)
		if got := a.forwardedFor(c, tt.xff); got != tt.want {
			t.Errorf("peer %s, X-Forwarded-For %q: got %q, want %q", tt.peer, tt.xff, got, tt.want)
		}
	}
}

// cancelTransport fails every round trip the way a cancelled dial does.
type cancelTransport struct{ calls int }

func (t *cancelTransport) RoundTrip(ctx context.Context, req *httpx.OutRequest, resp *httpx.Response) (httpx.RoundTripResult, error) {
	t.calls++
	return httpx.RoundTripResult{}, &httpx.TransportError{Op: "dial", Err: ctx.Err()}
}
func (t *cancelTransport) CloseIdle() {}

func TestClientCancelIsNotAnUpstreamFailure(t *testing.T) {
	tr := &cancelTransport{}
	cfg := config.Upstream{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, UnhealthyThreshold: 1}
	states := []*upstream.HostState{upstream.NewHostState("u", "127.0.0.1:1", tr), upstream.NewHostState("u", "127.0.0.1:2", tr)}
	pool, err := upstream.NewPool("u", cfg, states)
	if err != nil {
		t.Fatal(err)
	}
	route := &Route{Pool: pool}
	route.Compile()
	p := New(nil)
	for i := 0; i < 5; i++ {
		c := plugintest.NewCtx("GET", "/")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c.Context = ctx
		if h := p.Forward(c, route, nil); h != nil {
			t.Fatal("a cancelled request returned a host")
		}
		if c.Resp.Status != 499 {
			t.Fatalf("status %d, want 499", c.Resp.Status)
		}
	}
	if tr.calls != 5 {
		t.Fatalf("%d round trips for 5 cancelled requests: a cancelled request was retried", tr.calls)
	}
	for _, h := range pool.Hosts {
		if !h.Healthy() || h.Failures() != 0 {
			t.Fatalf("%s: healthy=%v failures=%d after client cancellations", h.Addr, h.Healthy(), h.Failures())
		}
	}
}
