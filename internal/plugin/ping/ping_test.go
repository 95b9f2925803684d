package ping

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestPing(t *testing.T) {
	tests := []struct {
		opts     map[string]any
		path     string
		body     string
		upstream bool
	}{
		{map[string]any{}, "/ping", "pong", false},
		{map[string]any{}, "/pingx", "up", true},
		{map[string]any{}, "/", "up", true},
		{map[string]any{"path": "/healthz"}, "/healthz", "pong", false},
		{map[string]any{"path": "/healthz"}, "/ping", "up", true},
	}
	for _, tt := range tests {
		p, err := New(plugin.Env{}, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		res := plugintest.Run(plugintest.NewCtx("GET", tt.path+"?q=1"), plugintest.Upstream{Body: "up"}, p)
		if res.Status != 200 || res.Body != tt.body || res.Upstream != tt.upstream {
			t.Errorf("%v %s: got %d %q upstream=%v", tt.opts, tt.path, res.Status, res.Body, res.Upstream)
		}
	}
}

func TestPingConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"path": "ping"}, "path"},
		{map[string]any{"path": 1}, "path"},
		{map[string]any{"paths": "/x"}, "paths"},
	} {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

func BenchmarkPing(b *testing.B) {
	p, _ := New(plugin.Env{}, nil)
	c := plugintest.NewCtx("GET", "/ping")
	b.ReportAllocs()
	for b.Loop() {
		p.Request(c)
	}
}
