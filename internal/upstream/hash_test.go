package upstream

import (
	"fmt"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

func TestHashKeyExtraction(t *testing.T) {
	tests := []struct {
		hashKey string
		target  string
		headers []string
		same    string // target producing the same key
		sameH   []string
		differ  bool // whether "same" must instead be a different key
		hasKey  bool
	}{
		{"uri", "/a?x=1", nil, "/a?x=1", nil, false, true},
		{"", "/a?x=1", nil, "/a?x=1", []string{"Cookie: z=1"}, false, true},
		{"uri", "/a?x=1", nil, "/a?x=2", nil, true, true},
		{"uri", "/a", nil, "/a?", nil, false, true},
		{"header:X-User", "/a", []string{"X-User: bob"}, "/b?q", []string{"x-user: bob"}, false, true},
		{"header:X-User", "/a", []string{"X-User: bob"}, "/a", []string{"X-User: ann"}, true, true},
		{"header:X-User", "/a", nil, "", nil, false, false},
		{"cookie:sid", "/a", []string{"Cookie: a=1; sid=abc; b=2"}, "/z", []string{"Cookie: x=9", "Cookie: sid=abc"}, false, true},
		{"cookie:sid", "/a", []string{"Cookie: sid=\"abc\""}, "/z", []string{"Cookie: sid=abc"}, false, true},
		{"cookie:sid", "/a", []string{"Cookie: a=1; sid=abc"}, "/a", []string{"Cookie: sid=abd"}, true, true},
		{"cookie:sid", "/a", []string{"Cookie: xsid=abc"}, "", nil, false, false},
		{"query:id", "/a?x=1&id=42", nil, "/b?id=42", nil, false, true},
		{"query:id", "/a?id=42", nil, "/a?id=43", nil, true, true},
		{"query:id", "/a?xid=42", nil, "", nil, false, false},
		{"query:id", "/a?id", nil, "/b?id=", nil, false, true},
	}
	for _, tc := range tests {
		p, err := newHash(hostsOf(3), tc.hashKey)
		if err != nil {
			t.Fatal(err)
		}
		k1, ok := p.key(plugintest.NewCtx("GET", tc.target, tc.headers...))
		if ok != tc.hasKey {
			t.Errorf("%s %s %v: hasKey %v, want %v", tc.hashKey, tc.target, tc.headers, ok, tc.hasKey)
			continue
		}
		if !ok {
			continue
		}
		k2, _ := p.key(plugintest.NewCtx("GET", tc.same, tc.sameH...))
		if (k1 != k2) != tc.differ {
			t.Errorf("%s: %s %v vs %s %v: keys equal=%v", tc.hashKey, tc.target, tc.headers, tc.same, tc.sameH, k1 == k2)
		}
	}
}

func hostsOf(n int) []*Host {
	hs := make([]*Host, n)
	for i, a := range testAddrs(n) {
		hs[i] = &Host{HostState: NewHostState("t", a, nil), Index: i, Weight: 1}
	}
	return hs
}

func TestHashSticky(t *testing.T) {
	p := testPool(t, config.Upstream{Addrs: testAddrs(3), Algorithm: Hash, HashKey: "header:X-User"})
	for i := range 100 {
		c := plugintest.NewCtx("GET", fmt.Sprintf("/p%d", i), fmt.Sprintf("X-User: u%d", i%10))
		h := p.Select(c, nil)
		for range 3 {
			if again := p.Select(c, nil); again != h {
				t.Fatalf("same key, %s then %s", h.Addr, again.Addr)
			}
		}
	}
	// No key: round robin.
	c := plugintest.NewCtx("GET", "/")
	got := pick(p, c, nil, 300)
	for _, h := range p.Hosts {
		if got[h.Addr] != 100 {
			t.Fatalf("keyless requests: %v, want 100 each", got)
		}
	}
}

// TestHashConsistent measures 10,000 keys: removing one addr (or it going
// down) moves only that addr's keys, and the keys spread evenly.
func TestHashConsistent(t *testing.T) {
	const keys = 10000
	addrs := testAddrs(5)
	full := testPool(t, config.Upstream{Addrs: addrs, Algorithm: Hash, HashKey: "uri"})
	removed := addrs[2]
	less := testPool(t, config.Upstream{Addrs: append(append([]string{}, addrs[:2]...), addrs[3:]...), Algorithm: Hash})

	c := plugintest.NewCtx("GET", "/")
	owner := make([]string, keys)
	share := map[string]int{}
	moved, movedTo := 0, map[string]int{}
	for i := range keys {
		c.Req.Path = fmt.Sprintf("/item/%d", i)
		a := full.Select(c, nil).Addr
		owner[i] = a
		share[a]++
		b := less.Select(c, nil).Addr
		if a != removed && a != b {
			t.Fatalf("key %d moved %s -> %s though %s stayed", i, a, b, a)
		}
		if a == removed {
			moved++
			movedTo[b]++
		}
	}
	for _, a := range addrs {
		if n := share[a]; n < keys/5*7/10 || n > keys/5*13/10 {
			t.Errorf("addr %s owns %d of %d keys, want about %d", a, n, keys, keys/5)
		}
	}
	if moved != share[removed] || len(movedTo) != 4 {
		t.Errorf("removed addr's %d keys went to %v, want spread over all 4 others", moved, movedTo)
	}
	// Down instead of removed: the same answer as the smaller ring.
	full.Hosts[2].SetHealthy(false)
	for i := range keys {
		c.Req.Path = fmt.Sprintf("/item/%d", i)
		if a, b := full.Select(c, nil).Addr, less.Select(c, nil).Addr; a != b {
			t.Fatalf("key %d: down ring %s, smaller ring %s", i, a, b)
		}
	}
}

// TestHashStable pins hash values: the ring must place keys the same way in
// every process and release, or proxies sharing a config would disagree.
func TestHashStable(t *testing.T) {
	if got := hashString("pingap"); got != 0x1170c29892e37dd2 {
		t.Fatalf("hashString(pingap) = %#x", got)
	}
	p := testPool(t, config.Upstream{Addrs: []string{"a:1", "b:1", "c:1"}, Algorithm: Hash})
	c := plugintest.NewCtx("GET", "/")
	var got []int
	for _, path := range []string{"/", "/x", "/y", "/z", "/users/1", "/users/2"} {
		c.Req.Path = path
		got = append(got, p.Select(c, nil).Index)
	}
	t.Logf("placement %v", got)
	want := fmt.Sprint(got)
	if want != pinnedPlacement {
		t.Fatalf("placement %v changed, want %s", got, pinnedPlacement)
	}
}

const pinnedPlacement = "[1 2 1 1 1 1]"
