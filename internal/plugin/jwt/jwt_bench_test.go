package jwt

import (
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// BenchmarkJWTHS256 is a client repeating its token (cache hit).
func BenchmarkJWTHS256(b *testing.B) {
	tok := sign(b, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix()})
	p, err := New(plugin.Env{}, map[string]any{"secret": secret, "forward_claims": map[string]any{"sub": "X-User"}})
	if err != nil {
		b.Fatal(err)
	}
	c := plugintest.NewCtx("GET", "/", "Authorization: Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}

// BenchmarkJWTHS256Uncached is the first request of a token: parse and
// signature check (the cache is emptied every iteration).
func BenchmarkJWTHS256Uncached(b *testing.B) {
	tok := sign(b, jwtlib.SigningMethodHS256, []byte(secret), jwtlib.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix()})
	pp, err := New(plugin.Env{}, map[string]any{"secret": secret, "forward_claims": map[string]any{"sub": "X-User"}})
	if err != nil {
		b.Fatal(err)
	}
	p := pp.(*JWT)
	c := plugintest.NewCtx("GET", "/", "Authorization: Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		for i := range p.cache.shards {
			clear(p.cache.shards[i].m)
		}
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}
