package upstream

import (
	"sync/atomic"

	"github.com/pingap-go/pingap/internal/httpx"
)

// roundRobin hands out hosts in turn from one shared atomic counter. A host
// that is down or excluded is skipped: the request goes to the next usable
// host in index order, so the remaining hosts still share the load evenly.
type roundRobin struct {
	hosts []*Host
	_     pad
	next  atomic.Uint64
	_     pad
}

func newRoundRobin(hosts []*Host) *roundRobin { return &roundRobin{hosts: hosts} }

func (s *roundRobin) Select(_ *httpx.Ctx, exclude *Host) *Host {
	return scanFrom(s.hosts, int((s.next.Add(1)-1)%uint64(len(s.hosts))), exclude)
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
