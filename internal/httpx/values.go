package httpx

import "strings"

// ValidToken reports whether s is a non-empty RFC 9110 token (§5.6.2): a
// field name, a method, a cookie name.
func ValidToken(s string) bool { return wireValidToken(s) }

// Cookie finds name in one Cookie field value ("a=1; b=2") and returns its
// value, without surrounding double quotes (RFC 6265 §4.2.1).
func Cookie(v, name string) (string, bool) {
	for v != "" {
		var part string
		part, v, _ = strings.Cut(v, ";")
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == name {
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val, true
		}
	}
	return "", false
}

// CookieValue finds cookie name in every Cookie field of h.
func CookieValue(h *Header, name string) (string, bool) {
	for _, f := range h.Fields() {
		if EqualFold(f.Name, "Cookie") {
			if v, ok := Cookie(f.Value, name); ok {
				return v, true
			}
		}
	}
	return "", false
}

// QueryValue finds the first value of name in a raw query ("a=1&b=2"); the
// value stays percent-encoded. A key without '=' has the empty value.
func QueryValue(query, name string) (string, bool) {
	for query != "" {
		var part string
		part, query, _ = strings.Cut(query, "&")
		k, val, _ := strings.Cut(part, "=")
		if k == name {
			return val, true
		}
	}
	return "", false
}
