package example

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestMaintenance(t *testing.T) {
	p, err := New(plugin.Env{Name: "maint"}, map[string]any{
		"retry_after": 120,
		"allow_paths": []any{"/health", "/status/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path     string
		status   int
		upstream bool
	}{
		{"/", 503, false},
		{"/api/users", 503, false},
		{"/healthz", 503, false},
		{"/health", 200, true},
		{"/health/db", 200, true},
		{"/status", 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := plugintest.Run(plugintest.NewCtx("GET", tt.path), plugintest.Upstream{Body: "ok"}, p)
			if res.Status != tt.status || res.Upstream != tt.upstream {
				t.Fatalf("status %d upstream %v, want %d %v", res.Status, res.Upstream, tt.status, tt.upstream)
			}
			if res.Header.Get("X-Maintenance") != "on" {
				t.Fatal("response phase did not run")
			}
			if tt.status == 503 {
				if res.Body != `{"error":"down for maintenance"}` || res.Header.Get("Retry-After") != "120" {
					t.Fatalf("body %q Retry-After %q", res.Body, res.Header.Get("Retry-After"))
				}
			}
		})
	}
}

func TestMaintenanceConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"retry_after": "soon"}, "retry_after"},
		{map[string]any{"allow_paths": []any{"health"}}, "allow_paths"},
		{map[string]any{"allow_paths": "/health"}, "allow_paths"},
		{map[string]any{"mesage": "typo"}, "mesage"},
	} {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

func BenchmarkMaintenanceAllowed(b *testing.B) {
	p, _ := New(plugin.Env{}, map[string]any{"allow_paths": []any{"/health"}})
	c := plugintest.NewCtx("GET", "/health")
	b.ReportAllocs()
	for b.Loop() {
		p.Request(c)
	}
}
