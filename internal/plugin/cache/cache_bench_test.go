package cache

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// BenchmarkHit measures a cache hit: key, lookup, header copy, answer,
// Response and Finish, on a reused context as the engine does.
func BenchmarkHit(b *testing.B) {
	p := mustNew(b, map[string]any{})
	o := static(200, strings.Repeat("x", 4096), "Cache-Control: max-age=3600", "Content-Type: text/html", `ETag: "abc"`)
	get(p, o, "/hit")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := plugintest.NewCtx("GET", "/hit")
		for pb.Next() {
			c.Resp.Header.Reset()
			if !p.Request(c) {
				b.Fatal("miss")
			}
			p.Response(c)
			p.Finish(c)
		}
	})
	if o.calls.Load() != 1 {
		b.Fatalf("%d upstream calls", o.calls.Load())
	}
}
