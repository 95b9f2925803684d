package uarestriction

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestUARestriction(t *testing.T) {
	deny := map[string]any{"ua_list": []any{"(?i)curl/", "^python-requests", "^$"}}
	allow := map[string]any{"ua_list": []any{"Mozilla/5\\.0", "^pingap-probe$"}, "type": "allow"}
	tests := []struct {
		name   string
		opts   map[string]any
		ua     string
		status int
	}{
		{"deny match", deny, "curl/8.0", 403},
		{"deny match case-insensitive", deny, "CURL/7", 403},
		{"deny anchored", deny, "python-requests/2.31", 403},
		{"deny anchored not at start", deny, "x python-requests", 200},
		{"deny empty UA", deny, "", 403},
		{"deny other", deny, "Mozilla/5.0 (X11)", 200},
		{"allow match", allow, "Mozilla/5.0 (X11)", 200},
		{"allow exact", allow, "pingap-probe", 200},
		{"allow other", allow, "curl/8.0", 403},
		{"allow missing", allow, "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(plugin.Env{}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var h []string
			if tt.ua != "" {
				h = append(h, "User-Agent: "+tt.ua)
			}
			res := plugintest.Run(plugintest.NewCtx("GET", "/", h...), plugintest.Upstream{}, p)
			if res.Status != tt.status || res.Upstream != (tt.status == 200) {
				t.Fatalf("status %d upstream %v, want %d", res.Status, res.Upstream, tt.status)
			}
			if tt.status == 403 && res.Body != `{"error":"forbidden"}` {
				t.Fatalf("body %q", res.Body)
			}
		})
	}
}

func TestUARestrictionConfigErrors(t *testing.T) {
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{}, "ua_list"},
		{map[string]any{"ua_list": []any{"a", "(unclosed"}}, "ua_list"},
		{map[string]any{"ua_list": "curl"}, "ua_list"},
		{map[string]any{"ua_list": []any{"curl"}, "type": "maybe"}, "type"},
		{map[string]any{"ua_list": []any{"curl"}, "typo": "deny"}, "typo"},
	}
	for _, tt := range tests {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

// FuzzUARestriction checks that any pattern/UA pair never panics and that
// the combined alternation agrees with the single pattern.
func FuzzUARestriction(f *testing.F) {
	f.Add("curl/", "curl/8.0")
	f.Add("^$", "")
	f.Add("(?i)bot|spider", "GoogleBot")
	f.Add("a)|(b", "b")
	f.Add("(?i)k", "\u212a")
	f.Add("(?i)^s", "\u017fx")
	f.Add("", "x")
	f.Fuzz(func(t *testing.T, pattern, ua string) {
		p, err := New(plugin.Env{}, map[string]any{"ua_list": []any{pattern}})
		if err != nil {
			return
		}
		c := plugintest.NewCtx("GET", "/")
		c.Req.Header.Add("User-Agent", ua)
		res := plugintest.Run(c, plugintest.Upstream{}, p)
		want := regexp.MustCompile(pattern).MatchString(ua)
		if (res.Status == 403) != want {
			t.Fatalf("pattern %q ua %q: status %d, want match=%v", pattern, ua, res.Status, want)
		}
	})
}
