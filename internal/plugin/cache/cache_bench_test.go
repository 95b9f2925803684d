package cache

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/httpx"
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

// BenchmarkHitNotModified measures a hit answered 304 to the client's
// If-None-Match.
func BenchmarkHitNotModified(b *testing.B) {
	p := mustNew(b, map[string]any{})
	o := static(200, strings.Repeat("x", 4096), "Cache-Control: max-age=3600", "Content-Type: text/html", `ETag: "abc"`,
		"Last-Modified: Mon, 02 Jan 2006 15:04:05 GMT")
	get(p, o, "/hit")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := plugintest.NewCtx("GET", "/hit", `If-None-Match: "abc"`)
		for pb.Next() {
			c.Resp.Header.Reset()
			if !p.Request(c) || c.Resp.Status != 304 {
				b.Fatal("not a 304 hit")
			}
			p.Response(c)
			p.Finish(c)
		}
	})
}

// BenchmarkDiskHit measures a hit found only on disk: the memory tier
// holds one entry per shard, so every request reads its file (page cache).
func BenchmarkDiskHit(b *testing.B) {
	p := mustNew(b, map[string]any{"max_size": int64(numShards * 6000), "dir": b.TempDir()})
	o := static(200, strings.Repeat("x", 4096), "Cache-Control: max-age=3600", "Content-Type: text/html")
	const n = 64
	for i := 0; i < n; i++ {
		get(p, o, "/d/"+strconv.Itoa(i))
	}
	ctxs := make([]*httpx.Ctx, n)
	for i := range ctxs {
		ctxs[i] = plugintest.NewCtx("GET", "/d/"+strconv.Itoa(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := ctxs[i%n]
		c.Resp.Header.Reset()
		if !p.Request(c) {
			b.Fatal("miss")
		}
		p.Response(c)
		p.Finish(c)
	}
}
