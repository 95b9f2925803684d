package mock

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestMock(t *testing.T) {
	tests := []struct {
		name     string
		opts     map[string]any
		path     string
		status   int
		body     string
		ctype    string
		header   [2]string
		upstream bool
	}{
		{name: "defaults", opts: map[string]any{}, path: "/x", status: 200, ctype: "text/plain; charset=utf-8"},
		{name: "json guessed", opts: map[string]any{"data": `{"ok":true}`}, path: "/x", status: 200, body: `{"ok":true}`, ctype: "application/json"},
		{name: "not json", opts: map[string]any{"data": `{oops`}, path: "/x", status: 200, body: `{oops`, ctype: "text/plain; charset=utf-8"},
		{name: "status and headers", opts: map[string]any{"status": 503, "data": "down", "headers": []any{"Content-Type: text/html", "Retry-After: 30"}},
			path: "/x", status: 503, body: "down", ctype: "text/html", header: [2]string{"Retry-After", "30"}},
		{name: "path match", opts: map[string]any{"path": "/health", "data": "ok"}, path: "/health", status: 200, body: "ok"},
		{name: "path other passes", opts: map[string]any{"path": "/health", "data": "ok"}, path: "/healthz", status: 200, body: "up", upstream: true},
		{name: "delay", opts: map[string]any{"delay": "20ms", "data": "slow"}, path: "/", status: 200, body: "slow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res := plugintest.Run(plugintest.NewCtx("GET", tt.path), plugintest.Upstream{Body: "up"}, p)
			if res.Status != tt.status || res.Body != tt.body || res.Upstream != tt.upstream {
				t.Fatalf("got %d %q upstream=%v, want %d %q upstream=%v", res.Status, res.Body, res.Upstream, tt.status, tt.body, tt.upstream)
			}
			if tt.ctype != "" && res.Header.Get("Content-Type") != tt.ctype {
				t.Fatalf("content-type %q, want %q", res.Header.Get("Content-Type"), tt.ctype)
			}
			if tt.header[0] != "" && res.Header.Get(tt.header[0]) != tt.header[1] {
				t.Fatalf("%s = %q", tt.header[0], res.Header.Get(tt.header[0]))
			}
			if d, ok := tt.opts["delay"]; ok && time.Since(start) < 20*time.Millisecond {
				t.Fatalf("answered before the delay %v", d)
			}
		})
	}
}

func TestMockDelayCancelled(t *testing.T) {
	p, _ := New(plugin.Env{}, map[string]any{"delay": "1m"})
	c := plugintest.NewCtx("GET", "/")
	ctx, cancel := context.WithCancel(context.Background())
	c.Context = ctx
	cancel()
	done := make(chan struct{})
	go func() { p.Request(c); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("delay ignored the cancelled request")
	}
}

func TestMockConfigErrors(t *testing.T) {
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"status": 99}, "status"},
		{map[string]any{"status": "200"}, "status"},
		{map[string]any{"headers": []any{"NoColon"}}, "headers"},
		{map[string]any{"headers": []any{"Bad Name: x"}}, "headers"},
		{map[string]any{"headers": "X: y"}, "headers"},
		{map[string]any{"path": "health"}, "path"},
		{map[string]any{"delay": "soon"}, "delay"},
		{map[string]any{"delay": "2h"}, "delay"},
		{map[string]any{"body": "x"}, "body"},
	}
	for _, tt := range tests {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

func BenchmarkMock(b *testing.B) {
	p, _ := New(plugin.Env{}, map[string]any{"data": `{"ok":true}`, "headers": []any{"X-Mock: 1"}})
	c := plugintest.NewCtx("GET", "/")
	b.ReportAllocs()
	for b.Loop() {
		c.Resp.Header.Reset()
		p.Request(c)
	}
}
