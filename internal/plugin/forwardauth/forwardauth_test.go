package forwardauth

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// authServer decides by the Authorization header it receives and records
// the last request's header.
type authServer struct {
	mu   sync.Mutex
	last http.Header
}

func (a *authServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.last = r.Header.Clone()
	a.mu.Unlock()
	switch r.Header.Get("Authorization") {
	case "good":
		w.Header().Set("X-User", "alice")
		w.Header().Add("X-Role", "admin")
		w.Header().Add("X-Role", "dev")
		w.Header().Set("X-Secret-Internal", "not copied")
		w.Write([]byte("ok"))
	case "redirect":
		http.Redirect(w, r, "https://login.example.com/?next=x", http.StatusFound)
	case "big":
		w.WriteHeader(403)
		w.Write([]byte(strings.Repeat("x", maxBody+100)))
	case "slow":
		<-r.Context().Done()
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		w.Write([]byte(`{"error":"who are you"}`))
	}
}

func TestForwardAuth(t *testing.T) {
	auth := &authServer{}
	srv := httptest.NewServer(auth)
	defer srv.Close()
	opts := map[string]any{
		"url":              srv.URL + "/check",
		"request_headers":  []any{"Authorization", "cookie"},
		"upstream_headers": []any{"X-User", "x-role"},
		"timeout":          "300ms",
	}
	tests := []struct {
		name     string
		auth     string
		status   int
		body     string
		header   [2]string
		upstream bool
	}{
		{name: "allowed", auth: "good", status: 200, body: "up", upstream: true},
		{name: "refused relayed", auth: "bad", status: 401, body: `{"error":"who are you"}`, header: [2]string{"WWW-Authenticate", `Bearer realm="x"`}},
		{name: "redirect relayed", auth: "redirect", status: 302, header: [2]string{"Location", "https://login.example.com/?next=x"}},
		{name: "timeout", auth: "slow", status: 503, body: `{"error":"auth service unavailable"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{}, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer p.(plugin.Closer).Close()
			c := plugintest.NewCtx("POST", "/api/x?y=1", "Host: app.example.com", "Authorization: "+tt.auth, "Cookie: s=1", "X-User: forged", "X-Other: no")
			res := plugintest.Run(c, plugintest.Upstream{Body: "up"}, p)
			if res.Status != tt.status || res.Upstream != tt.upstream {
				t.Fatalf("status %d upstream %v, want %d %v (%s)", res.Status, res.Upstream, tt.status, tt.upstream, res.Body)
			}
			if tt.body != "" && res.Body != tt.body {
				t.Fatalf("body %q, want %q", res.Body, tt.body)
			}
			if tt.header[0] != "" && res.Header.Get(tt.header[0]) != tt.header[1] {
				t.Fatalf("%s = %q, want %q", tt.header[0], res.Header.Get(tt.header[0]), tt.header[1])
			}
			auth.mu.Lock()
			seen := auth.last
			auth.mu.Unlock()
			for name, want := range map[string]string{"Authorization": tt.auth, "Cookie": "s=1", "X-Other": "", "X-Forwarded-Method": "POST",
				"X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/api/x?y=1", "X-Forwarded-Proto": "http", "X-Forwarded-For": "127.0.0.1"} {
				if got := seen.Get(name); got != want {
					t.Errorf("auth service saw %s = %q, want %q", name, got, want)
				}
			}
			if !tt.upstream {
				return
			}
			up := res.UpstreamHeader
			if up.Get("X-User") != "alice" || up.Count("X-User") != 1 || up.Count("X-Role") != 2 || up.Has("X-Secret-Internal") {
				t.Fatalf("upstream headers: %v", up.Fields())
			}
		})
	}
}

func TestForwardAuthBoundedBody(t *testing.T) {
	srv := httptest.NewServer(&authServer{})
	defer srv.Close()
	p, _ := New(plugin.Env{}, map[string]any{"url": srv.URL, "request_headers": []any{"Authorization"}})
	res := plugintest.Run(plugintest.NewCtx("GET", "/", "Authorization: big"), plugintest.Upstream{}, p)
	if res.Status != 403 || len(res.Body) != maxBody || res.Upstream {
		t.Fatalf("status %d body %d bytes", res.Status, len(res.Body))
	}
}

func TestForwardAuthUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, _ := New(plugin.Env{}, map[string]any{"url": "http://" + addr + "/auth", "timeout": 1})
	res := plugintest.Run(plugintest.NewCtx("GET", "/"), plugintest.Upstream{}, p)
	if res.Status != 503 || res.Upstream || res.Body != `{"error":"auth service unavailable"}` {
		t.Fatalf("status %d body %q upstream %v", res.Status, res.Body, res.Upstream)
	}
}

func TestForwardAuthConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{}, "url"},
		{map[string]any{"url": "ftp://x"}, "url"},
		{map[string]any{"url": "http://"}, "url"},
		{map[string]any{"url": "http://a", "timeout": "fast"}, "timeout"},
		{map[string]any{"url": "http://a", "request_headers": []any{"a b"}}, "request_headers"},
		{map[string]any{"url": "http://a", "upstream_headers": "X-User"}, "upstream_headers"},
		{map[string]any{"url": "http://a", "headers": []any{"X"}}, "headers"},
	} {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

func BenchmarkForwardAuth(b *testing.B) {
	srv := httptest.NewServer(&authServer{})
	defer srv.Close()
	p, _ := New(plugin.Env{}, map[string]any{"url": srv.URL, "request_headers": []any{"Authorization"}, "upstream_headers": []any{"X-User"}})
	defer p.(plugin.Closer).Close()
	c := plugintest.NewCtx("GET", "/", "Authorization: good")
	b.ReportAllocs()
	for b.Loop() {
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}
