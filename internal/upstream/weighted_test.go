package upstream

import (
	"strings"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
)

func TestWeightedSequence(t *testing.T) {
	tests := []struct {
		weights []int
		down    []int
		want    string // one letter per pick, hosts a, b, c...
	}{
		// nginx smooth WRR: never a long run of the heavy host.
		{[]int{3, 1}, nil, "aaba" + "aaba" + "aaba"},
		{[]int{5, 1, 1}, nil, "aabacaa" + "aabacaa"},
		{[]int{1, 1, 1}, nil, "abcabc"},
		{[]int{10, 1, 1}, nil, "aaaabaaacaaa"},
		{[]int{2, 1}, nil, "aba" + "aba"},
		{[]int{6, 2}, nil, "aaba" + "aaba"}, // reduced by gcd
		{[]int{1, 3}, nil, "babb" + "babb"},
		{[]int{5, 1, 1}, []int{1}, "aaacaa" + "aaacaa"}, // b's turns go to the next entry
		{[]int{5, 1, 1}, []int{0}, "bcbcbc"},
	}
	for _, tc := range tests {
		p := testPool(t, config.Upstream{Addrs: testAddrs(len(tc.weights)), Algorithm: WeightedRoundRobin, Weights: tc.weights})
		for _, i := range tc.down {
			p.Hosts[i].SetHealthy(false)
		}
		var b strings.Builder
		for range len(tc.want) {
			b.WriteByte(byte('a' + p.Select(nil, nil).Index))
		}
		if b.String() != tc.want {
			t.Errorf("weights %v down %v: %s, want %s", tc.weights, tc.down, b.String(), tc.want)
		}
	}
}

func TestWeightedDistribution(t *testing.T) {
	tests := []struct {
		weights []int
		down    []int
		n       int
		want    []int
	}{
		{[]int{3, 1}, nil, 4000, []int{3000, 1000}},
		{[]int{5, 3, 2}, nil, 1000, []int{500, 300, 200}},
		{[]int{5, 3, 2}, []int{0}, 1000, []int{0, 600, 400}},
		{[]int{100, 1}, []int{0}, 1000, []int{0, 1000}},
		// huge weights are scaled, ratio kept
		{[]int{300000, 100000}, nil, 4 * maxWeightedSeq, []int{3 * maxWeightedSeq, maxWeightedSeq}},
	}
	for _, tc := range tests {
		p := testPool(t, config.Upstream{Addrs: testAddrs(len(tc.weights)), Algorithm: WeightedRoundRobin, Weights: tc.weights})
		for _, i := range tc.down {
			p.Hosts[i].SetHealthy(false)
		}
		got := pick(p, nil, nil, tc.n)
		for i, h := range p.Hosts {
			if got[h.Addr] != tc.want[i] {
				t.Errorf("weights %v down %v: host %d got %d, want %d", tc.weights, tc.down, i, got[h.Addr], tc.want[i])
			}
		}
	}
}

func TestWeightedNoLongRuns(t *testing.T) {
	p := testPool(t, config.Upstream{Addrs: testAddrs(3), Algorithm: WeightedRoundRobin, Weights: []int{10, 1, 1}})
	run, last, maxRun := 0, -1, 0
	for range 120 {
		i := p.Select(nil, nil).Index
		if i == last {
			run++
		} else {
			run, last = 1, i
		}
		maxRun = max(maxRun, run)
	}
	// nginx's period for 10,1,1 is aaaabaaacaaa: at most 7 in a row
	// across periods, where a plain weighted rotation would give 10.
	if maxRun > 7 {
		t.Fatalf("longest run %d, want <= 7", maxRun)
	}
}
