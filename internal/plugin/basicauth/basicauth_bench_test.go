package basicauth

import (
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func benchBasic(b *testing.B, users []any, user, pass string) {
	p, err := New(plugin.Env{}, map[string]any{"users": users, "hide_credentials": false})
	if err != nil {
		b.Fatal(err)
	}
	c := plugintest.NewCtx("GET", "/", basic(user, pass))
	b.ReportAllocs()
	for b.Loop() {
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkBasicAuthPlain(b *testing.B) {
	benchBasic(b, []any{"alice:secret", "bob:pw"}, "bob", "pw")
}

// BenchmarkBasicAuthBcryptCached is the steady state of a hot client of a
// bcrypt user: the verification comes from the cache.
func BenchmarkBasicAuthBcryptCached(b *testing.B) {
	benchBasic(b, []any{"alice:secret", "bob:" + bcryptHash(b, "pw")}, "bob", "pw")
}
