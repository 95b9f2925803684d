package config

import (
	"strings"
	"testing"
)

func TestDecodeOptionsNamesKeyOfUnmarshalerErrors(t *testing.T) {
	var o struct {
		Max      Size     `toml:"max"`
		Interval Duration `toml:"interval"`
		N        int      `toml:"n"`
	}
	tests := []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"max": "lots", "n": int64(1)}, "max"},
		{map[string]any{"interval": "soon"}, "interval"},
		{map[string]any{"n": "x"}, "n"},
	}
	for _, tt := range tests {
		err := DecodeOptions(tt.opts, &o)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("DecodeOptions(%v) = %v, want an error naming %q", tt.opts, err, tt.key)
		}
	}
}
