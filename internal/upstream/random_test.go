package upstream

import (
	"testing"

	"github.com/pingap-go/pingap/internal/config"
)

func TestRandomSpreads(t *testing.T) {
	tests := []struct {
		name string
		n    int
		down []int
	}{
		{"all up", 4, nil},
		{"one down", 4, []int{2}},
		{"two hosts", 2, nil},
	}
	const picks = 20000
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPool(t, config.Upstream{Addrs: testAddrs(tc.n), Algorithm: Random})
			for _, i := range tc.down {
				p.Hosts[i].SetHealthy(false)
			}
			got := pick(p, nil, nil, picks)
			up := tc.n - len(tc.down)
			for _, h := range p.Hosts {
				if !h.Healthy() {
					if got[h.Addr] != 0 {
						t.Errorf("down host %s picked %d times", h.Addr, got[h.Addr])
					}
					continue
				}
				// Equal in-flight: P2C keeps the first draw, uniform.
				exp := picks / up
				if d := got[h.Addr] - exp; d < -exp/5 || d > exp/5 {
					t.Errorf("host %s: %d picks, want %d +-20%% (%v)", h.Addr, got[h.Addr], exp, got)
				}
			}
		})
	}
}

// TestRandomPrefersLessLoaded: of two choices the less loaded wins, so a
// host with many in-flight requests gets only what falls on it twice... never
// when there are two hosts.
func TestRandomPrefersLessLoaded(t *testing.T) {
	p := testPool(t, config.Upstream{Addrs: testAddrs(2), Algorithm: Random})
	p.Hosts[0].inflight.Store(5)
	if got := pick(p, nil, nil, 1000); got[p.Hosts[1].Addr] != 1000 {
		t.Fatalf("want all picks on the idle host, got %v", got)
	}
	// With 4 hosts and one busy, the busy one is picked only when it is
	// drawn... never, because the second draw is always a different host.
	p = testPool(t, config.Upstream{Addrs: testAddrs(4), Algorithm: Random})
	p.Hosts[3].inflight.Store(1)
	if got := pick(p, nil, nil, 2000); got[p.Hosts[3].Addr] != 0 {
		t.Fatalf("busy host picked: %v", got)
	}
}
