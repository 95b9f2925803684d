package upstream

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pingap-go/pingap/internal/httpx"
)

// vnodesPerAddr is how many points each addr gets on the ring. 160 (as in
// ketama) keeps the share of keys per addr within a few percent.
const vnodesPerAddr = 160

// ring is a consistent-hash ring: every addr owns vnodesPerAddr points
// hashed from its addr string, and a key belongs to the first point at or
// after its hash whose host is usable. Removing an addr (or it going down)
// therefore moves only the keys that addr owned; they spread over the other
// addrs because its points are interleaved with theirs.
//
// Hashes are FNV-1a with a murmur3 finalizer: stable across processes and
// versions (hash/maphash is seeded per process), so several proxies sharing
// a config agree on where a key goes.
type ring struct {
	hosts  []*Host
	points []uint64
	owner  []int32 // host index of each point
}

func newRing(hosts []*Host) *ring {
	type pt struct {
		h     uint64
		owner int32
	}
	pts := make([]pt, 0, len(hosts)*vnodesPerAddr)
	var buf []byte
	for i, h := range hosts {
		for v := range vnodesPerAddr {
			buf = append(append(buf[:0], h.Addr...), '#')
			buf = strconv.AppendInt(buf, int64(v), 10)
			pts = append(pts, pt{hashBytes(buf), int32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b pt) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(a.owner - b.owner)
	})
	r := &ring{hosts: hosts, points: make([]uint64, len(pts)), owner: make([]int32, len(pts))}
	for i, p := range pts {
		r.points[i], r.owner[i] = p.h, p.owner
	}
	return r
}

// get returns the usable host owning key.
func (r *ring) get(key uint64, exclude *Host) *Host {
	// Lower bound: first point >= key.
	lo, hi := 0, len(r.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.points[m] < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	n := len(r.points)
	if lo == n {
		lo = 0
	}
	for range n {
		if h := r.hosts[r.owner[lo]]; usable(h, exclude) {
			return h
		}
		if lo++; lo == n {
			lo = 0
		}
	}
	return nil
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvBytes(h uint64, s []byte) uint64 {
	for _, b := range s {
		h ^= uint64(b)
		h *= fnvPrime
	}
	return h
}

// fmix64 is murmur3's finalizer: FNV-1a of similar short strings ("a#1",
// "a#2") differs mostly in low bits; this spreads them over the whole ring.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

func hashString(s string) uint64 { return fmix64(fnvString(fnvOffset, s)) }
func hashBytes(b []byte) uint64  { return fmix64(fnvBytes(fnvOffset, b)) }

// Hash key sources for algorithm = "hash".
const (
	keyURI = iota
	keyHeader
	keyCookie
	keyQuery
)

// hashPolicy is algorithm = "hash": a consistent-hash ring over the key
// hash_key names. "uri" (the default when hash_key is empty) hashes the
// normalized path and the raw query. header:NAME, cookie:NAME and query:NAME
// hash the raw value (no unescaping); a request without the value has no
// key and is sent round robin rather than piling every keyless request on
// one addr.
type hashPolicy struct {
	ring *ring
	kind int
	name string
	_    pad
	next atomic.Uint64
	_    pad
}

func newHash(hosts []*Host, hashKey string) (*hashPolicy, error) {
	s := &hashPolicy{ring: newRing(hosts)}
	src, name, _ := strings.Cut(hashKey, ":")
	switch {
	case hashKey == "" || hashKey == "uri":
		s.kind = keyURI
	case name == "":
		return nil, fmt.Errorf("hash_key: %q: want \"uri\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"", hashKey)
	case src == "header":
		s.kind = keyHeader
	case src == "cookie":
		s.kind = keyCookie
	case src == "query":
		s.kind = keyQuery
	default:
		return nil, fmt.Errorf("hash_key: %q: want \"uri\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"", hashKey)
	}
	s.name = name
	return s, nil
}

func (s *hashPolicy) Select(c *httpx.Ctx, exclude *Host) *Host {
	key, ok := s.key(c)
	if !ok {
		return rrPick(s.ring.hosts, &s.next, exclude)
	}
	return s.ring.get(key, exclude)
}

// key hashes the request's key without building a string.
func (s *hashPolicy) key(c *httpx.Ctx) (uint64, bool) {
	if c == nil {
		return 0, false
	}
	switch s.kind {
	case keyURI:
		h := fnvString(fnvOffset, c.Req.Path)
		if c.Req.RawQuery != "" {
			h = fnvString(fnvString(h, "?"), c.Req.RawQuery)
		}
		return fmix64(h), true
	case keyHeader:
		if v, ok := c.Req.Header.Lookup(s.name); ok {
			return hashString(v), true
		}
	case keyCookie:
		for _, f := range c.Req.Header.Fields() {
			if httpx.EqualFold(f.Name, "Cookie") {
				if v, ok := httpx.Cookie(f.Value, s.name); ok {
					return hashString(v), true
				}
			}
		}
	case keyQuery:
		if v, ok := httpx.QueryValue(c.Req.RawQuery, s.name); ok {
			return hashString(v), true
		}
	}
	return 0, false
}
