package httpx

import "errors"

// ErrInvalidPath is returned by NormalizePath for a path that does not start
// with '/' or holds a malformed percent-encoding.
var ErrInvalidPath = errors.New("httpx: invalid path")

// NormalizePath returns the path the router matches and the upstream
// receives (contract: "Matching and rewriting"):
//
//   - "//" runs are merged into one "/";
//   - "." and ".." segments are resolved as in RFC 3986 §5.2.4 and never
//     climb above the root ("/.." is "/"); a trailing "." or ".." leaves a
//     trailing slash ("/a/b/.." is "/a/");
//   - a segment counts as a dot segment also when its dots are written
//     %2e or %2E (".%2e", "%2E%2e", ...), so "/a/%2e%2e/b" is "/b": an
//     upstream that decodes percent-encodings must never see a ".." we
//     did not resolve;
//   - nothing is decoded: other percent-encodings, %2F included, are kept
//     byte for byte, so an encoded slash never becomes a path separator and
//     "%2e" inside a longer segment ("/%2e%2ex") stays as sent.
//
// A malformed percent-encoding ('%' not followed by two hex digits) is an
// error (the server answers 400). The result always starts with '/', and
// NormalizePath(NormalizePath(p)) == NormalizePath(p). When p is already
// normal it is returned as is, without allocating.
func NormalizePath(p string) (string, error) {
	if len(p) == 0 {
		return "/", nil
	}
	if p[0] != '/' {
		return "", ErrInvalidPath
	}
	// Fast path: check every segment; most paths are already normal.
	clean := true
	for i := 1; i <= len(p); {
		j := i
		for j < len(p) && p[j] != '/' {
			if p[j] == '%' {
				if j+2 >= len(p) || !isHex(p[j+1]) || !isHex(p[j+2]) {
					return "", ErrInvalidPath
				}
				j += 2
			}
			j++
		}
		seg := p[i:j]
		if (len(seg) == 0 && j < len(p)) || dotSegment(seg) > 0 {
			clean = false
		}
		i = j + 1
	}
	if clean {
		return p, nil
	}
	out := make([]byte, 1, len(p))
	out[0] = '/'
	for i := 1; i <= len(p); {
		j := i
		for j < len(p) && p[j] != '/' {
			j++
		}
		seg := p[i:j]
		last := j >= len(p)
		i = j + 1
		switch dotSegment(seg) {
		case 1: // "." : out already ends in '/'
			continue
		case 2: // "..": drop the last segment kept so far
			if len(out) > 1 {
				k := len(out) - 2
				for out[k] != '/' {
					k--
				}
				out = out[:k+1]
			}
			continue
		}
		if len(seg) == 0 {
			continue
		}
		out = append(out, seg...)
		if !last {
			out = append(out, '/')
		}
	}
	return string(out), nil
}

// dotSegment returns 1 for a "." segment, 2 for "..", 0 otherwise; dots may
// be percent-encoded as %2e or %2E.
func dotSegment(seg string) int {
	if len(seg) == 0 || len(seg) > 6 || (seg[0] != '.' && seg[0] != '%') {
		return 0
	}
	dots := 0
	for i := 0; i < len(seg); {
		switch {
		case seg[i] == '.':
			i++
		case seg[i] == '%' && i+2 < len(seg) && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			i += 3
		default:
			return 0
		}
		dots++
	}
	if dots > 2 {
		return 0
	}
	return dots
}
