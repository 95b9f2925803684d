package cache

import (
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/compression"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// TestWithCompression checks both chain orders: the cache stores either
// the compressed variants or the identity body, and every answer decodes
// to the original.
func TestWithCompression(t *testing.T) {
	body := strings.Repeat("compress me please ", 200)
	for _, order := range []string{"cache,compression", "compression,cache"} {
		t.Run(order, func(t *testing.T) {
			c := mustNew(t, map[string]any{})
			z, err := compression.New(plugin.Env{}, map[string]any{})
			if err != nil {
				t.Fatal(err)
			}
			chain := []plugin.Plugin{c, z}
			if order == "compression,cache" {
				chain = []plugin.Plugin{z, c}
			}
			o := static(200, body, "Cache-Control: max-age=60", "Content-Type: text/plain", `ETag: "e1"`)
			for i, ae := range []string{"gzip", "gzip", "", "", "gzip"} {
				var hdrs []string
				if ae != "" {
					hdrs = append(hdrs, "Accept-Encoding: "+ae)
				}
				r := o.do(plugintest.NewCtx("GET", "/cz", hdrs...), chain...)
				got := r.body
				if r.header.Get("Content-Encoding") == "gzip" {
					zr, err := gzip.NewReader(strings.NewReader(r.body))
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					b, _ := io.ReadAll(zr)
					got = string(b)
				} else if ae == "gzip" {
					t.Fatalf("step %d: not compressed", i)
				}
				if got != body {
					t.Fatalf("step %d (%s): body differs", i, r.header.Get("X-Cache-Status"))
				}
				if i > 0 && (ae == "gzip" || i == 3) && r.header.Get("X-Cache-Status") != StatusHit {
					t.Fatalf("step %d: %s, want HIT", i, r.header.Get("X-Cache-Status"))
				}
			}
		})
	}
}
