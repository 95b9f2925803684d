package compression

import (
	"testing"

	"github.com/pingap-go/pingap/internal/httpx"
)

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip", "br;q=0.5, *;q=0", "zstd;q=1.000;x=y", ";;,,q=", "*;q=0.", "gzip;q=1.0001"} {
		f.Add(s)
	}
	p := mustNew(f, map[string]any{})
	f.Fuzz(func(t *testing.T, ae string) {
		var h httpx.Header
		h.Add("Accept-Encoding", ae)
		if c := p.negotiate(&h); c < -1 || c >= numCodecs {
			t.Fatalf("codec %d", c)
		}
		if q := parseQ(ae); q < 0 || q > 1000 {
			t.Fatalf("q %d", q)
		}
	})
}
