package upstream

import (
	"testing"

	"github.com/pingap-go/pingap/internal/config"
)

func TestLeastConn(t *testing.T) {
	tests := []struct {
		name     string
		inflight []int64
		down     []int
		want     map[int]int // host index -> picks out of 600 (counts held fixed)
	}{
		{"picks least loaded", []int64{5, 1, 3}, nil, map[int]int{1: 600}},
		{"ties spread evenly", []int64{0, 0, 0}, nil, map[int]int{0: 200, 1: 200, 2: 200}},
		{"tie among two least", []int64{2, 1, 1, 4}, nil, map[int]int{1: 300, 2: 300}},
		{"least is down", []int64{5, 1, 3}, []int{1}, map[int]int{2: 600}},
		{"ties with one down", []int64{0, 0, 0}, []int{0}, map[int]int{1: 300, 2: 300}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPool(t, config.Upstream{Addrs: testAddrs(len(tc.inflight)), Algorithm: LeastConn})
			for i, n := range tc.inflight {
				p.Hosts[i].inflight.Store(n)
			}
			for _, i := range tc.down {
				p.Hosts[i].SetHealthy(false)
			}
			got := pick(p, nil, nil, 600)
			for i, h := range p.Hosts {
				if got[h.Addr] != tc.want[i] {
					t.Errorf("host %d: %d picks, want %d (all %v)", i, got[h.Addr], tc.want[i], got)
				}
			}
		})
	}
}

// TestLeastConnBalances holds every picked request open: the in-flight
// counts must stay level, the point of least_conn.
func TestLeastConnBalances(t *testing.T) {
	p := testPool(t, config.Upstream{Addrs: testAddrs(4), Algorithm: LeastConn})
	p.Hosts[0].inflight.Store(10) // a busy host gets nothing until the others catch up
	for range 30 {
		p.Select(nil, nil).Begin()
	}
	want := []int64{10, 10, 10, 10}
	for i, h := range p.Hosts {
		if h.Inflight() != want[i] {
			t.Fatalf("host %d inflight %d, want %d", i, h.Inflight(), want[i])
		}
	}
	// Finishing requests on host 2 makes it the target.
	for range 3 {
		p.Hosts[2].Done(false)
	}
	for range 3 {
		if h := p.Select(nil, nil); h.Index != 2 {
			t.Fatalf("got host %d, want 2", h.Index)
		} else {
			h.Begin()
		}
	}
}
