package httpx

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/testutil/race"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/a", "/a"},
		{"/a/", "/a/"},
		{"/a/b?c", "/a/b?c"}, // '?' is not special here: callers split the query first
		{"//", "/"},
		{"///a///b//", "/a/b/"},
		{"/a/./b", "/a/b"},
		{"/a/.", "/a/"},
		{"/.", "/"},
		{"/..", "/"},
		{"/../../a", "/a"},
		{"/a/b/..", "/a/"},
		{"/a/b/../", "/a/"},
		{"/a/b/../c", "/a/c"},
		{"/a/../../b", "/b"},
		{"/a/%2e%2e/b", "/b"},
		{"/a/%2E%2e/b", "/b"},
		{"/a/.%2e/b", "/b"},
		{"/a/%2e./b", "/b"},
		{"/a/%2e/b", "/a/b"},
		{"/a/%2E", "/a/"},
		{"/a/%2e%2e%2e/b", "/a/%2e%2e%2e/b"},
		{"/a/.../b", "/a/.../b"},
		{"/a/..x/b", "/a/..x/b"},
		{"/a/%2e%2ex", "/a/%2e%2ex"},
		{"/a/.hidden", "/a/.hidden"},
		{"/a%2Fb/../c", "/c"},
		{"/a/..%2F..%2Fetc", "/a/..%2F..%2Fetc"},
		{"/a%2fb", "/a%2fb"},
		{"/%41%42", "/%41%42"},
		{"/a//..", "/"},
		{"/a/b//../c", "/a/c"}, // slashes merge first, as nginx's merge_slashes,
	}
	for _, tt := range tests {
		got, err := NormalizePath(tt.in)
		if err != nil {
			t.Errorf("NormalizePath(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("NormalizePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizePathErrors(t *testing.T) {
	for _, in := range []string{"a", "*", "/a%", "/a%2", "/a%g0", "/%zz/b", "/a/%2"} {
		if got, err := NormalizePath(in); err == nil {
			t.Errorf("NormalizePath(%q) = %q, want error", in, got)
		}
	}
}

func TestNormalizePathNoAllocWhenNormal(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	for _, p := range []string{"/", "/api/v1/users/123", "/a/.hidden/b%2Fc/", "/%2e%2ex"} {
		allocs := testing.AllocsPerRun(100, func() {
			got, _ := NormalizePath(p)
			if got != p {
				t.Fatalf("changed %q to %q", p, got)
			}
		})
		if allocs != 0 {
			t.Errorf("NormalizePath(%q): %v allocs", p, allocs)
		}
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//a/./b/", "/%2e%2E/x", "/a/.%2e", "/a%2F..", "/..//../a/b/c/../.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePath(in)
		if err != nil {
			return
		}
		if out == "" || out[0] != '/' {
			t.Fatalf("%q -> %q: not rooted", in, out)
		}
		again, err := NormalizePath(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, out, again, err)
		}
		if strings.Contains(out, "//") || strings.Contains(out, "/../") || strings.Contains(out, "/./") {
			t.Fatalf("%q -> %q", in, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if dotSegment(seg) != 0 {
				t.Fatalf("%q -> %q keeps dot segment %q", in, out, seg)
			}
		}
		if len(out) > len(in)+1 {
			t.Fatalf("%q -> %q grew", in, out)
		}
	})
}
