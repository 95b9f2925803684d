package cache

import (
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

func FuzzPolicy(f *testing.F) {
	for _, s := range []string{`max-age=60, s-maxage="x"`, `private="a,b", no-cache`, `stale-if-error=99999999999999999999`, `"`, `,,=,`} {
		f.Add(s, "Mon, 02 Jan 2006 15:04:05 GMT", "5")
	}
	f.Fuzz(func(t *testing.T, cc, date, age string) {
		var h httpx.Header
		h.Add("Cache-Control", cc)
		h.Add("Expires", date)
		h.Add("Date", date)
		h.Add("Age", age)
		c := parseCacheControl(&h)
		now := time.Now()
		if f, _ := freshnessLifetime(&h, c, now, time.Minute); f < 0 && c.maxAge < 0 && c.sMaxAge < 0 {
			t.Fatalf("negative freshness %v", f)
		}
		initialAge(&h, time.Time{}, now)
		etagMatches(cc, date)
		storable(&h, &h, c)
	})
}
