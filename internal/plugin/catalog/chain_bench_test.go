package catalog

import (
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// BenchmarkChainRequestIDKeyAuthIP is a typical API location chain:
// request_id + key_auth + ip_restriction, request and response phases, on a
// reused context the way a server reuses it per connection.
func BenchmarkChainRequestIDKeyAuthIP(b *testing.B) {
	build := func(cat string, opts map[string]any) plugin.Plugin {
		p, err := Build(plugin.Env{}, cat, opts)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	ch := plugin.NewChain(
		build("request_id", nil),
		build("key_auth", map[string]any{"header": "X-API-Key", "keys": []any{"key-one", "key-two", "key-three"}}),
		build("ip_restriction", map[string]any{"ip_list": []any{"10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"}}),
	)
	c := plugintest.NewCtx("GET", "/api/users?page=2", "User-Agent: bench", "Accept: */*")
	remote := c.Conn.RemoteAddr
	b.ReportAllocs()
	for b.Loop() {
		c.Reset()
		c.Req.Method, c.Req.Path, c.Req.RequestURI, c.Scheme = "GET", "/api/users", "/api/users?page=2", "http"
		c.Conn.RemoteAddr, c.ClientIP = remote, remote.Addr()
		c.Req.Header.Add("User-Agent", "bench")
		c.Req.Header.Add("X-API-Key", "key-two")
		ran, handled := ch.Request(c)
		if handled {
			b.Fatal("refused")
		}
		c.Resp.Status = 200
		ch.Response(c, ran)
		ch.Finish(c, ran)
	}
}
