package keyauth

import (
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func BenchmarkKeyAuthHeader(b *testing.B) {
	p, err := New(plugin.Env{}, map[string]any{"header": "X-API-Key", "keys": []any{"k1", "k2", "k3", "k4"}})
	if err != nil {
		b.Fatal(err)
	}
	c := plugintest.NewCtx("GET", "/a", "X-API-Key: k3", "Accept: */*")
	b.ReportAllocs()
	for b.Loop() {
		c.Req.Header.Set("X-API-Key", "k3")
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}
