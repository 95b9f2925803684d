package upstream

import (
	"net/netip"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/plugin/plugintest"
)

// benchSelect measures one Select over 8 addrs (one of them down), serially
// and from all cores at once (the shared counters' contention).
func benchSelect(b *testing.B, cfg config.Upstream) {
	cfg.Addrs = testAddrs(8)
	if cfg.Algorithm == WeightedRoundRobin {
		cfg.Weights = []int{5, 1, 2, 1, 3, 1, 1, 2}
	}
	p := testPool(b, cfg)
	p.Hosts[3].SetHealthy(false)
	c := plugintest.NewCtx("GET", "/api/users/42?page=2", "X-User: alice", "Cookie: theme=dark; sid=abc123")
	c.ClientIP = netip.MustParseAddr("203.0.113.9")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if p.Select(c, nil) == nil {
				b.Fatal("nil")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if p.Select(c, nil) == nil {
					b.Fatal("nil")
				}
			}
		})
	})
}

func BenchmarkSelectRoundRobin(b *testing.B) { benchSelect(b, config.Upstream{Algorithm: RoundRobin}) }
func BenchmarkSelectWeighted(b *testing.B) {
	benchSelect(b, config.Upstream{Algorithm: WeightedRoundRobin})
}
func BenchmarkSelectLeastConn(b *testing.B) { benchSelect(b, config.Upstream{Algorithm: LeastConn}) }
func BenchmarkSelectIPHash(b *testing.B)    { benchSelect(b, config.Upstream{Algorithm: IPHash}) }
func BenchmarkSelectRandom(b *testing.B)    { benchSelect(b, config.Upstream{Algorithm: Random}) }
func BenchmarkSelectHashURI(b *testing.B) {
	benchSelect(b, config.Upstream{Algorithm: Hash, HashKey: "uri"})
}
func BenchmarkSelectHashHeader(b *testing.B) {
	benchSelect(b, config.Upstream{Algorithm: Hash, HashKey: "header:X-User"})
}
func BenchmarkSelectHashCookie(b *testing.B) {
	benchSelect(b, config.Upstream{Algorithm: Hash, HashKey: "cookie:sid"})
}
func BenchmarkSelectHashQuery(b *testing.B) {
	benchSelect(b, config.Upstream{Algorithm: Hash, HashKey: "query:page"})
}
