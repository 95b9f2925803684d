// Package uarestriction is the ua_restriction plugin: a deny or allow list
// of User-Agent regular expressions (Go RE2 syntax, unanchored), 403 for
// refused clients. Each regexp is compiled once at build. Go's regexp is
// slow on unanchored, case-insensitive patterns (several µs for a 120-byte
// browser UA), and most real lists are plain words ("curl", "(?i)bot|spider",
// "^python-requests"), so patterns that are literals, alternations of
// literals or start-anchored literals are matched with a substring search
// (ASCII case folding for (?i)); everything else goes to the regexp.
package uarestriction

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "ua_restriction"

// Options is the [plugins.NAME] table.
type Options struct {
	UAList []string `toml:"ua_list"`
	// Type is "deny" (default) or "allow".
	Type string `toml:"type"`
}

// UARestriction is a built ua_restriction plugin.
type UARestriction struct {
	matchers []matcher
	allow    bool
	fold     bool // some matcher searches (?i) literals
}

var _ plugin.Plugin = (*UARestriction)(nil)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &UARestriction{}
	switch o.Type {
	case "", "deny":
	case "allow":
		p.allow = true
	default:
		return nil, fmt.Errorf(`type: %q must be "deny" or "allow"`, o.Type)
	}
	if len(o.UAList) == 0 {
		return nil, errors.New("ua_list: at least one regular expression is required")
	}
	for i, e := range o.UAList {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("ua_list: entry %d %q: %w", i, e, err)
		}
		m := compile(e, re)
		p.fold = p.fold || (m.fold && m.literals != nil && !m.prefix)
		p.matchers = append(p.matchers, m)
	}
	return p, nil
}

// Request refuses matching (deny) or non-matching (allow) user agents. A
// request without User-Agent is matched as the empty string.
func (p *UARestriction) Request(c *httpx.Ctx) bool {
	if p.match(c.Req.Header.Get("User-Agent")) != p.allow {
		c.Error(403, "forbidden")
		return true
	}
	return false
}

func (p *UARestriction) match(ua string) bool {
	// (?i) literals search a lower-cased copy made once, on the stack, when
	// the UA is ASCII and fits; otherwise each matcher folds on its own.
	var buf [maxLowered]byte
	var lower []byte // nil: not available
	if p.fold && len(ua) <= len(buf) && isASCII(ua) {
		for i := 0; i < len(ua); i++ {
			b := ua[i]
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			buf[i] = b
		}
		lower = buf[:len(ua)]
	}
	for i := range p.matchers {
		if p.matchers[i].match(ua, lower) {
			return true
		}
	}
	return false
}

// maxLowered bounds the stack copy of a UA (real ones are under 512 bytes).
const maxLowered = 1024

// matcher is one ua_list entry: a set of literals when the pattern allows,
// else the regexp.
type matcher struct {
	re       *regexp.Regexp
	literals []string // lower-cased when fold
	litBytes [][]byte // literals as []byte, for bytes.Contains
	fold     bool
	prefix   bool // literals must be at the start
}

// match reports whether s matches; lower is s lower-cased, or nil when not
// available.
func (m *matcher) match(s string, lower []byte) bool {
	// Unicode case folding maps some non-ASCII runes onto ASCII letters
	// (U+212A KELVIN SIGN folds to k, U+017F LONG S to s), so a non-ASCII
	// UA under (?i) goes to the regexp to keep its exact semantics.
	if m.literals == nil || (m.fold && !isASCII(s)) {
		return m.re.MatchString(s)
	}
	for i, lit := range m.literals {
		switch {
		case m.prefix && m.fold:
			if len(s) >= len(lit) && strings.EqualFold(s[:len(lit)], lit) {
				return true
			}
		case m.prefix:
			if strings.HasPrefix(s, lit) {
				return true
			}
		case m.fold && lower != nil:
			if bytes.Contains(lower, m.litBytes[i]) {
				return true
			}
		case m.fold:
			if containsFold(s, lit) {
				return true
			}
		default:
			if strings.Contains(s, lit) {
				return true
			}
		}
	}
	return false
}

// compile picks the literal fast path when the parsed pattern is a literal,
// an alternation of literals (same case mode), or ^ followed by either.
func compile(pattern string, re *regexp.Regexp) matcher {
	fallback := matcher{re: re}
	t, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return fallback
	}
	t = t.Simplify()
	m := matcher{re: re}
	if t.Op == syntax.OpConcat && len(t.Sub) == 2 && t.Sub[0].Op == syntax.OpBeginText {
		m.prefix = true
		t = t.Sub[1]
	}
	for t.Op == syntax.OpCapture {
		t = t.Sub[0]
	}
	subs := []*syntax.Regexp{t}
	if t.Op == syntax.OpAlternate {
		subs = t.Sub
	}
	for i, sub := range subs {
		if sub.Op != syntax.OpLiteral {
			return fallback
		}
		fold := sub.Flags&syntax.FoldCase != 0
		if i == 0 {
			m.fold = fold
		} else if fold != m.fold {
			return fallback
		}
		lit := string(sub.Rune)
		for _, r := range sub.Rune {
			if r >= 0x80 {
				return fallback // non-ASCII folding: leave it to regexp
			}
			// Under (?i) RE2 folds k to the Kelvin sign (U+212A) and s to
			// the long s (U+017F); an ASCII-only comparison would miss them.
			if fold && (r == 'k' || r == 'K' || r == 's' || r == 'S') {
				return fallback
			}
		}
		if m.fold {
			lit = strings.ToLower(lit)
		}
		m.literals = append(m.literals, lit)
		m.litBytes = append(m.litBytes, []byte(lit))
	}
	return m
}

// containsFold reports whether s contains lower (an ASCII, lower-case
// literal) ignoring ASCII case.
func containsFold(s, lower string) bool {
	n := len(lower)
	if n == 0 {
		return true
	}
	first := lower[0]
	for i := 0; i+n <= len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != first {
			continue
		}
		j := 1
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
