package redirect

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestRedirect(t *testing.T) {
	tests := []struct {
		name     string
		opts     map[string]any
		scheme   string
		host     string
		target   string
		status   int
		location string
	}{
		{name: "to https", opts: map[string]any{"http_to_https": true}, scheme: "http", host: "Example.com:8080", target: "/a/b?x=1&y=2", status: 301, location: "https://Example.com/a/b?x=1&y=2"},
		{name: "to https no query", opts: map[string]any{"http_to_https": true, "status": 308}, scheme: "http", host: "example.com", target: "/", status: 308, location: "https://example.com/"},
		{name: "to https ipv6", opts: map[string]any{"http_to_https": true}, scheme: "http", host: "[::1]:8080", target: "/a", status: 301, location: "https://[::1]/a"},
		{name: "already https", opts: map[string]any{"http_to_https": true}, scheme: "https", host: "example.com", target: "/a", status: 200},
		{name: "host", opts: map[string]any{"host": "new.example.com", "status": 302}, scheme: "https", host: "old.example.com", target: "/a?q", status: 302, location: "https://new.example.com/a?q"},
		{name: "host with port", opts: map[string]any{"host": "new.example.com:8443", "status": 307}, scheme: "http", host: "old.example.com", target: "/a", status: 307, location: "http://new.example.com:8443/a"},
		{name: "host already", opts: map[string]any{"host": "new.example.com"}, scheme: "http", host: "NEW.example.com:80", target: "/a", status: 200},
		{name: "host and https", opts: map[string]any{"host": "new.example.com", "http_to_https": true}, scheme: "http", host: "new.example.com", target: "/a", status: 301, location: "https://new.example.com/a"},
		{name: "prefix", opts: map[string]any{"prefix": "/v2/"}, scheme: "http", host: "example.com", target: "/users?id=1", status: 301, location: "http://example.com/v2/users?id=1"},
		{name: "prefix already", opts: map[string]any{"prefix": "/v2"}, scheme: "http", host: "example.com", target: "/v2/users", status: 200},
		{name: "prefix lookalike", opts: map[string]any{"prefix": "/v2"}, scheme: "http", host: "example.com", target: "/v2x", status: 301, location: "http://example.com/v2/v2x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := plugintest.NewCtx("GET", tt.target, "Host: "+tt.host)
			c.Scheme = tt.scheme
			res := plugintest.Run(c, plugintest.Upstream{}, p)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d", res.Status, tt.status)
			}
			if tt.status == 200 {
				if !res.Upstream {
					t.Fatal("no redirect needed but the upstream was skipped")
				}
				return
			}
			if res.Upstream || res.Header.Get("Location") != tt.location {
				t.Fatalf("Location %q, want %q (upstream %v)", res.Header.Get("Location"), tt.location, res.Upstream)
			}
		})
	}
}

func TestRedirectConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"http_to_https": true, "status": 303}, "status"},
		{map[string]any{"http_to_https": true, "status": 200}, "status"},
		{map[string]any{"http_to_https": "yes"}, "http_to_https"},
		{map[string]any{"host": "https://x.com"}, "host"},
		{map[string]any{"prefix": "v2"}, "prefix"},
		{map[string]any{}, "http_to_https"},
		{map[string]any{"http_to_https": true, "code": 301}, "code"},
	} {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

func BenchmarkRedirectHTTPS(b *testing.B) {
	p, _ := New(plugin.Env{}, map[string]any{"http_to_https": true})
	c := plugintest.NewCtx("GET", "/a/b?x=1", "Host: example.com:8080")
	b.ReportAllocs()
	for b.Loop() {
		c.Resp.Header.Reset()
		p.Request(c)
	}
}
