package upstream

import (
	"fmt"
	"strings"

	"github.com/pingap-go/pingap/internal/config"
)

// Algorithm names accepted in [upstreams.NAME] algorithm.
const (
	RoundRobin         = "round_robin"
	WeightedRoundRobin = "weighted_round_robin"
	LeastConn          = "least_conn"
	IPHash             = "ip_hash"
	Random             = "random"
	Hash               = "hash"
)

// NewSelector builds the policy cfg.Algorithm names ("" = round_robin) over
// hosts. Errors name the offending key. hosts must not be changed afterwards.
func NewSelector(cfg config.Upstream, hosts []*Host) (Selector, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("addrs: no addr")
	}
	switch cfg.Algorithm {
	case "", RoundRobin:
		return newRoundRobin(hosts), nil
	case WeightedRoundRobin:
		return newWeighted(hosts)
	case LeastConn:
		return newLeastConn(hosts), nil
	case IPHash:
		return newIPHash(hosts), nil
	case Random:
		return newRandom(hosts), nil
	case Hash:
		return newHash(hosts, cfg.HashKey)
	}
	return nil, fmt.Errorf("algorithm: unknown %q (want %s)", cfg.Algorithm,
		strings.Join([]string{RoundRobin, WeightedRoundRobin, LeastConn, IPHash, Random, Hash}, ", "))
}

// pad keeps a hot atomic counter on its own cache line so that increments
// by many cores do not also invalidate the (read-only) hosts slice header.
type pad [64]byte
