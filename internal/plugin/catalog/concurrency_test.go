package catalog

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// TestConcurrentRequests shares one instance of every category between
// goroutines, as the engine does; run with -race it checks that plugins keep
// no unsynchronized per-request state.
func TestConcurrentRequests(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-User", "u")
	}))
	defer auth.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	tok, _ := jwtlib.NewWithClaims(jwtlib.SigningMethodHS256, jwtlib.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("s"))
	env := plugin.Env{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	specs := []struct {
		cat  string
		opts map[string]any
	}{
		{"request_id", nil},
		{"jwt", map[string]any{"secret": "s", "forward_claims": map[string]any{"sub": "X-Sub"}}},
		{"key_auth", map[string]any{"header": "X-Key", "keys": []any{"k"}, "hide_credentials": false}},
		{"basic_auth", map[string]any{"users": []any{"a:" + string(hash)}, "hide_credentials": false}},
		{"forward_auth", map[string]any{"url": auth.URL, "upstream_headers": []any{"X-User"}}},
		{"csrf", map[string]any{"key": "k"}},
		{"ip_restriction", map[string]any{"ip_list": []any{"10.0.0.0/8"}, "trust_forwarded": true}},
		{"ua_restriction", map[string]any{"ua_list": []any{"(?i)bot"}}},
		{"referer_restriction", map[string]any{"referer_list": []any{"*.evil.com"}}},
		{"headers", map[string]any{"request_set": map[string]any{"X-Id": "$request_id"}, "response_add": []any{"X-Host: $host"}}},
		{"redirect", map[string]any{"prefix": "/v1"}},
	}
	var chain []plugin.Plugin
	for _, s := range specs {
		p, err := Build(env, s.cat, s.opts)
		if err != nil {
			t.Fatalf("%s: %v", s.cat, err)
		}
		if c, ok := p.(plugin.Closer); ok {
			defer c.Close()
		}
		chain = append(chain, p)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("a:pw"))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				c := plugintest.NewCtx("GET", "/v1/x", "Authorization: Bearer "+tok, "X-Key: k", "User-Agent: Mozilla",
					"Referer: https://example.com/", "X-Forwarded-For: 192.0.2.1")
				// basic_auth reads Authorization too: give it its own chain step.
				res := plugintest.Run(c, plugintest.Upstream{}, chain[:3]...)
				if res.Status != 200 {
					t.Errorf("jwt/key chain: %d %s", res.Status, res.Body)
					return
				}
				c = plugintest.NewCtx("GET", "/v1/x", "Authorization: "+basic, "User-Agent: Mozilla", "X-Forwarded-For: 192.0.2.1")
				res = plugintest.Run(c, plugintest.Upstream{}, append([]plugin.Plugin{chain[0], chain[3]}, chain[4:]...)...)
				if res.Status != 200 || res.UpstreamHeader.Get("X-User") != "u" || res.UpstreamHeader.Get("X-Id") != c.RequestID {
					t.Errorf("basic chain: %d %s", res.Status, res.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
}
