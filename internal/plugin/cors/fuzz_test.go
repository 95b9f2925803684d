package cors

import (
	"testing"

	"github.com/pingap-go/pingap/internal/plugin"
)

func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"https://a.example.com", "https://.example.com", "https://..example.com", "https://", "", "*"} {
		f.Add(s)
	}
	p, err := New(plugin.Env{}, map[string]any{"allow_origins": []any{"https://x.io", "https://*.example.com"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		if got := p.(*Plugin).allowed(origin); got != "" && got != origin {
			t.Fatalf("allowed(%q) = %q", origin, got)
		}
	})
}
