package iprestriction

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Set is an immutable set of IP addresses built from IPs and CIDRs, IPv4 and
// IPv6 kept apart (an IPv4-mapped IPv6 client is looked up as IPv4). The
// prefixes are turned into sorted, merged address ranges, so a lookup is a
// binary search without allocation however long the list is.
type Set struct {
	v4, v6 []span
}

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// span is an inclusive address range.
type span struct{ first, last u128 }

func toU128(a netip.Addr) u128 {
	b := a.As16()
	var x u128
	for i := 0; i < 8; i++ {
		x.hi = x.hi<<8 | uint64(b[i])
		x.lo = x.lo<<8 | uint64(b[8+i])
	}
	return x
}

// ParsePrefix parses "1.2.3.4", "10.0.0.0/8", "::1" or "2001:db8::/32".
// Host bits after the prefix length are ignored, like nginx's allow/deny.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if p.Bits() < 0 {
				return netip.Prefix{}, fmt.Errorf("netip.ParsePrefix(%q): prefix too short for an IPv4-mapped address", s)
			}
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("ParseAddr(%q): zones are not allowed", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// NewSet builds a set from prefixes.
func NewSet(prefixes []netip.Prefix) *Set {
	s := &Set{}
	for _, p := range prefixes {
		p = p.Masked()
		a := p.Addr().Unmap()
		if a != p.Addr() {
			p = netip.PrefixFrom(a, max(p.Bits()-96, 0))
		}
		first := toU128(p.Addr())
		last := first
		host := p.Addr().BitLen() - p.Bits() // host bits
		if a.Is4() {
			// As16 puts IPv4 in the low 32 bits.
			if host > 0 {
				last.lo |= (uint64(1) << host) - 1
			}
			s.v4 = append(s.v4, span{first, last})
			continue
		}
		switch {
		case host >= 128:
			last = u128{^uint64(0), ^uint64(0)}
		case host > 64:
			last.lo = ^uint64(0)
			last.hi |= (uint64(1) << (host - 64)) - 1
		case host == 64:
			last.lo = ^uint64(0)
		case host > 0:
			last.lo |= (uint64(1) << host) - 1
		}
		s.v6 = append(s.v6, span{first, last})
	}
	s.v4 = merge(s.v4)
	s.v6 = merge(s.v6)
	return s
}

// ParseSet parses IPs and CIDRs; the error names the bad entry.
func ParseSet(list []string) (*Set, error) {
	prefixes := make([]netip.Prefix, 0, len(list))
	for i, e := range list {
		p, err := ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %w", i, e, err)
		}
		prefixes = append(prefixes, p)
	}
	return NewSet(prefixes), nil
}

func merge(spans []span) []span {
	if len(spans) == 0 {
		return nil
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.first.less(b.first) {
			return -1
		}
		if b.first.less(a.first) {
			return 1
		}
		return 0
	})
	out := spans[:1]
	for _, sp := range spans[1:] {
		last := &out[len(out)-1]
		// Overlapping or adjacent (last.last + 1 == sp.first) ranges merge.
		next := last.last
		next.lo++
		if next.lo == 0 {
			next.hi++
		}
		if !next.less(sp.first) || (last.last == u128{^uint64(0), ^uint64(0)}) {
			if last.last.less(sp.last) {
				last.last = sp.last
			}
			continue
		}
		out = append(out, sp)
	}
	return slices.Clip(out)
}

// Contains reports whether a is in the set. An invalid address is not.
func (s *Set) Contains(a netip.Addr) bool {
	if s == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	spans := s.v6
	if a.Is4() {
		spans = s.v4
	}
	x := toU128(a)
	// Find the last span whose first <= x.
	lo, hi := 0, len(spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.less(spans[m].first) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo > 0 && !spans[lo-1].last.less(x)
}

// Len returns the number of merged ranges (for tests and docs).
func (s *Set) Len() int { return len(s.v4) + len(s.v6) }
