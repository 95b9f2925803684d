package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, toml string }{
		{"base", base},
		{"full", fullConfig},
		{"explicit_zeroes", base + `
[basic]
access_log = false
[tracing]
sample_ratio = 0.0
[plugins.odd]
category = "mock"
"key with space" = 1
nested = { deeper = { x = [1, 2, 3] } }
list = [{ a = 1 }, { b = "2" }]
mixed = [1, "two", 3.5, true]
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c1, err := Parse([]byte(tc.toml), "in.toml")
			if err != nil {
				t.Fatal(err)
			}
			out, err := Encode(c1)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Parse(out, "in.toml")
			if err != nil {
				t.Fatalf("re-parse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(c1, c2) {
				t.Errorf("round trip differs:\n first %+v\nsecond %+v\nTOML:\n%s", c1, c2, out)
			}
			golden := filepath.Join("testdata", "encode", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(out) != string(want) {
				t.Errorf("Encode output differs from %s:\n%s", golden, out)
			}
		})
	}
}

func TestEncodeRejectsCategoryOption(t *testing.T) {
	c := Default()
	c.Plugins = map[string]Plugin{"p": {Category: "ping", Options: map[string]any{"category": "x"}}}
	if _, err := Encode(c); err == nil {
		t.Error("an option named category was accepted")
	}
}

func TestClone(t *testing.T) {
	c, err := Parse([]byte(fullConfig), "full.toml")
	if err != nil {
		t.Fatal(err)
	}
	c.SetFileOf("basic", "basic.toml")
	n := Clone(c)
	if !reflect.DeepEqual(c, n) {
		t.Fatal("clone differs")
	}
	// Mutate every shared-looking thing in the clone; the original must not move.
	n.Basic.TrustedProxies[0] = "x"
	n.Upstreams["api"].Addrs[0] = "x"
	n.Upstreams["api"].Weights[0] = 99
	n.Locations["api"].HeadersSet["X-Frame-Options"] = "x"
	n.Locations["api"].HeadersAdd[0] = "x"
	n.Locations["api"].ProxySetHeaders["Host"] = "x"
	n.Locations["api"].Plugins[0] = "x"
	n.Servers["https"].Locations[0] = "x"
	n.Servers["https"].Certificates[0] = "x"
	n.Plugins["api_keys"].Options["keys"].([]any)[0] = "x"
	n.Plugins["claims"].Options["forward_claims"].(map[string]any)["sub"] = "x"
	n.Certificates["example"].Domains[0] = "x"
	n.Upstreams["new"] = Upstream{}
	n.SetFileOf("basic", "other.toml")

	c2, _ := Parse([]byte(fullConfig), "full.toml")
	c2.SetFileOf("basic", "basic.toml")
	if !reflect.DeepEqual(c, c2) {
		t.Error("mutating the clone changed the original")
	}
	if Clone(nil) != nil {
		t.Error("Clone(nil) != nil")
	}
}

func TestJSON(t *testing.T) {
	c, err := Parse([]byte(fullConfig), "full.toml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"access_log":"/var/log/pingap/access.log"`, `"grace_period":"1m"`,
		`"max_header_bytes":"32KB"`, `"category":"key_auth"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	for _, tc := range []struct {
		a    AccessLog
		json string
	}{{AccessLog{Enabled: true}, "true"}, {AccessLog{}, "false"}, {AccessLog{Enabled: true, Path: "a.log"}, `"a.log"`}} {
		b, _ := json.Marshal(tc.a)
		var back AccessLog
		if string(b) != tc.json || json.Unmarshal(b, &back) != nil || back != tc.a {
			t.Errorf("%+v: JSON %s, back %+v", tc.a, b, back)
		}
	}
}

func TestEncodeDefault(t *testing.T) {
	d := Default()
	out, err := Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(d, back) {
		t.Errorf("Default() does not round-trip:\n%+v\n%+v\n%s", d, back, out)
	}
}
