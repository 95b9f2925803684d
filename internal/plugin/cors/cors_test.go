package cors

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{"defaults", map[string]any{}, ""},
		{"all keys", map[string]any{
			"allow_origins":     []any{"https://a.com", "https://*.b.com"},
			"allow_methods":     []any{"GET", "POST"},
			"allow_headers":     []any{"X-A"},
			"expose_headers":    []any{"X-B"},
			"allow_credentials": true,
			"max_age":           "10m",
		}, ""},
		{"max_age int", map[string]any{"max_age": int64(60)}, ""},
		{"empty origins", map[string]any{"allow_origins": []any{}}, "allow_origins"},
		{"origin without scheme", map[string]any{"allow_origins": []any{"a.com"}}, "allow_origins"},
		{"origin with path", map[string]any{"allow_origins": []any{"https://a.com/x"}}, "allow_origins"},
		{"wildcard in middle", map[string]any{"allow_origins": []any{"https://a.*.com"}}, "allow_origins"},
		{"two wildcards", map[string]any{"allow_origins": []any{"https://*.*.com"}}, "allow_origins"},
		{"origins wrong type", map[string]any{"allow_origins": "https://a.com"}, "allow_origins"},
		{"bad method", map[string]any{"allow_methods": []any{"GE T"}}, "allow_methods"},
		{"bad header", map[string]any{"allow_headers": []any{"X:A"}}, "allow_headers"},
		{"bad expose", map[string]any{"expose_headers": []any{""}}, "expose_headers"},
		{"credentials wrong type", map[string]any{"allow_credentials": "yes"}, "allow_credentials"},
		{"bad max_age", map[string]any{"max_age": "later"}, "max_age"},
		{"unknown", map[string]any{"origins": []any{"*"}}, "origins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(plugin.Env{Name: "c"}, tt.opts)
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

func mustNew(t *testing.T, opts map[string]any) plugin.Plugin {
	t.Helper()
	p, err := New(plugin.Env{Name: "c"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRequests(t *testing.T) {
	strict := map[string]any{
		"allow_origins":     []any{"https://app.example.com", "https://*.example.org"},
		"allow_methods":     []any{"GET", "PUT"},
		"allow_headers":     []any{"X-Token", "Content-Type"},
		"expose_headers":    []any{"X-Total"},
		"allow_credentials": true,
		"max_age":           "10m",
	}
	tests := []struct {
		name     string
		opts     map[string]any
		method   string
		headers  []string
		upstream bool
		status   int
		want     map[string]string // "" value = must be absent
		vary     []string
	}{
		{
			name: "preflight allowed", opts: strict, method: "OPTIONS",
			headers: []string{"Origin: https://app.example.com", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: x-token"},
			status:  204,
			want: map[string]string{
				"Access-Control-Allow-Origin":      "https://app.example.com",
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods":     "GET, PUT",
				"Access-Control-Allow-Headers":     "X-Token, Content-Type",
				"Access-Control-Max-Age":           "600",
			},
			vary: []string{"Origin"},
		},
		{
			name: "preflight wildcard origin", opts: strict, method: "OPTIONS",
			headers: []string{"Origin: https://a.b.example.org", "Access-Control-Request-Method: GET"},
			status:  204,
			want:    map[string]string{"Access-Control-Allow-Origin": "https://a.b.example.org"},
		},
		{
			name: "preflight denied origin", opts: strict, method: "OPTIONS",
			headers: []string{"Origin: https://evil.com", "Access-Control-Request-Method: PUT"},
			status:  204,
			want: map[string]string{
				"Access-Control-Allow-Origin":      "",
				"Access-Control-Allow-Methods":     "",
				"Access-Control-Allow-Headers":     "",
				"Access-Control-Allow-Credentials": "",
			},
			vary: []string{"Origin"},
		},
		{
			name: "wildcard does not match bare domain", opts: strict, method: "OPTIONS",
			headers: []string{"Origin: https://example.org", "Access-Control-Request-Method: GET"},
			status:  204,
			want:    map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name: "wildcard needs same scheme", opts: strict, method: "OPTIONS",
			headers: []string{"Origin: http://a.example.org", "Access-Control-Request-Method: GET"},
			status:  204,
			want:    map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name: "wildcard rejects other port", opts: strict, method: "OPTIONS",
			headers: []string{"Origin: https://a.example.org:8443", "Access-Control-Request-Method: GET"},
			status:  204,
			want:    map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name: "options without request method is not a preflight", opts: strict, method: "OPTIONS",
			headers: []string{"Origin: https://app.example.com"}, upstream: true, status: 200,
			want: map[string]string{"Access-Control-Allow-Origin": "https://app.example.com"},
		},
		{
			name: "simple allowed", opts: strict, method: "GET",
			headers: []string{"Origin: https://APP.example.com"}, upstream: true, status: 200,
			want: map[string]string{
				"Access-Control-Allow-Origin":      "https://APP.example.com",
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Expose-Headers":    "X-Total",
				"Access-Control-Allow-Methods":     "",
			},
			vary: []string{"Origin"},
		},
		{
			name: "simple denied", opts: strict, method: "GET",
			headers: []string{"Origin: https://evil.com"}, upstream: true, status: 200,
			want: map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": ""},
			vary: []string{"Origin"},
		},
		{
			name: "no origin", opts: strict, method: "GET", upstream: true, status: 200,
			want: map[string]string{"Access-Control-Allow-Origin": ""},
			vary: []string{"Origin"},
		},
		{
			name: "any origin no credentials sends star", opts: map[string]any{}, method: "GET",
			headers: []string{"Origin: https://x.io"}, upstream: true, status: 200,
			want: map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": ""},
		},
		{
			name: "any origin with credentials echoes", opts: map[string]any{"allow_credentials": true}, method: "GET",
			headers: []string{"Origin: https://x.io"}, upstream: true, status: 200,
			want: map[string]string{"Access-Control-Allow-Origin": "https://x.io", "Access-Control-Allow-Credentials": "true"},
			vary: []string{"Origin"},
		},
		{
			name: "default headers echo the request", opts: map[string]any{}, method: "OPTIONS",
			headers: []string{"Origin: https://x.io", "Access-Control-Request-Method: DELETE", "Access-Control-Request-Headers: x-a, x-b"},
			status:  204,
			want: map[string]string{
				"Access-Control-Allow-Origin":  "*",
				"Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE",
				"Access-Control-Allow-Headers": "x-a, x-b",
				"Access-Control-Max-Age":       "",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.opts)
			c := plugintest.NewCtx(tt.method, "/x", tt.headers...)
			res := plugintest.Run(c, plugintest.Upstream{Header: []string{"Vary: Accept-Encoding"}, Body: "ok"}, p)
			if res.Upstream != tt.upstream || res.Status != tt.status {
				t.Fatalf("upstream %v status %d, want %v %d", res.Upstream, res.Status, tt.upstream, tt.status)
			}
			for k, v := range tt.want {
				got, ok := res.Header.Lookup(k)
				if v == "" && ok {
					t.Errorf("%s = %q, want absent", k, got)
				}
				if v != "" && got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, v := range tt.vary {
				if n := countVary(&res.Header, v); n != 1 {
					t.Errorf("Vary lists %s %d times, want once (%v)", v, n, res.Header.Fields())
				}
			}
			if tt.status == 204 && res.Body != "" {
				t.Errorf("204 with body %q", res.Body)
			}
		})
	}
}

func countVary(h *httpx.Header, token string) int {
	n := 0
	h.Values("Vary", func(v string) bool {
		if httpx.HasToken(v, token) {
			n++
		}
		return true
	})
	return n
}

func TestAddVaryNoDuplicate(t *testing.T) {
	var h httpx.Header
	h.Add("Vary", "accept-encoding, origin")
	AddVary(&h, "Origin")
	AddVary(&h, "Accept-Encoding")
	AddVary(&h, "Cookie")
	AddVary(&h, "Cookie")
	if h.Count("Vary") != 2 || countVary(&h, "Cookie") != 1 {
		t.Fatalf("Vary fields %v", h.Fields())
	}
	var star httpx.Header
	star.Add("Vary", "*")
	AddVary(&star, "Origin")
	if star.Count("Vary") != 1 {
		t.Fatalf("Vary * got %v", star.Fields())
	}
}
