package keyauth

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestKeyAuth(t *testing.T) {
	tests := []struct {
		name      string
		opts      map[string]any
		target    string
		headers   []string
		status    int
		upHeader  string // header the upstream must (not) see
		upHas     bool
		upPathQry string
	}{
		{name: "header ok hidden", opts: map[string]any{"header": "X-API-Key", "keys": []any{"k1", "k2"}},
			target: "/a", headers: []string{"X-API-Key: k2"}, status: 200, upHeader: "X-API-Key", upHas: false},
		{name: "header ok kept", opts: map[string]any{"header": "X-API-Key", "keys": []any{"k1"}, "hide_credentials": false},
			target: "/a", headers: []string{"x-api-key: k1"}, status: 200, upHeader: "X-API-Key", upHas: true},
		{name: "header missing", opts: map[string]any{"header": "X-API-Key", "keys": []any{"k1"}},
			target: "/a", status: 401},
		{name: "header empty", opts: map[string]any{"header": "X-API-Key", "keys": []any{"k1"}},
			target: "/a", headers: []string{"X-API-Key: "}, status: 401},
		{name: "header wrong", opts: map[string]any{"header": "X-API-Key", "keys": []any{"k1"}},
			target: "/a", headers: []string{"X-API-Key: k11"}, status: 401},
		{name: "header prefix of key", opts: map[string]any{"header": "X-API-Key", "keys": []any{"k1"}},
			target: "/a", headers: []string{"X-API-Key: k"}, status: 401},
		{name: "query ok hidden", opts: map[string]any{"query": "api_key", "keys": []any{"k1"}},
			target: "/a?x=1&api_key=k1&y=2", status: 200, upPathQry: "x=1&y=2"},
		{name: "query escaped", opts: map[string]any{"query": "api_key", "keys": []any{"a b"}},
			target: "/a?api_key=a%20b", status: 200, upPathQry: ""},
		{name: "query ok kept", opts: map[string]any{"query": "api_key", "keys": []any{"k1"}, "hide_credentials": false},
			target: "/a?api_key=k1&y=2", status: 200, upPathQry: "api_key=k1&y=2"},
		{name: "query missing", opts: map[string]any{"query": "api_key", "keys": []any{"k1"}},
			target: "/a?apikey=k1", status: 401},
		{name: "query wrong", opts: map[string]any{"query": "api_key", "keys": []any{"k1"}},
			target: "/a?api_key=k2", status: 401},
		{name: "query not header", opts: map[string]any{"query": "api_key", "keys": []any{"k1"}},
			target: "/a", headers: []string{"api_key: k1"}, status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{Name: "t"}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := plugintest.NewCtx("GET", tt.target, tt.headers...)
			res := plugintest.Run(c, plugintest.Upstream{Body: "up"}, p)
			if res.Status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", res.Status, tt.status, res.Body)
			}
			if tt.status != 200 {
				if res.Upstream || !res.Handled {
					t.Fatal("refused request reached the upstream")
				}
				if !strings.HasPrefix(res.Body, `{"error":`) || res.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("body %q is not the JSON error", res.Body)
				}
				return
			}
			if !res.Upstream || res.Body != "up" {
				t.Fatal("allowed request did not reach the upstream")
			}
			if tt.upHeader != "" && res.UpstreamHeader.Has(tt.upHeader) != tt.upHas {
				t.Fatalf("upstream has %s = %v, want %v", tt.upHeader, !tt.upHas, tt.upHas)
			}
			if strings.Contains(tt.target, "?") && c.Req.RawQuery != tt.upPathQry {
				t.Fatalf("upstream query = %q, want %q", c.Req.RawQuery, tt.upPathQry)
			}
		})
	}
}

func TestKeyAuthConfigErrors(t *testing.T) {
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"keys": []any{"k"}}, "header"},
		{map[string]any{"header": "A", "query": "b", "keys": []any{"k"}}, "query"},
		{map[string]any{"header": "A B", "keys": []any{"k"}}, "header"},
		{map[string]any{"header": "A"}, "keys"},
		{map[string]any{"header": "A", "keys": []any{""}}, "keys"},
		{map[string]any{"header": "A", "keys": "k"}, "keys"},
		{map[string]any{"header": "A", "keys": []any{"k"}, "hide_credentials": "yes"}, "hide_credentials"},
		{map[string]any{"header": "A", "keys": []any{"k"}, "bogus": 1}, "bogus"},
	}
	for _, tt := range tests {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}
