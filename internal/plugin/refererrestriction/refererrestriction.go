// Package refererrestriction is the referer_restriction plugin: a deny or
// allow list of Referer hosts ("example.com", "*.example.com"), 403 for
// refused requests. A missing (or unparsable) Referer passes a deny list
// and fails an allow list.
//
// "*.example.com" matches one or more labels in front of example.com
// (a.example.com, a.b.example.com), not example.com itself, like location
// hosts. Hosts compare case-insensitively and without the port.
package refererrestriction

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "referer_restriction"

// maxHost bounds the host we look at (DNS names are at most 253 bytes).
const maxHost = 255

// Options is the [plugins.NAME] table.
type Options struct {
	RefererList []string `toml:"referer_list"`
	// Type is "deny" (default) or "allow".
	Type string `toml:"type"`
}

// RefererRestriction is a built referer_restriction plugin.
type RefererRestriction struct {
	exact    map[string]struct{}
	suffixes []string // ".example.com"
	allow    bool
}

var _ plugin.Plugin = (*RefererRestriction)(nil)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &RefererRestriction{exact: map[string]struct{}{}}
	switch o.Type {
	case "", "deny":
	case "allow":
		p.allow = true
	default:
		return nil, fmt.Errorf(`type: %q must be "deny" or "allow"`, o.Type)
	}
	if len(o.RefererList) == 0 {
		return nil, errors.New("referer_list: at least one host is required")
	}
	for i, e := range o.RefererList {
		h := strings.ToLower(strings.TrimSpace(e))
		wild := strings.HasPrefix(h, "*.")
		name := strings.TrimPrefix(h, "*.")
		if !validHost(name) {
			return nil, fmt.Errorf(`referer_list: entry %d %q must be a host name ("example.com") or "*.example.com"`, i, e)
		}
		if wild {
			p.suffixes = append(p.suffixes, "."+name)
		} else {
			p.exact[name] = struct{}{}
		}
	}
	return p, nil
}

func validHost(h string) bool {
	if h == "" || len(h) > maxHost {
		return false
	}
	for i := 0; i < len(h); i++ {
		b := h[i]
		if !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '.' || b == '_') {
			return false
		}
	}
	return true
}

// Request checks the Referer host.
func (p *RefererRestriction) Request(c *httpx.Ctx) bool {
	var buf [maxHost]byte
	host, ok := refererHost(buf[:0], c.Req.Header.Get("Referer"))
	listed := ok && p.match(host)
	if listed != p.allow {
		c.Error(403, "forbidden")
		return true
	}
	return false
}

func (p *RefererRestriction) match(host []byte) bool {
	if _, ok := p.exact[string(host)]; ok {
		return true
	}
	for _, s := range p.suffixes {
		if len(host) > len(s) && string(host[len(host)-len(s):]) == s {
			return true
		}
	}
	return false
}

// refererHost appends the lower-cased host (no userinfo, no port) of an
// absolute URL to dst. It reports false for a value with no host.
func refererHost(dst []byte, ref string) ([]byte, bool) {
	i := strings.Index(ref, "://")
	if i == 0 || (i > 0 && !validScheme(ref[:i])) {
		return dst, false
	}
	if i < 0 {
		// Scheme-relative "//host/path" is allowed too.
		if !strings.HasPrefix(ref, "//") {
			return dst, false
		}
		i = -1
	}
	rest := ref[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	if j := strings.LastIndexByte(rest, '@'); j >= 0 {
		rest = rest[j+1:]
	}
	rest = httpx.HostOnly(rest)
	rest = strings.TrimSuffix(rest, ".")
	if rest == "" || len(rest) > cap(dst) {
		return dst, false
	}
	return httpx.AppendLowerHost(dst, rest), true
}

// validScheme checks RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i] | 0x20
		if 'a' <= b && b <= 'z' {
			continue
		}
		if i > 0 && ('0' <= s[i] && s[i] <= '9' || s[i] == '+' || s[i] == '-' || s[i] == '.') {
			continue
		}
		return false
	}
	return s != ""
}
