package refererrestriction

import (
	"net/url"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// FuzzRefererRestriction: any Referer never panics, and an allow list only
// lets through Referers whose URL host (as net/url sees it) is listed.
func FuzzRefererRestriction(f *testing.F) {
	f.Add("https://example.com/x")
	f.Add("https://a.example.org:8080/")
	f.Add("//example.com")
	f.Add("https://user@evil.net@example.com/")
	f.Add("http://[::1]:80/")
	p, err := New(plugin.Env{}, map[string]any{"referer_list": []any{"example.com", "*.example.org"}, "type": "allow"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		c := plugintest.NewCtx("GET", "/")
		c.Req.Header.Add("Referer", ref)
		res := plugintest.Run(c, plugintest.Upstream{}, p)
		if !res.Upstream {
			return
		}
		u, err := url.Parse(ref)
		if err != nil {
			return // net/url is stricter than browsers; only check what it parses
		}
		h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if h != "example.com" && !strings.HasSuffix(h, ".example.org") {
			t.Fatalf("%q (host %q) passed the allow list", ref, h)
		}
	})
}
