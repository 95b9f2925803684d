package csrf

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func newCSRF(t testing.TB, opts map[string]any) *CSRF {
	t.Helper()
	p, err := New(plugin.Env{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*CSRF)
}

func TestCSRFIssue(t *testing.T) {
	p := newCSRF(t, map[string]any{"key": "k", "ttl": 600})
	c := plugintest.NewCtx("GET", "/csrf-token")
	c.Scheme = "https"
	res := plugintest.Run(c, plugintest.Upstream{}, p)
	if res.Status != 200 || res.Upstream || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d upstream %v", res.Status, res.Upstream)
	}
	var body struct{ Token string }
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil || !p.Valid(body.Token) {
		t.Fatalf("body %q: %v", res.Body, err)
	}
	want := "X-CSRF-Token=" + body.Token + "; Path=/; Max-Age=600; HttpOnly; SameSite=Strict; Secure"
	if got := res.Header.Get("Set-Cookie"); got != want {
		t.Fatalf("Set-Cookie %q, want %q", got, want)
	}
	// POST to the token path is not an issue request: it is checked.
	res = plugintest.Run(plugintest.NewCtx("POST", "/csrf-token"), plugintest.Upstream{}, p)
	if res.Status != 403 {
		t.Fatalf("POST token path: %d", res.Status)
	}
}

func TestCSRF(t *testing.T) {
	p := newCSRF(t, map[string]any{"key": "k", "name": "X-Token", "token_path": "/t", "ttl": "1m"})
	other := newCSRF(t, map[string]any{"key": "other", "name": "X-Token"})
	good := p.NewToken()
	good2 := p.NewToken()
	forged := other.NewToken()
	expiredP := newCSRF(t, map[string]any{"key": "k", "name": "X-Token", "ttl": "1s"})
	expiredP.now = func() time.Time { return time.Now().Add(-time.Hour) }
	expired := expiredP.NewToken()
	tampered := []byte(good)
	tampered[3] ^= 1
	tests := []struct {
		name    string
		method  string
		path    string
		headers []string
		status  int
		up      bool
	}{
		{"get passes", "GET", "/x", nil, 200, true},
		{"head passes", "HEAD", "/x", nil, 200, true},
		{"options passes", "OPTIONS", "/x", nil, 200, true},
		{"post ok", "POST", "/x", []string{"X-Token: " + good, "Cookie: a=1; X-Token=" + good}, 200, true},
		{"put ok", "PUT", "/x", []string{"X-Token: " + good, "Cookie: X-Token=" + good}, 200, true},
		{"patch ok", "PATCH", "/x", []string{"X-Token: " + good, "Cookie: X-Token=" + good}, 200, true},
		{"delete ok", "DELETE", "/x", []string{"X-Token: " + good, "Cookie: X-Token=" + good}, 200, true},
		{"post missing both", "POST", "/x", nil, 403, false},
		{"post header only", "POST", "/x", []string{"X-Token: " + good}, 403, false},
		{"post cookie only", "POST", "/x", []string{"Cookie: X-Token=" + good}, 403, false},
		{"post mismatch", "POST", "/x", []string{"X-Token: " + good, "Cookie: X-Token=" + good2}, 403, false},
		{"post forged key", "POST", "/x", []string{"X-Token: " + forged, "Cookie: X-Token=" + forged}, 403, false},
		{"post tampered", "POST", "/x", []string{"X-Token: " + string(tampered), "Cookie: X-Token=" + string(tampered)}, 403, false},
		{"post expired", "POST", "/x", []string{"X-Token: " + expired, "Cookie: X-Token=" + expired}, 403, false},
		{"post garbage", "POST", "/x", []string{"X-Token: abc", "Cookie: X-Token=abc"}, 403, false},
		{"get token path", "GET", "/t", nil, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := plugintest.Run(plugintest.NewCtx(tt.method, tt.path, tt.headers...), plugintest.Upstream{}, p)
			if res.Status != tt.status || res.Upstream != tt.up {
				t.Fatalf("status %d upstream %v, want %d %v", res.Status, res.Upstream, tt.status, tt.up)
			}
			if tt.status == 403 && res.Body != `{"error":"invalid CSRF token"}` {
				t.Fatalf("body %q", res.Body)
			}
		})
	}
}

func TestCSRFConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{}, "key"},
		{map[string]any{"key": 5}, "key"},
		{map[string]any{"key": "k", "token_path": "csrf"}, "token_path"},
		{map[string]any{"key": "k", "name": "a b"}, "name"},
		{map[string]any{"key": "k", "ttl": "forever"}, "ttl"},
		{map[string]any{"key": "k", "ttl": "10ms"}, "ttl"},
		{map[string]any{"key": "k", "cookie": "x"}, "cookie"},
	} {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

func BenchmarkCSRFCheck(b *testing.B) {
	p := newCSRF(b, map[string]any{"key": "k"})
	tok := p.NewToken()
	c := plugintest.NewCtx("POST", "/x", "X-CSRF-Token: "+tok, "Cookie: sid=1; X-CSRF-Token="+tok)
	b.ReportAllocs()
	for b.Loop() {
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCSRFIssue(b *testing.B) {
	p := newCSRF(b, map[string]any{"key": "k"})
	c := plugintest.NewCtx("GET", "/csrf-token")
	b.ReportAllocs()
	for b.Loop() {
		c.Resp.Header.Reset()
		p.Request(c)
	}
}
