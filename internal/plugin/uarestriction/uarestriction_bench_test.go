package uarestriction

import (
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func BenchmarkUARestriction(b *testing.B) {
	p, err := New(plugin.Env{}, map[string]any{"ua_list": []any{"(?i)curl/", "^python-requests", "(?i)(bot|spider|crawl)"}})
	if err != nil {
		b.Fatal(err)
	}
	c := plugintest.NewCtx("GET", "/", "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
	b.ReportAllocs()
	for b.Loop() {
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}

// BenchmarkUARestrictionRegexp is a list the literal fast path cannot take.
func BenchmarkUARestrictionRegexp(b *testing.B) {
	p, err := New(plugin.Env{}, map[string]any{"ua_list": []any{"curl/[0-9]+", "(?i)bot[0-9]"}})
	if err != nil {
		b.Fatal(err)
	}
	c := plugintest.NewCtx("GET", "/", "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
	b.ReportAllocs()
	for b.Loop() {
		if p.Request(c) {
			b.Fatal("refused")
		}
	}
}
