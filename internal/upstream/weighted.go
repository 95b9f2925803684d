package upstream

import (
	"fmt"
	"sync/atomic"

	"github.com/pingap-go/pingap/internal/httpx"
)

// maxWeightedSeq bounds the precomputed sequence; larger weight sums are
// scaled down (keeping every weight >= 1).
const maxWeightedSeq = 1 << 14

// weighted is nginx's smooth weighted round robin made lock-free: the
// sequence nginx would produce (weights 5,1,1 give a,a,b,a,c,a,a; 3,1 give
// a,a,b,a) is computed once at build time, after dividing the weights by
// their gcd, and a shared atomic counter walks it. nginx's algorithm mutates
// per-peer "current weight" on every pick, which needs a lock.
//
// An entry whose host is down or excluded is consumed and the caller takes
// the next one, so over all callers the hosts handed out are exactly the
// sequence minus the unusable entries: the remaining hosts keep their weight
// ratio and their interleaving.
type weighted struct {
	hosts []*Host
	seq   []uint16 // host indexes
	_     pad
	next  atomic.Uint64
	_     pad
}

func newWeighted(hosts []*Host) (*weighted, error) {
	if len(hosts) > 1<<16 {
		return nil, fmt.Errorf("addrs: too many addrs (%d)", len(hosts))
	}
	w := make([]int, len(hosts))
	g, sum := 0, 0
	for i, h := range hosts {
		if h.Weight <= 0 {
			return nil, fmt.Errorf("weights: weight %d of %s must be >= 1", h.Weight, h.Addr)
		}
		w[i] = h.Weight
		g = gcd(g, h.Weight)
	}
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	if sum > maxWeightedSeq {
		// Scale to fit; rounding changes the ratio by less than one part in
		// maxWeightedSeq/len(hosts).
		s := 0
		for i := range w {
			w[i] = max(1, int(int64(w[i])*maxWeightedSeq/int64(sum)))
			s += w[i]
		}
		sum = s
	}
	return &weighted{hosts: hosts, seq: smoothSequence(w, sum)}, nil
}

// smoothSequence runs nginx's smooth weighted round robin for one full
// period (sum picks): each step every peer's current weight grows by its
// weight, the largest (the first on a tie) is picked and loses sum.
func smoothSequence(w []int, sum int) []uint16 {
	cur := make([]int, len(w))
	seq := make([]uint16, sum)
	for k := range seq {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		seq[k] = uint16(best)
	}
	return seq
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (s *weighted) Select(_ *httpx.Ctx, exclude *Host) *Host {
	L := uint64(len(s.seq))
	n := len(s.hosts)
	for miss := 0; miss < len(s.seq); miss++ {
		h := s.hosts[s.seq[(s.next.Add(1)-1)%L]]
		if usable(h, exclude) {
			return h
		}
		// After n misses in a row, make sure someone is usable at all, so
		// an all-down pool costs O(n) and not a walk of the whole sequence.
		if miss == n && scanFrom(s.hosts, 0, exclude) == nil {
			return nil
		}
	}
	return scanFrom(s.hosts, 0, exclude)
}
