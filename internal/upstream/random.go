package upstream

import (
	"math/rand/v2"

	"github.com/pingap-go/pingap/internal/httpx"
)

// random is "power of two choices": two distinct hosts are drawn at random
// and the one with fewer requests in flight wins (the first on a tie). It
// spreads load nearly as well as least_conn without a full scan or a shared
// counter. math/rand/v2's top-level source is per-thread: no lock.
type random struct {
	hosts []*Host
}

func newRandom(hosts []*Host) *random { return &random{hosts: hosts} }

func (s *random) Select(_ *httpx.Ctx, exclude *Host) *Host {
	n := uint64(len(s.hosts))
	r := rand.Uint64()
	i := int((r & 0xffffffff) * n >> 32)
	a := s.hosts[i]
	if n == 1 {
		if usable(a, exclude) {
			return a
		}
		return nil
	}
	j := int((r >> 32) * (n - 1) >> 32)
	if j >= i {
		j++
	}
	b := s.hosts[j]
	ua, ub := usable(a, exclude), usable(b, exclude)
	switch {
	case ua && ub:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case ua:
		return a
	case ub:
		return b
	}
	return scanFrom(s.hosts, i, exclude)
}
