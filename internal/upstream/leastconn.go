package upstream

import (
	"sync/atomic"

	"github.com/pingap-go/pingap/internal/httpx"
)

// leastConn picks the usable host with the fewest requests in flight
// (HostState.Inflight, shared across snapshots). The scan starts at a
// round-robin offset and only a strictly smaller count wins, so ties — the
// common case under light load — rotate over the tied hosts instead of
// always landing on the first one.
type leastConn struct {
	hosts []*Host
	_     pad
	next  atomic.Uint64
	_     pad
}

func newLeastConn(hosts []*Host) *leastConn { return &leastConn{hosts: hosts} }

func (s *leastConn) Select(_ *httpx.Ctx, exclude *Host) *Host {
	n := len(s.hosts)
	i := int((s.next.Add(1) - 1) % uint64(n))
	var best *Host
	var min int64
	for range n {
		h := s.hosts[i]
		if usable(h, exclude) {
			if v := h.inflight.Load(); best == nil || v < min {
				best, min = h, v
			}
		}
		if i++; i == n {
			i = 0
		}
	}
	return best
}
