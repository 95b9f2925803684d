package upstream

import (
	"sync/atomic"

	"github.com/pingap-go/pingap/internal/httpx"
)

// roundRobin hands out hosts in turn from one shared atomic counter.
type roundRobin struct {
	hosts []*Host
	_     pad
	next  atomic.Uint64
	_     pad
}

func newRoundRobin(hosts []*Host) *roundRobin { return &roundRobin{hosts: hosts} }

func (s *roundRobin) Select(_ *httpx.Ctx, exclude *Host) *Host {
	return rrPick(s.hosts, &s.next, exclude)
}

// rrPick takes the next host of the rotation. A down or excluded host's turn
// is consumed and the caller takes the following turn, so the hosts left
// share the load evenly (taking "the next host in index order" instead would
// give the host after a down one a double share). After n misses in a row,
// which concurrent callers can cause, a plain scan decides.
func rrPick(hosts []*Host, next *atomic.Uint64, exclude *Host) *Host {
	n := uint64(len(hosts))
	var first uint64
	for i := range hosts {
		k := next.Add(1) - 1
		if h := hosts[k%n]; usable(h, exclude) {
			return h
		}
		if i == 0 {
			first = k
		}
	}
	return scanFrom(hosts, int(first%n), exclude)
}

// scanFrom returns the first usable host at or after index i (wrapping).
func scanFrom(hosts []*Host, i int, exclude *Host) *Host {
	for range hosts {
		if h := hosts[i]; usable(h, exclude) {
			return h
		}
		if i++; i == len(hosts) {
			i = 0
		}
	}
	return nil
}
