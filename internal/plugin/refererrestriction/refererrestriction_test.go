package refererrestriction

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestRefererRestriction(t *testing.T) {
	list := []any{"example.com", "*.Static.Example.ORG"}
	deny := map[string]any{"referer_list": list, "type": "deny"}
	allow := map[string]any{"referer_list": list, "type": "allow"}
	tests := []struct {
		name   string
		opts   map[string]any
		ref    string
		status int
	}{
		{"deny exact", deny, "https://example.com/page", 403},
		{"deny exact with port and case", deny, "http://EXAMPLE.com:8080/x?y", 403},
		{"deny userinfo", deny, "https://user:pw@example.com/", 403},
		{"deny wildcard", deny, "https://a.static.example.org/", 403},
		{"deny wildcard deep", deny, "https://a.b.static.example.org", 403},
		{"deny wildcard apex passes", deny, "https://static.example.org/", 200},
		{"deny subdomain of exact passes", deny, "https://www.example.com/", 200},
		{"deny suffix trick passes", deny, "https://badexample.com/", 200},
		{"deny host in path passes", deny, "https://evil.net/example.com", 200},
		{"deny missing passes", deny, "", 200},
		{"deny garbage passes", deny, "not a url", 200},
		{"allow exact", allow, "https://example.com/", 200},
		{"allow scheme-relative", allow, "//example.com/", 200},
		{"allow wildcard", allow, "https://cdn.static.example.org/a.js", 200},
		{"allow other", allow, "https://evil.net/", 403},
		{"allow missing", allow, "", 403},
		{"allow garbage", allow, "example.com", 403},
		{"allow trailing dot", allow, "https://example.com./", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var h []string
			if tt.ref != "" {
				h = append(h, "Referer: "+tt.ref)
			}
			res := plugintest.Run(plugintest.NewCtx("GET", "/", h...), plugintest.Upstream{}, p)
			if res.Status != tt.status || res.Upstream != (tt.status == 200) {
				t.Fatalf("status %d upstream %v, want %d", res.Status, res.Upstream, tt.status)
			}
			if tt.status == 403 && res.Body != `{"error":"forbidden"}` {
				t.Fatalf("body %q", res.Body)
			}
		})
	}
}

func TestRefererRestrictionConfigErrors(t *testing.T) {
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{}, "referer_list"},
		{map[string]any{"referer_list": []any{"https://example.com"}}, "referer_list"},
		{map[string]any{"referer_list": []any{"*"}}, "referer_list"},
		{map[string]any{"referer_list": []any{"a b"}}, "referer_list"},
		{map[string]any{"referer_list": "example.com"}, "referer_list"},
		{map[string]any{"referer_list": []any{"example.com"}, "type": "block"}, "type"},
		{map[string]any{"referer_list": []any{"example.com"}, "referers": 1}, "referers"},
	}
	for _, tt := range tests {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}
