package config

import (
	"strings"
	"testing"
)

func TestDecodeOptionsPluginKeys(t *testing.T) {
	type opts struct {
		TTL  Duration          `toml:"ttl"`
		Max  Size              `toml:"max"`
		N    int               `toml:"n"`
		List []string          `toml:"list"`
		Map  map[string]string `toml:"map"`
	}
	tests := []struct {
		in  map[string]any
		key string
	}{
		{map[string]any{"ttl": "soon"}, "ttl"},
		{map[string]any{"ttl": true}, "ttl"},
		{map[string]any{"max": "lots"}, "max"},
		{map[string]any{"n": "1"}, "n"},
		{map[string]any{"list": "a"}, "list"},
		{map[string]any{"map": []any{"a"}}, "map"},
		{map[string]any{"map": "a"}, "map"},
		{map[string]any{"other": 1}, "other"},
	}
	for _, tt := range tests {
		var o opts
		err := DecodeOptions(tt.in, &o)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%v: err = %v, want one naming %q", tt.in, err, tt.key)
		}
	}
	var o opts
	if err := DecodeOptions(map[string]any{"ttl": 5, "max": "1KB", "n": 2, "list": []any{"a"}, "map": map[string]any{"k": "v"}}, &o); err != nil {
		t.Fatal(err)
	}
	if o.TTL.D().Seconds() != 5 || o.Max != 1024 || o.N != 2 || o.List[0] != "a" || o.Map["k"] != "v" {
		t.Fatalf("decoded %+v", o)
	}
}
