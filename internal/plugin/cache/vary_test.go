package cache

import (
	"testing"

	"github.com/pingap-go/pingap/internal/httpx"
)

func TestVaryValueAcceptEncoding(t *testing.T) {
	tests := []struct {
		lines []string
		want  string
	}{
		{nil, ""},
		{[]string{"gzip"}, "gzip"},
		{[]string{"gzip, deflate, br, zstd"}, "br,deflate,gzip,zstd"},
		{[]string{"zstd,br ,  GZIP"}, "br,gzip,zstd"},
		{[]string{"br;q=1.0, gzip;q=0.8, *;q=0.1"}, "br,gzip,*"},
		{[]string{"gzip", "br"}, "br,gzip"},               // two lines
		{[]string{"gzip;q=0, br"}, "br"},                  // refused coding
		{[]string{"gzip; q=0.000, identity"}, "identity"}, // spaces, zero with decimals
		{[]string{"gzip, sdch"}, "gzip, sdch"},            // unknown coding: as received
		{[]string{"gzip;level=9"}, "gzip;level=9"},        // a parameter other than q
		{[]string{"gzip;q=abc"}, "gzip;q=abc"},            // a bad weight
		{[]string{"gzip, , br"}, "br,gzip"},               // empty elements are allowed
		{[]string{"x-gzip, compress"}, "compress,x-gzip"}, // legacy names
		{[]string{"br;q=0.5", "gzip;q=1"}, "br,gzip"},     // order and weights do not matter
		{[]string{"gzip;q=0", "br;q=0"}, ""},              // nothing acceptable but identity
		{[]string{"GZip;Q=0.5"}, "gzip"},                  // case-insensitive names and q
		{[]string{"gzip;q=0.5;x=1"}, "gzip;q=0.5;x=1"},    // more than one parameter
		{[]string{"gzip;q="}, "gzip;q="},                  // empty weight
		{[]string{"gzip;q=0.12345"}, "gzip;q=0.12345"},    // too many decimals
		{[]string{"deflate"}, "deflate"},
	}
	for _, tt := range tests {
		var h httpx.Header
		for _, l := range tt.lines {
			h.Add("Accept-Encoding", l)
		}
		if got := varyValue(&h, "accept-encoding"); got != tt.want {
			t.Errorf("%q: varyValue %q, want %q", tt.lines, got, tt.want)
		}
		// What was stored matches the request it came from.
		if !varyMatches([]string{"Accept-Encoding"}, []string{tt.want}, &h) {
			t.Errorf("%q: does not match its own stored value %q", tt.lines, tt.want)
		}
	}
}

func TestVaryMatchesAcceptEncoding(t *testing.T) {
	tests := []struct {
		stored string // as written by an entry (canonical, or raw for unknown codings)
		req    []string
		want   bool
	}{
		{"br,gzip,zstd", []string{"gzip, br, zstd"}, true},
		{"br,gzip,zstd", []string{"zstd", "gzip,br"}, true},
		{"br,gzip,zstd", []string{"gzip, br"}, false},
		{"br,gzip", []string{"gzip, br;q=0"}, false},
		{"gzip", []string{"gzip;q=0.5"}, true},
		{"", nil, true},
		{"", []string{"identity"}, false},        // no header means any coding: not the same
		{"gzip, br", []string{"br, gzip"}, true}, // a value stored raw by an older version
		{"gzip, sdch", []string{"gzip, sdch"}, true},
		{"gzip, sdch", []string{"sdch, gzip"}, false}, // unknown codings compare as received
		{"gzip", []string{"gzip, sdch"}, false},
	}
	for _, tt := range tests {
		var h httpx.Header
		for _, l := range tt.req {
			h.Add("Accept-Encoding", l)
		}
		if got := varyMatches([]string{"Accept-Encoding"}, []string{tt.stored}, &h); got != tt.want {
			t.Errorf("stored %q, request %q: match %v, want %v", tt.stored, tt.req, got, tt.want)
		}
	}
	// Other fields are still compared as received.
	var h httpx.Header
	h.Add("Accept-Language", "en, fr")
	if varyMatches([]string{"Accept-Language"}, []string{"fr, en"}, &h) || !varyMatches([]string{"Accept-Language"}, []string{"en, fr"}, &h) {
		t.Error("Accept-Language must compare as received")
	}
}

// TestVaryAcceptEncodingOneVariant: clients spelling the same codings
// differently share one stored variant.
func TestVaryAcceptEncodingOneVariant(t *testing.T) {
	p := mustNew(t, map[string]any{})
	o := &origin{handler: func(c *httpx.Ctx) (int, []string, string) {
		return 200, []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding"}, "body"
	}}
	steps := []struct {
		ae     string
		status string
	}{
		{"gzip, deflate, br, zstd", StatusMiss},
		{"zstd, br, deflate, gzip", StatusHit},
		{"br;q=1.0, gzip;q=0.9, deflate;q=0.5, zstd", StatusHit},
		{"gzip", StatusMiss},
		{"GZIP", StatusHit},
	}
	for i, st := range steps {
		r := get(p, o, "/ae", "Accept-Encoding: "+st.ae)
		if got := r.header.Get("X-Cache-Status"); got != st.status {
			t.Fatalf("step %d (%q): %s, want %s", i, st.ae, got, st.status)
		}
	}
	if n := o.calls.Load(); n != 2 {
		t.Fatalf("%d upstream calls, want 2", n)
	}
}

func BenchmarkVaryMatchesAcceptEncoding(b *testing.B) {
	var h httpx.Header
	h.Add("Accept-Encoding", "gzip, deflate, br, zstd")
	names, vals := []string{"Accept-Encoding"}, []string{"br,deflate,gzip,zstd"}
	b.ReportAllocs()
	for b.Loop() {
		if !varyMatches(names, vals, &h) {
			b.Fatal("no match")
		}
	}
}
