package cache

import (
	"strings"

	"github.com/pingap-go/pingap/internal/httpx"
)

// Vary handling. A stored variant keeps the request's values of each field
// its response's Vary names; a later request uses that variant only when
// its values are the same. Accept-Encoding is compared by meaning, not by
// spelling: browsers and tools list the same codings in different orders,
// with and without spaces or q-values, and a response in coding X suits
// every client that accepts X. So its value is reduced to the set of
// codings accepted (q > 0) from a small known list, written in one
// canonical form ("br,gzip,zstd"); a value naming a coding outside that
// list is compared as received.

// aeCodings are the codings Accept-Encoding is normalized over, in
// canonical order (a bit each).
var aeCodings = [...]string{"br", "compress", "deflate", "gzip", "identity", "x-gzip", "zstd", "*"}

// aeMask returns the set of known codings a list of Accept-Encoding
// elements accepts; ok is false when an element is not understood.
func aeMask(value string, mask uint8) (uint8, bool) {
	for value != "" {
		var elem string
		elem, value, _ = strings.Cut(value, ",")
		name, params, _ := strings.Cut(elem, ";")
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		bit := -1
		for i, c := range aeCodings {
			if strings.EqualFold(name, c) {
				bit = i
				break
			}
		}
		if bit < 0 {
			return 0, false
		}
		if q, ok := qValue(params); !ok {
			return 0, false
		} else if q {
			mask |= 1 << bit
		}
	}
	return mask, true
}

// qValue reports whether the parameters of one element give it a weight
// above zero (no q means q=1); ok is false for anything but one q.
func qValue(params string) (nonzero, ok bool) {
	params = strings.TrimSpace(params)
	if params == "" {
		return true, true
	}
	k, v, found := strings.Cut(params, "=")
	if !found || !strings.EqualFold(strings.TrimSpace(k), "q") {
		return false, false
	}
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return false, false
	}
	for i := 1; i < len(v); i++ {
		if c := v[i]; c != '.' && (c < '0' || c > '9') {
			return false, false
		}
	}
	return strings.Trim(v, "0.") != "", true
}

// requestAEMask is aeMask over every Accept-Encoding line of h.
func requestAEMask(h *httpx.Header) (mask uint8, ok bool) {
	ok = true
	h.Values("Accept-Encoding", func(v string) bool {
		mask, ok = aeMask(v, mask)
		return ok
	})
	return mask, ok
}

// aeCanonical writes a set of codings in canonical form.
func aeCanonical(mask uint8) string {
	var b strings.Builder
	for i, c := range aeCodings {
		if mask&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(c)
		}
	}
	return b.String()
}

// varyValue is what a stored variant keeps of the request's field name.
func varyValue(h *httpx.Header, name string) string {
	if strings.EqualFold(name, "Accept-Encoding") {
		if mask, ok := requestAEMask(h); ok {
			return aeCanonical(mask)
		}
	}
	return joinedValue(h, name)
}

// varyMatches compares the request's values of the Vary fields with the
// stored ones, without allocating.
func varyMatches(names, vals []string, req *httpx.Header) bool {
	for i, name := range names {
		if strings.EqualFold(name, "Accept-Encoding") {
			want, okWant := aeMask(vals[i], 0)
			got, okGot := requestAEMask(req)
			if okWant && okGot {
				if want != got {
					return false
				}
				continue
			}
		}
		if !headerValueIs(req, name, vals[i]) {
			return false
		}
	}
	return true
}

// headerValueIs reports whether the values of name, joined with ", ",
// equal want.
func headerValueIs(h *httpx.Header, name, want string) bool {
	ok, first := true, true
	h.Values(name, func(v string) bool {
		if !first {
			if !strings.HasPrefix(want, ", ") {
				ok = false
				return false
			}
			want = want[2:]
		}
		first = false
		if !strings.HasPrefix(want, v) {
			ok = false
			return false
		}
		want = want[len(v):]
		return true
	})
	return ok && want == ""
}

func joinedValue(h *httpx.Header, name string) string {
	var b strings.Builder
	h.Values(name, func(v string) bool {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v)
		return true
	})
	return b.String()
}
