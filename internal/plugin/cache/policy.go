package cache

import (
	"strconv"
	"strings"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// cacheControl holds the Cache-Control directives a shared cache acts on
// (RFC 9111 5.2). Durations are -1 when absent.
type cacheControl struct {
	noStore, noCache, private, public bool
	mustRevalidate                    bool // must-revalidate or proxy-revalidate
	maxAge, sMaxAge                   time.Duration
	staleWhileRevalidate, staleIfErr  time.Duration
	// Request directives (RFC 9111 5.2.1): max-stale without a value is
	// "any staleness" (1<<62).
	maxStale, minFresh time.Duration
	onlyIfCached       bool
}

func parseCacheControl(h *httpx.Header) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1, staleWhileRevalidate: -1, staleIfErr: -1, maxStale: -1, minFresh: -1}
	h.Values("Cache-Control", func(v string) bool {
		for len(v) > 0 {
			var item string
			item, v = cutDirective(v)
			name, arg, hasArg := strings.Cut(strings.TrimSpace(item), "=")
			name = strings.TrimSpace(name)
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			switch strings.ToLower(name) {
			case "no-store":
				cc.noStore = true
			case "no-cache":
				// no-cache="field" lets a cache reuse the response without
				// the field; treating it as plain no-cache is the safe side.
				cc.noCache = true
			case "private":
				// Likewise private="field": a shared cache does not store.
				cc.private = true
			case "public":
				cc.public = true
			case "must-revalidate", "proxy-revalidate":
				cc.mustRevalidate = true
			case "max-age":
				cc.maxAge = parseSeconds(arg, hasArg)
			case "s-maxage":
				cc.sMaxAge = parseSeconds(arg, hasArg)
			case "stale-while-revalidate":
				cc.staleWhileRevalidate = parseSeconds(arg, hasArg)
			case "stale-if-error":
				cc.staleIfErr = parseSeconds(arg, hasArg)
			case "max-stale":
				cc.maxStale = 1 << 62
				if hasArg {
					cc.maxStale = parseSeconds(arg, true)
				}
			case "min-fresh":
				cc.minFresh = parseSeconds(arg, hasArg)
			case "only-if-cached":
				cc.onlyIfCached = true
			}
		}
		return true
	})
	return cc
}

// cutDirective splits off the first directive, honouring quoted strings
// (private="a, b").
func cutDirective(v string) (item, rest string) {
	inQuote := false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				return v[:i], v[i+1:]
			}
		}
	}
	return v, ""
}

// parseSeconds parses delta-seconds; an invalid value counts as 0 (stale),
// the safe reading of RFC 9111 1.2.2. Huge values are capped.
func parseSeconds(s string, ok bool) time.Duration {
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		if err != nil && len(s) > 0 && allDigits(s) {
			n = 1 << 31 // overflow: RFC 9111 1.2.2 says use 2^31
		} else {
			return 0
		}
	}
	if n > 1<<31 {
		n = 1 << 31
	}
	return time.Duration(n) * time.Second
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const httpTimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

func parseHTTPTime(s string) (time.Time, bool) {
	for _, layout := range []string{httpTimeFormat, time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// storable is the storage decision of RFC 9111 3 for a shared cache,
// apart from the method and status checks done by the caller.
func storable(req, resp *httpx.Header, cc cacheControl) bool {
	if cc.noStore || cc.private {
		return false
	}
	// 3.5: a request with Authorization is stored only when the response
	// explicitly allows it.
	if req.Has("Authorization") && !cc.public && !cc.mustRevalidate && cc.sMaxAge < 0 {
		return false
	}
	var varyStar bool
	resp.Values("Vary", func(v string) bool {
		varyStar = httpx.HasToken(v, "*")
		return !varyStar
	})
	if varyStar {
		return false
	}
	// A response setting a cookie is someone's session: never share it.
	return !resp.Has("Set-Cookie")
}

// freshnessLifetime is RFC 9111 4.2.1 for a shared cache: s-maxage, then
// max-age, then Expires - Date, then the configured ttl. ok is false when
// the response gives no freshness and ttl is 0.
func freshnessLifetime(h *httpx.Header, cc cacheControl, now time.Time, ttl time.Duration) (time.Duration, bool) {
	if cc.noCache {
		return 0, true // stored, but revalidated before every use
	}
	if cc.sMaxAge >= 0 {
		return cc.sMaxAge, true
	}
	if cc.maxAge >= 0 {
		return cc.maxAge, true
	}
	if exp, ok := h.Lookup("Expires"); ok {
		t, valid := parseHTTPTime(exp)
		if !valid {
			return 0, true // an invalid Expires means already expired
		}
		date := now
		if d, ok := parseHTTPTime(h.Get("Date")); ok {
			date = d
		}
		if f := t.Sub(date); f > 0 {
			return f, true
		}
		return 0, true
	}
	if ttl > 0 {
		return ttl, true
	}
	return 0, false
}

// initialAge is RFC 9111 4.2.3's corrected initial age of a response
// received at now for a request sent at reqTime (zero: unknown, no
// delay): the larger of the apparent age (now - Date) and the Age field
// plus the response delay.
func initialAge(h *httpx.Header, reqTime, now time.Time) time.Duration {
	var age time.Duration
	if v, ok := h.Lookup("Age"); ok {
		age = parseSeconds(strings.TrimSpace(v), true)
	}
	if !reqTime.IsZero() && now.After(reqTime) {
		age += now.Sub(reqTime)
	}
	if d, ok := parseHTTPTime(h.Get("Date")); ok {
		if apparent := now.Sub(d); apparent > age {
			age = apparent
		}
	}
	return age
}

// cacheableStatus lists the statuses a cache may store (RFC 9110 15.1
// heuristically cacheable ones; others need explicit freshness, which we
// do not bother with).
func cacheableStatus(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// hopByHop fields are not stored (RFC 9111 3.1), nor the fields the cache
// writes itself.
func skipStoredField(name string) bool {
	for _, n := range [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade",
		"TE", "Trailer", "Proxy-Authenticate", "Proxy-Authorization", "Age", "X-Cache-Status"} {
		if httpx.EqualFold(name, n) {
			return true
		}
	}
	return false
}
