package config

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

type testOptions struct {
	Header   string            `toml:"header"`
	Keys     []string          `toml:"keys"`
	Max      int               `toml:"max"`
	Interval Duration          `toml:"interval"`
	Limit    Size              `toml:"limit"`
	Hide     bool              `toml:"hide_credentials"`
	Claims   map[string]string `toml:"forward_claims"`
}

func TestDecodeOptions(t *testing.T) {
	var o testOptions
	err := DecodeOptions(map[string]any{
		"header":           "X-Key",
		"keys":             []any{"a", "b"},
		"max":              int64(10),
		"interval":         "1m",
		"limit":            "1MB",
		"hide_credentials": true,
		"forward_claims":   map[string]any{"sub": "X-User"},
	}, &o)
	if err != nil {
		t.Fatal(err)
	}
	want := testOptions{Header: "X-Key", Keys: []string{"a", "b"}, Max: 10, Interval: Duration(time.Minute),
		Limit: 1 << 20, Hide: true, Claims: map[string]string{"sub": "X-User"}}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got %+v\nwant %+v", o, want)
	}

	// Integer seconds for durations, nil options.
	o = testOptions{}
	if err := DecodeOptions(map[string]any{"interval": int64(5)}, &o); err != nil || o.Interval.D() != 5*time.Second {
		t.Errorf("interval = %v, %v", o.Interval.D(), err)
	}
	if err := DecodeOptions(nil, &o); err != nil {
		t.Errorf("nil options: %v", err)
	}

	// Every problem is reported, each with its key, and the engine can
	// locate them.
	err = DecodeOptions(map[string]any{
		"header":         int64(1),
		"interval":       "soon",
		"limit":          "big",
		"colour":         "red",
		"forward_claims": "x",
	}, &o)
	want2 := `colour: unknown key` + "\n" +
		`forward_claims: must be a table of strings` + "\n" +
		`header: must be a string, not an integer` + "\n" +
		`interval: invalid duration "soon" (use e.g. "250ms", "10s", "1m", "30d")` + "\n" +
		`limit: invalid size "big" (use e.g. "512KB", "1MB", "1GB" or bytes)`
	if err == nil || err.Error() != want2 {
		t.Errorf("got:\n%v\nwant:\n%s", err, want2)
	}
	var all Errors
	all.Append("p.toml", "plugins.auth", err)
	if len(all) != 5 || all[0].Error() != "p.toml: [plugins.auth] colour: unknown key" {
		t.Errorf("Append = %v", all)
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Errorf("error is %T, want Errors", err)
	}

	if err := DecodeOptions(map[string]any{}, o); err == nil {
		t.Error("non-pointer dst accepted")
	}
}

func TestDecodeOptionsNested(t *testing.T) {
	type rule struct {
		Path string `toml:"path"`
		Max  int    `toml:"max"`
	}
	var o struct {
		Rules []rule `toml:"rules"`
		One   rule   `toml:"one"`
		Any   any    `toml:"any"`
	}
	err := DecodeOptions(map[string]any{
		"rules": []any{map[string]any{"path": "/a", "max": int64(1)}, map[string]any{"path": "/b", "mx": int64(2)}},
		"one":   map[string]any{"path": "/c", "extra": true},
		"any":   map[string]any{"free": "form"},
	}, &o)
	want := "one.extra: unknown key\nrules.mx: unknown key"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	if len(o.Rules) != 2 || o.Rules[0].Path != "/a" || o.One.Path != "/c" {
		t.Errorf("decoded %+v", o)
	}
}
