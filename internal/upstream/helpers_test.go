package upstream

import (
	"fmt"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
	"github.com/pingap-go/pingap/internal/testutil/race"
)

// testAddrs returns n fake addrs a0..; nothing listens there: the policy
// tests never open a socket.
func testAddrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d:80", i+1)
	}
	return out
}

// testPool compiles a pool over fresh states.
func testPool(t testing.TB, cfg config.Upstream) *Pool {
	t.Helper()
	states := make([]*HostState, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		states[i] = NewHostState("test", a, nil)
	}
	p, err := NewPool("test", cfg, states)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pick runs n selections and counts picks per addr ("" = nil).
func pick(p *Pool, c *httpx.Ctx, exclude *Host, n int) map[string]int {
	m := map[string]int{}
	for range n {
		h := p.Select(c, exclude)
		if h == nil {
			m[""]++
			continue
		}
		m[h.Addr]++
	}
	return m
}

func ctx() *httpx.Ctx { return plugintest.NewCtx("GET", "/") }

// assertSkips checks, for any policy, that a down host and the excluded
// host are never picked and that nil comes back when nothing is usable.
func assertSkips(t *testing.T, cfg config.Upstream, c *httpx.Ctx) {
	t.Helper()
	p := testPool(t, cfg)
	p.Hosts[1].SetHealthy(false)
	got := pick(p, c, p.Hosts[0], 500)
	if got[p.Hosts[0].Addr] != 0 || got[p.Hosts[1].Addr] != 0 || got[""] != 0 {
		t.Fatalf("%s: down/excluded host picked or nil: %v", cfg.Algorithm, got)
	}
	for _, h := range p.Hosts {
		h.SetHealthy(false)
	}
	if h := p.Select(c, nil); h != nil {
		t.Fatalf("%s: all down, got %s", cfg.Algorithm, h.Addr)
	}
	if n := p.HealthyCount(); n != 0 {
		t.Fatalf("HealthyCount = %d", n)
	}
	p.Hosts[2].SetHealthy(true)
	if h := p.Select(c, nil); h != p.Hosts[2] {
		t.Fatalf("%s: only host 2 up, got %v", cfg.Algorithm, h)
	}
	if h := p.Select(c, p.Hosts[2]); h != nil {
		t.Fatalf("%s: only up host excluded, got %s", cfg.Algorithm, h.Addr)
	}
}

func TestAllPoliciesSkipDownAndExclude(t *testing.T) {
	for _, algo := range []string{"", RoundRobin, WeightedRoundRobin, LeastConn, IPHash, Random, Hash} {
		t.Run(algo, func(t *testing.T) {
			cfg := config.Upstream{Addrs: testAddrs(5), Algorithm: algo, Weights: []int{5, 1, 2, 1, 1}}
			assertSkips(t, cfg, ctx())
		})
	}
	// hash with a key source the request lacks falls back to round robin.
	assertSkips(t, config.Upstream{Addrs: testAddrs(5), Algorithm: Hash, HashKey: "header:X-Missing"}, ctx())
}

func TestNewSelectorErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  config.Upstream
		want string
	}{
		{config.Upstream{Addrs: testAddrs(2), Algorithm: "fastest"}, "algorithm"},
		{config.Upstream{Addrs: testAddrs(2), Algorithm: Hash, HashKey: "body"}, "hash_key"},
		{config.Upstream{Addrs: testAddrs(2), Algorithm: Hash, HashKey: "header:"}, "hash_key"},
		{config.Upstream{Addrs: testAddrs(2), Algorithm: WeightedRoundRobin, Weights: []int{1, 0}}, "weights"},
		{config.Upstream{Addrs: testAddrs(2), Algorithm: WeightedRoundRobin, Weights: []int{1}}, "weights"},
	} {
		states := []*HostState{NewHostState("u", "a", nil), NewHostState("u", "b", nil)}
		_, err := NewPool("u", tc.cfg, states)
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want mention of %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewSelector(config.Upstream{}, nil); err == nil {
		t.Error("no hosts: want error")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestSelectAllocatesNothing(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race (make unit)")
	}
	for _, cfg := range []config.Upstream{
		{Algorithm: RoundRobin}, {Algorithm: WeightedRoundRobin}, {Algorithm: LeastConn},
		{Algorithm: IPHash}, {Algorithm: Random}, {Algorithm: Hash, HashKey: "uri"},
		{Algorithm: Hash, HashKey: "header:X-User"}, {Algorithm: Hash, HashKey: "cookie:sid"},
		{Algorithm: Hash, HashKey: "query:page"},
	} {
		cfg.Addrs = testAddrs(4)
		p := testPool(t, cfg)
		p.Hosts[1].SetHealthy(false)
		c := plugintest.NewCtx("GET", "/a?page=2", "X-User: u", "Cookie: a=b; sid=x")
		if n := testing.AllocsPerRun(100, func() { p.Select(c, p.Hosts[0]) }); n != 0 {
			t.Errorf("%s %s: %v allocs per Select", cfg.Algorithm, cfg.HashKey, n)
		}
	}
}

// TestSelectConcurrentHealthFlaps: with host 0 always up, no policy may
// return nil while other hosts flap and many goroutines select at once.
func TestSelectConcurrentHealthFlaps(t *testing.T) {
	for _, algo := range []string{RoundRobin, WeightedRoundRobin, LeastConn, IPHash, Random, Hash} {
		p := testPool(t, config.Upstream{Addrs: testAddrs(4), Algorithm: algo, Weights: []int{1, 7, 3, 2}})
		stop := make(chan struct{})
		flapped := make(chan struct{})
		go func() {
			defer close(flapped)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p.Hosts[1+i%3].SetHealthy(i%2 == 0)
			}
		}()
		errs := make(chan string, 4)
		for range 4 {
			go func() {
				c := ctx()
				for i := range 2000 {
					c.Req.Path = testAddrs(1)[0] + string(rune('a'+i%26))
					h := p.Select(c, nil)
					if h == nil {
						errs <- algo + ": nil with host 0 up"
						return
					}
					h.Begin()
					h.Done(false)
				}
				errs <- ""
			}()
		}
		for range 4 {
			if e := <-errs; e != "" {
				t.Error(e)
			}
		}
		close(stop)
		<-flapped
	}
}
