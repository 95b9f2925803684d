package refererrestriction

import (
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func BenchmarkRefererRestriction(b *testing.B) {
	p, err := New(plugin.Env{}, map[string]any{"referer_list": []any{"example.com", "*.example.org", "a.net"}, "type": "allow"})
	if err != nil {
		b.Fatal(err)
	}
	c := plugintest.NewCtx("GET", "/", "Referer: https://www.Example.org/some/page?x=1")
	b.ReportAllocs()
	for b.Loop() {
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}
