package upstream

import (
	"fmt"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

// Pool is one upstream as compiled into a config snapshot: its hosts (in
// addrs order) and their selection policy. A Pool is immutable; the live
// state it points to (HostState) is shared with other snapshots.
type Pool struct {
	Name   string
	Hosts  []*Host
	Config config.Upstream

	selector Selector
}

// NewPool compiles a pool over existing states, one per cfg.Addrs entry in
// order. The Registry is the usual constructor (it finds or makes the
// states); NewPool serves tests and the Registry itself. Errors start with
// the key at fault ("weights: ..."); the caller names the section.
func NewPool(name string, cfg config.Upstream, states []*HostState) (*Pool, error) {
	if len(states) != len(cfg.Addrs) {
		return nil, fmt.Errorf("addrs: %d states for %d addrs", len(states), len(cfg.Addrs))
	}
	if len(cfg.Weights) != 0 && len(cfg.Weights) != len(cfg.Addrs) {
		return nil, fmt.Errorf("weights: %d weights for %d addrs", len(cfg.Weights), len(cfg.Addrs))
	}
	hosts := make([]*Host, len(states))
	for i, st := range states {
		w := 1
		if len(cfg.Weights) != 0 {
			w = cfg.Weights[i]
		}
		hosts[i] = &Host{HostState: st, Index: i, Weight: w}
	}
	sel, err := NewSelector(cfg, hosts)
	if err != nil {
		return nil, err
	}
	return &Pool{Name: name, Hosts: hosts, Config: cfg, selector: sel}, nil
}

// Select returns a healthy host other than exclude, chosen by the pool's
// policy, or nil when there is none (the proxy answers 503). exclude is the
// host a failed connect went to, for the one retry on another addr.
func (p *Pool) Select(c *httpx.Ctx, exclude *Host) *Host {
	return p.selector.Select(c, exclude)
}

// HealthyCount returns how many hosts are up.
func (p *Pool) HealthyCount() int {
	n := 0
	for _, h := range p.Hosts {
		if h.Healthy() {
			n++
		}
	}
	return n
}
