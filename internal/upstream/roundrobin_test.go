package upstream

import (
	"testing"

	"github.com/pingap-go/pingap/internal/config"
)

func TestRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		n    int
		down []int
		want map[int]int // host index -> picks out of 600
	}{
		{"even over 3", 3, nil, map[int]int{0: 200, 1: 200, 2: 200}},
		{"even over 4", 4, nil, map[int]int{0: 150, 1: 150, 2: 150, 3: 150}},
		{"one down stays even", 3, []int{1}, map[int]int{0: 300, 2: 300}},
		{"two down", 4, []int{0, 2}, map[int]int{1: 300, 3: 300}},
		{"single", 1, nil, map[int]int{0: 600}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPool(t, config.Upstream{Addrs: testAddrs(tc.n), Algorithm: RoundRobin})
			for _, i := range tc.down {
				p.Hosts[i].SetHealthy(false)
			}
			got := pick(p, ctx(), nil, 600)
			for i, h := range p.Hosts {
				if got[h.Addr] != tc.want[i] {
					t.Errorf("host %d: %d picks, want %d (all: %v)", i, got[h.Addr], tc.want[i], got)
				}
			}
		})
	}
}

func TestRoundRobinOrder(t *testing.T) {
	p := testPool(t, config.Upstream{Addrs: testAddrs(3)})
	for i := range 9 {
		if h := p.Select(nil, nil); h.Index != i%3 {
			t.Fatalf("pick %d: host %d, want %d", i, h.Index, i%3)
		}
	}
}
