// Package iprestriction is the ip_restriction plugin: a deny or allow list
// of IPs and CIDRs (IPv4 and IPv6), 403 for refused clients.
//
// The client is the TCP peer. With trust_forwarded, and only when the peer
// is one of basic.trusted_proxies, X-Forwarded-For is walked from the right,
// skipping trusted proxies, and the first untrusted address is the client:
// a client that is not a trusted proxy can never choose its address by
// sending X-Forwarded-For.
package iprestriction

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin"
)

// Category is the catalogue name.
const Category = "ip_restriction"

// Options is the [plugins.NAME] table.
type Options struct {
	IPList []string `toml:"ip_list"`
	// Type is "deny" (default: listed clients are refused) or "allow"
	// (only listed clients pass).
	Type           string `toml:"type"`
	TrustForwarded bool   `toml:"trust_forwarded"`
}

// IPRestriction is a built ip_restriction plugin.
type IPRestriction struct {
	set            *Set
	allow          bool
	trustForwarded bool
	trusted        *Set
}

var _ plugin.Plugin = (*IPRestriction)(nil)

// New builds the plugin from its options.
func New(env plugin.Env, options map[string]any) (plugin.Plugin, error) {
	var o Options
	if err := config.DecodeOptions(options, &o); err != nil {
		return nil, err
	}
	p := &IPRestriction{trustForwarded: o.TrustForwarded}
	switch o.Type {
	case "", "deny":
	case "allow":
		p.allow = true
	default:
		return nil, fmt.Errorf(`type: %q must be "deny" or "allow"`, o.Type)
	}
	if len(o.IPList) == 0 {
		return nil, errors.New("ip_list: at least one IP or CIDR is required")
	}
	set, err := ParseSet(o.IPList)
	if err != nil {
		return nil, fmt.Errorf("ip_list: %w", err)
	}
	p.set = set
	if p.trustForwarded {
		if len(env.TrustedProxies) == 0 && env.Logger != nil {
			env.Logger.Warn("ip_restriction: trust_forwarded is set but basic.trusted_proxies is empty: X-Forwarded-For is never used", "plugin", env.Name)
		}
		p.trusted = NewSet(env.TrustedProxies)
	}
	return p, nil
}

// Request refuses listed (deny) or unlisted (allow) clients.
func (p *IPRestriction) Request(c *httpx.Ctx) bool {
	if p.set.Contains(p.client(c)) != p.allow {
		c.Error(403, "forbidden")
		return true
	}
	return false
}

// client returns the address the list is checked against.
func (p *IPRestriction) client(c *httpx.Ctx) netip.Addr {
	peer := c.Conn.RemoteAddr.Addr().Unmap()
	if !peer.IsValid() {
		peer = c.ClientIP
	}
	if !p.trustForwarded || !p.trusted.Contains(peer) {
		return peer
	}
	return ForwardedClient(peer, &c.Req.Header, p.trusted)
}

// ForwardedClient walks X-Forwarded-For (every field, right to left) from a
// trusted peer and returns the first address not in trusted. When every hop
// is trusted it returns the leftmost one; when an entry is not an address
// the walk stops at the last address it could read (never one further left,
// which the client could have written).
func ForwardedClient(peer netip.Addr, h *httpx.Header, trusted *Set) netip.Addr {
	client := peer
	fields := h.Fields()
	for i := len(fields) - 1; i >= 0; i-- {
		if !httpx.EqualFold(fields[i].Name, "X-Forwarded-For") {
			continue
		}
		v := fields[i].Value
		for v != "" {
			var part string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				part, v = v[j+1:], v[:j]
			} else {
				part, v = v, ""
			}
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			a, ok := parseHop(part)
			if !ok {
				return client
			}
			client = a
			if !trusted.Contains(a) {
				return a
			}
		}
	}
	return client
}

// parseHop parses an X-Forwarded-For entry: an address, optionally with a
// port ("1.2.3.4:5", "[::1]:5") or in brackets.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
