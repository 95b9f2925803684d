package upstream

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/pingap-go/pingap/internal/config"
)

func TestIPHash(t *testing.T) {
	p := testPool(t, config.Upstream{Addrs: testAddrs(4), Algorithm: IPHash})
	c := ctx()
	first := map[string]*Host{}
	count := map[*Host]int{}
	const clients = 4000
	for i := range clients {
		ip := fmt.Sprintf("192.168.%d.%d", i/256, i%256)
		c.ClientIP = netip.MustParseAddr(ip)
		h := p.Select(c, nil)
		first[ip] = h
		count[h]++
		for range 3 { // sticky
			if again := p.Select(c, nil); again != h {
				t.Fatalf("%s: %s then %s", ip, h.Addr, again.Addr)
			}
		}
	}
	for _, h := range p.Hosts {
		if n := count[h]; n < clients/4*7/10 || n > clients/4*13/10 {
			t.Errorf("host %s has %d of %d clients, want about %d", h.Addr, n, clients, clients/4)
		}
	}
	// One host down: only its clients move; they come back when it is up.
	down := p.Hosts[1]
	down.SetHealthy(false)
	for ip, h := range first {
		c.ClientIP = netip.MustParseAddr(ip)
		got := p.Select(c, nil)
		if h != down && got != h {
			t.Fatalf("%s moved from %s to %s though its host is up", ip, h.Addr, got.Addr)
		}
		if got == down {
			t.Fatalf("%s sent to a down host", ip)
		}
	}
	down.SetHealthy(true)
	for ip, h := range first {
		c.ClientIP = netip.MustParseAddr(ip)
		if got := p.Select(c, nil); got != h {
			t.Fatalf("%s: %s after recovery, want %s", ip, got.Addr, h.Addr)
		}
	}
	// IPv6 and the zero address do not panic.
	c.ClientIP = netip.MustParseAddr("::1")
	if p.Select(c, nil) == nil {
		t.Fatal("::1: nil")
	}
	c.ClientIP = netip.Addr{}
	if p.Select(c, nil) == nil {
		t.Fatal("zero addr: nil")
	}
	if p.Select(nil, nil) == nil {
		t.Fatal("nil ctx: nil")
	}
}
