package requestid

import (
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func benchRequestID(b *testing.B, opts map[string]any) {
	pp, err := New(plugin.Env{}, opts)
	if err != nil {
		b.Fatal(err)
	}
	p := pp.(*RequestID)
	c := plugintest.NewCtx("GET", "/")
	b.ReportAllocs()
	for b.Loop() {
		c.Req.Header.Reset() // no client id: generate one every time
		p.Request(c)
		p.Response(c)
	}
}

func BenchmarkRequestIDUUID(b *testing.B)   { benchRequestID(b, nil) }
func BenchmarkRequestIDNanoid(b *testing.B) { benchRequestID(b, map[string]any{"algorithm": "nanoid"}) }
func BenchmarkRequestIDKeep(b *testing.B) {
	pp, _ := New(plugin.Env{}, nil)
	c := plugintest.NewCtx("GET", "/", "X-Request-Id: 0f8e2a3c-client-id")
	b.ReportAllocs()
	for b.Loop() {
		pp.Request(c)
	}
}
