package upstream

import (
	"github.com/pingap-go/pingap/internal/httpx"
)

// ipHash sends each client IP (c.ClientIP, after trusted-proxy handling) to
// the same addr. It uses the same consistent-hash ring as algorithm "hash",
// so an addr going down moves only its own clients, spread over the others,
// and they come back when it is up again. All 16 bytes of the address are
// hashed (nginx uses the first three IPv4 octets); an IPv4 client and its
// IPv4-mapped IPv6 form hash alike.
type ipHash struct {
	ring *ring
}

func newIPHash(hosts []*Host) *ipHash { return &ipHash{ring: newRing(hosts)} }

func (s *ipHash) Select(c *httpx.Ctx, exclude *Host) *Host {
	var b [16]byte
	if c != nil {
		b = c.ClientIP.As16()
	}
	return s.ring.get(hashBytes(b[:]), exclude)
}
