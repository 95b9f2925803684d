package basicauth

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// FuzzBasicAuth: any Authorization value never panics, and only the exact
// configured credentials pass.
func FuzzBasicAuth(f *testing.F) {
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret")))
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secre")))
	f.Add("Basic ====")
	f.Add("basic")
	p, err := New(plugin.Env{}, map[string]any{"users": []any{"alice:secret", "bob:pw:x"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, auth string) {
		c := plugintest.NewCtx("GET", "/")
		c.Req.Header.Add("Authorization", auth)
		res := plugintest.Run(c, plugintest.Upstream{}, p)
		if !res.Upstream {
			return
		}
		const prefix = "basic "
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[len(prefix):]))
		if err != nil || (string(dec) != "alice:secret" && string(dec) != "bob:pw:x") {
			t.Fatalf("%q passed", auth)
		}
	})
}
