package iprestriction

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func benchIP(b *testing.B, n int, trust bool, headers ...string) {
	list := []any{}
	for i := 0; i < n; i++ {
		list = append(list, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	env := plugin.Env{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	p, err := New(env, map[string]any{"ip_list": list, "trust_forwarded": trust})
	if err != nil {
		b.Fatal(err)
	}
	c := plugintest.NewCtx("GET", "/", headers...)
	b.ReportAllocs()
	for b.Loop() {
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkIPRestriction10(b *testing.B)    { benchIP(b, 10, false) }
func BenchmarkIPRestriction10000(b *testing.B) { benchIP(b, 10000, false) }
func BenchmarkIPRestrictionXFF(b *testing.B) {
	benchIP(b, 1000, true, "X-Forwarded-For: 203.0.113.9, 127.0.0.2")
}
