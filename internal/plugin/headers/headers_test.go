package headers

import (
	"os"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestHeaders(t *testing.T) {
	hostname, _ := os.Hostname()
	p, err := New(plugin.Env{}, map[string]any{
		"request_set":     map[string]any{"X-Real-IP": "$remote_addr", "X-Static": "v", "X-Replace": "new"},
		"request_add":     []any{"X-Via: pingap $hostname", "X-Replace: added"},
		"request_remove":  []any{"Cookie", "x-remove"},
		"response_set":    map[string]any{"X-Frame-Options": "DENY", "Server": "pingap"},
		"response_add":    []any{"X-Served-By: $host$uri", "X-Up: two"},
		"response_remove": []any{"X-Powered-By"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := plugintest.NewCtx("GET", "/path?q", "Host: Example.COM:8080", "Cookie: a=b", "X-Remove: 1", "X-Replace: old", "X-Replace: old2")
	res := plugintest.Run(c, plugintest.Upstream{Header: []string{"Server: nginx", "X-Powered-By: php", "X-Up: one"}}, p)
	up := res.UpstreamHeader
	for name, want := range map[string]string{"X-Real-IP": "127.0.0.1", "X-Static": "v", "X-Via": "pingap " + hostname, "Cookie": "", "X-Remove": ""} {
		if got := up.Get(name); got != want {
			t.Errorf("upstream %s = %q, want %q", name, got, want)
		}
	}
	var replaced []string
	up.Values("X-Replace", func(v string) bool { replaced = append(replaced, v); return true })
	if strings.Join(replaced, ",") != "new,added" {
		t.Errorf("upstream X-Replace = %v, want [new added]", replaced)
	}
	for name, want := range map[string]string{"X-Frame-Options": "DENY", "Server": "pingap", "X-Served-By": "example.com/path", "X-Powered-By": ""} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("response %s = %q, want %q", name, got, want)
		}
	}
	if res.Header.Count("X-Up") != 2 {
		t.Errorf("response X-Up count %d, want 2", res.Header.Count("X-Up"))
	}
}

func TestHeadersConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"request_set": map[string]any{"Bad Name": "x"}}, "request_set"},
		{map[string]any{"request_set": []any{"X: y"}}, "request_set"},
		{map[string]any{"response_set": map[string]any{"X": "$nope"}}, "response_set"},
		{map[string]any{"request_add": []any{"NoColon"}}, "request_add"},
		{map[string]any{"response_add": []any{"X: $unknown_var"}}, "response_add"},
		{map[string]any{"request_remove": []any{"a b"}}, "request_remove"},
		{map[string]any{"response_remove": "X"}, "response_remove"},
		{map[string]any{"response_del": []any{"X"}}, "response_del"},
	} {
		_, err := New(plugin.Env{}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.opts, err, tt.key)
		}
	}
}

func BenchmarkHeaders(b *testing.B) {
	pp, _ := New(plugin.Env{}, map[string]any{
		"request_set":     map[string]any{"X-Static": "v"},
		"request_remove":  []any{"Cookie"},
		"response_set":    map[string]any{"X-Frame-Options": "DENY"},
		"response_remove": []any{"X-Powered-By"},
	})
	p := pp.(*Headers)
	c := plugintest.NewCtx("GET", "/", "Cookie: a=b")
	b.ReportAllocs()
	for b.Loop() {
		p.Request(c)
		p.Response(c)
	}
}
