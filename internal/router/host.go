package router

import (
	"fmt"
	"net/netip"
	"strings"
)

// hostKind is how a route constrains the request host. Its numeric value is
// the tie-break strength from the contract: exact host beats wildcard host,
// which beats no host.
type hostKind uint8

const (
	hostAny      hostKind = iota // Host "": any host
	hostWildcard                 // Host "*.example.com"
	hostExact                    // Host "api.example.com"
)

// maxRouteHost is the longest host a route may name (a DNS name is at most
// 253 bytes), and maxHostBuf the stack buffer Match lower-cases the tail of
// the request host into; it must hold any route host.
const (
	maxRouteHost = 253
	maxHostBuf   = 256
)

// hostOnly strips the port (and the brackets of an IPv6 literal) from a raw
// Host header value, and one trailing dot of a fully qualified name. It does
// not allocate: the result is a substring of raw.
//
//	"Example.COM:8080" -> "Example.COM"
//	"[::1]:8443"       -> "::1"
//	"::1"              -> "::1" (not valid in a Host header, kept whole)
//	"example.com."     -> "example.com"
func hostOnly(raw string) string {
	h := raw
	if len(h) > 0 && h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		// Unterminated bracket: keep the rest as it is (no port stripping),
		// it cannot match a configured host anyway.
		return h[1:]
	}
	if i := strings.IndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i+1:], ':') < 0 {
		// Exactly one colon: host:port. More than one colon is a bare IPv6
		// address (invalid in a Host header, but harmless to compare whole).
		h = h[:i]
	}
	if n := len(h); n > 1 && h[n-1] == '.' {
		h = h[:n-1]
	}
	return h
}

// lowerASCII appends s lower-cased (ASCII letters only) to dst. Host names on
// the wire are ASCII (IDNs travel as punycode), and ASCII-only folding keeps
// configuration and requests folded by the same rule.
func lowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// parseRouteHost validates and canonicalizes a route's host: lower-cased,
// brackets of an IPv6 literal removed, one trailing dot removed. For a
// wildcard it returns the suffix including the leading dot (".example.com"),
// which is the key Match looks up.
func parseRouteHost(host string) (key string, kind hostKind, err error) {
	if host == "" {
		return "", hostAny, nil
	}
	key, kind, err = canonicalRouteHost(host)
	if err == nil && len(key) > maxRouteHost {
		return "", 0, fmt.Errorf("invalid host: longer than %d bytes", maxRouteHost)
	}
	return key, kind, err
}

func canonicalRouteHost(host string) (key string, kind hostKind, err error) {
	h := string(lowerASCII(nil, host))
	if strings.ContainsAny(h, " \t\r\n/?#@") {
		return "", 0, fmt.Errorf("invalid host %q", host)
	}
	if h[0] == '[' {
		if h[len(h)-1] != ']' {
			return "", 0, fmt.Errorf("invalid host %q: unterminated IPv6 literal", host)
		}
		h = h[1 : len(h)-1]
		if _, perr := netip.ParseAddr(h); perr != nil {
			return "", 0, fmt.Errorf("invalid host %q: %w", host, perr)
		}
		return h, hostExact, nil
	}
	if strings.Contains(h, ":") {
		if _, perr := netip.ParseAddr(h); perr == nil {
			return h, hostExact, nil
		}
		return "", 0, fmt.Errorf("invalid host %q: a port is not allowed (the request port is ignored)", host)
	}
	if n := len(h); n > 1 && h[n-1] == '.' {
		h = h[:n-1]
	}
	if strings.HasPrefix(h, "*.") {
		suffix := h[1:] // ".example.com"
		if len(suffix) < 2 || !validName(suffix[1:]) || suffix[1] == '.' {
			return "", 0, fmt.Errorf("invalid wildcard host %q: want \"*.example.com\"", host)
		}
		return suffix, hostWildcard, nil
	}
	if strings.Contains(h, "*") {
		return "", 0, fmt.Errorf("invalid host %q: \"*\" is only allowed as the first label (\"*.example.com\"); use \"\" for any host", host)
	}
	if !validName(h) {
		return "", 0, fmt.Errorf("invalid host %q: a host name has only letters, digits, '-', '_' and '.' (write internationalized names in punycode)", host)
	}
	return h, hostExact, nil
}

// validName reports whether s (lower-cased) is made of the bytes a host
// name may contain. Anything else could never equal a Host a client sends
// through a strict parser, so it is a configuration mistake.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
