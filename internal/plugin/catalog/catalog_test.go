package catalog

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/pingap-go/pingap/internal/plugin"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestCatalogueUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range categories {
		if c.Name == "" || c.Build == nil {
			t.Errorf("incomplete entry %+v", c)
		}
		if seen[c.Name] {
			t.Errorf("duplicate category %q", c.Name)
		}
		seen[c.Name] = true
	}
	for _, name := range []string{"jwt", "key_auth", "basic_auth", "forward_auth", "csrf", "ip_restriction",
		"ua_restriction", "referer_restriction", "request_id", "mock", "ping", "redirect", "headers"} {
		if !seen[name] {
			t.Errorf("category %q missing", name)
		}
	}
}

func TestBuildUnknown(t *testing.T) {
	for _, cat := range []string{"", "nope", "JWT"} {
		_, err := Build(plugin.Env{}, cat, nil)
		if err == nil || !strings.Contains(err.Error(), "category") || !strings.Contains(err.Error(), "key_auth") {
			t.Errorf("Build(%q): %v", cat, err)
		}
	}
}

// TestBuildFromTOML builds plugins from real TOML tables (the engine's
// input: int64, []any, map[string]any) and runs one request through each.
func TestBuildFromTOML(t *testing.T) {
	const conf = `
[plugins.rid]
category = "request_id"
algorithm = "nanoid"
size = 16

[plugins.keys]
category = "key_auth"
header = "X-API-Key"
keys = ["k1"]

[plugins.ips]
category = "ip_restriction"
ip_list = ["10.0.0.0/8", "::1"]
type = "deny"

[plugins.ping]
category = "ping"

[plugins.hdr]
category = "headers"
response_set = { "X-Frame-Options" = "DENY" }

[plugins.mock]
category = "mock"
status = 201
data = "made"
delay = 0
`
	var f struct {
		Plugins map[string]map[string]any `toml:"plugins"`
	}
	if _, err := toml.Decode(conf, &f); err != nil {
		t.Fatal(err)
	}
	built := map[string]plugin.Plugin{}
	for name, table := range f.Plugins {
		cat, _ := table["category"].(string)
		delete(table, "category")
		p, err := Build(plugin.Env{Name: name}, cat, table)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		built[name] = p
	}
	c := plugintest.NewCtx("GET", "/x", "X-API-Key: k1")
	res := plugintest.Run(c, plugintest.Upstream{}, built["rid"], built["ips"], built["keys"], built["ping"], built["hdr"], built["mock"])
	if res.Status != 201 || res.Body != "made" || len(c.RequestID) != 16 || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("status %d body %q id %q header %v", res.Status, res.Body, c.RequestID, res.Header.Fields())
	}
}

// TestBuilderErrorsNameTheKey feeds every category an unknown key.
func TestBuilderErrorsNameTheKey(t *testing.T) {
	for _, c := range Categories() {
		_, err := Build(plugin.Env{}, c.Name, map[string]any{"no_such_key": 1})
		if err == nil || !strings.Contains(err.Error(), "no_such_key") {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
}
