package upstream

import (
	"sync/atomic"

	"github.com/pingap-go/pingap/internal/httpx"
)

// leastConn picks the usable host with the fewest requests in flight
// (HostState.Inflight, shared across snapshots). Ties — the common case
// under light load — are broken round robin over the tied hosts, so load
// spreads instead of always landing on the first one.
type leastConn struct {
	hosts []*Host
	_     pad
	next  atomic.Uint64
	_     pad
}

func newLeastConn(hosts []*Host) *leastConn { return &leastConn{hosts: hosts} }

func (s *leastConn) Select(_ *httpx.Ctx, exclude *Host) *Host {
	var best *Host
	var min int64
	ties := uint64(0)
	for _, h := range s.hosts {
		if !usable(h, exclude) {
			continue
		}
		switch v := h.inflight.Load(); {
		case best == nil || v < min:
			best, min, ties = h, v, 1
		case v == min:
			ties++
		}
	}
	if ties <= 1 {
		return best
	}
	// Second pass: the k-th tied host. Counts may have moved meanwhile; then
	// the first pass's answer stands.
	k := (s.next.Add(1) - 1) % ties
	for _, h := range s.hosts {
		if usable(h, exclude) && h.inflight.Load() == min {
			if k == 0 {
				return h
			}
			k--
		}
	}
	return best
}
