package router

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tmplPart is one piece of a parsed regex replacement template: literal text,
// or (group >= 0) the text of a capture group.
type tmplPart struct {
	lit   string
	group int // -1: literal
}

// parseTemplate parses a replacement template once, at build time, into
// literal and capture-group parts. The result expands exactly like
// regexp.Regexp.ExpandString(dst, template, src, match):
//   - $1, ${1}, $name, ${name} reference a capture group by number or name;
//     a name is the longest run of letters, digits and '_';
//   - a number with a leading zero ($01) is a name, and names that no group
//     has expand to nothing, as do out-of-range numbers and groups that did
//     not participate in the match;
//   - $$ is a literal '$'; a malformed reference ("$", "${x", "$-") leaves
//     the '$' as literal text.
//
// Doing it here keeps template parsing and the name lookup off the request
// path.
func parseTemplate(re *regexp.Regexp, template string) []tmplPart {
	var parts []tmplPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, tmplPart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	names := re.SubexpNames()
	for len(template) > 0 {
		before, after, ok := strings.Cut(template, "$")
		if !ok {
			break
		}
		lit.WriteString(before)
		template = after
		if template != "" && template[0] == '$' {
			lit.WriteByte('$')
			template = template[1:]
			continue
		}
		name, num, rest, ok := extractRef(template)
		if !ok {
			lit.WriteByte('$')
			continue
		}
		template = rest
		group := -1
		if num >= 0 {
			if num < len(names) {
				group = num
			}
		} else {
			for i, n := range names {
				if i > 0 && n == name {
					group = i
					break
				}
			}
		}
		if group < 0 {
			continue // unknown reference: expands to nothing
		}
		flush()
		parts = append(parts, tmplPart{group: group})
	}
	lit.WriteString(template)
	flush()
	return parts
}

// extractRef is regexp's extract: the name from a leading "name" or "{name}"
// in str (the '$' already removed); num is the number when the name is a
// decimal number without leading zeros, else -1.
func extractRef(str string) (name string, num int, rest string, ok bool) {
	if str == "" {
		return
	}
	brace := false
	if str[0] == '{' {
		brace = true
		str = str[1:]
	}
	i := 0
	for i < len(str) {
		r, size := utf8.DecodeRuneInString(str[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
			break
		}
		i += size
	}
	if i == 0 {
		return
	}
	name = str[:i]
	if brace {
		if i >= len(str) || str[i] != '}' {
			return
		}
		i++
	}
	num = 0
	for j := 0; j < len(name); j++ {
		if name[j] < '0' || '9' < name[j] || num >= 1e8 {
			num = -1
			break
		}
		num = num*10 + int(name[j]) - '0'
	}
	if name[0] == '0' && len(name) > 1 {
		num = -1
	}
	rest = str[i:]
	ok = true
	return
}

// expand appends the template expanded against path and its submatch
// indexes to dst.
func expand(dst []byte, parts []tmplPart, path string, loc []int) []byte {
	for _, p := range parts {
		if p.group < 0 {
			dst = append(dst, p.lit...)
			continue
		}
		if 2*p.group+1 < len(loc) && loc[2*p.group] >= 0 {
			dst = append(dst, path[loc[2*p.group]:loc[2*p.group+1]]...)
		}
	}
	return dst
}

// appendRewrite appends e's rewrite of path to dst. For regex routes loc is
// the submatch index slice of e's regex on path (nil if it did not match, in
// which case the path is returned unchanged).
func appendRewrite[T any](dst []byte, e *Entry[T], path string, loc []int) []byte {
	switch e.pathKind {
	case pathExact:
		return append(dst, e.Rewrite...)
	case pathPrefix:
		rest := path[len(e.prefix):]
		if rest == "" {
			return append(dst, e.Rewrite...)
		}
		// rest starts with '/' (segment boundary): join with exactly one.
		dst = append(dst, e.rewriteBase...)
		return append(dst, rest...)
	default: // pathRegex
		if len(loc) < 2 || loc[0] < 0 {
			return append(dst, path...)
		}
		start := len(dst)
		dst = append(dst, path[:loc[0]]...)
		dst = expand(dst, e.tmpl, path, loc)
		dst = append(dst, path[loc[1]:]...)
		if len(dst) == start || dst[start] != '/' {
			// The request target must be origin-form; a template such as
			// "$1" on "^/(.*)" would otherwise drop the leading slash.
			dst = append(dst, 0)
			copy(dst[start+1:], dst[start:])
			dst[start] = '/'
		}
		return dst
	}
}
