package upstream

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

// Defaults of the [upstreams.NAME] keys this package reads, applied when
// the config leaves them zero.
const (
	DefaultHealthCheckInterval = 5 * time.Second
	DefaultHealthCheckTimeout  = 3 * time.Second
	DefaultHealthyThreshold    = 2
	DefaultUnhealthyThreshold  = 3
)

// transportKey is what a transport is built from. Two configs with equal
// keys can share one transport (and its pooled connections). The stamps of
// the PEM files make a reload pick up a renewed certificate under the same
// path.
type transportKey struct {
	ConnectionTimeout, ReadTimeout, IdleTimeout config.Duration
	MaxIdleConns                                int
	TLS, InsecureSkipVerify, HTTP2              bool
	SNI, TLSClientCert, TLSClientKey, TLSCA     string
	cert, key, ca                               fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) fileStamp {
	if path == "" {
		return fileStamp{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime(), fi.Size()}
}

func newTransportKey(c *config.Upstream) transportKey {
	return transportKey{
		ConnectionTimeout: c.ConnectionTimeout, ReadTimeout: c.ReadTimeout, IdleTimeout: c.IdleTimeout,
		MaxIdleConns: c.MaxIdleConns, TLS: c.TLS, InsecureSkipVerify: c.InsecureSkipVerify, HTTP2: c.HTTP2,
		SNI: c.SNI, TLSClientCert: c.TLSClientCert, TLSClientKey: c.TLSClientKey, TLSCA: c.TLSCA,
		cert: stamp(c.TLSClientCert), key: stamp(c.TLSClientKey), ca: stamp(c.TLSCA),
	}
}

type stateKey struct{ upstream, addr string }

// Registry keeps the live HostStates keyed by (upstream name, addr), so a
// reload keeps health, in-flight counts and pooled connections of the addrs
// that stay. A reload calls Build for every upstream of the new config (the
// live snapshot is not touched), swaps the snapshot in, then calls Commit
// with the new pools; an aborted reload may call Discard instead.
type Registry struct {
	newTransport func(cfg config.Upstream, addr string) (httpx.RoundTripper, error)
	logger       *slog.Logger

	mu    sync.Mutex
	live  map[stateKey]*HostState
	pools map[string]*Pool // committed
}

// NewRegistry returns an empty registry. newTransport makes the transport
// of one addr (nil: hosts get no transport, for tests); logger receives
// passive health transitions (nil: slog.Default()).
func NewRegistry(newTransport func(cfg config.Upstream, addr string) (httpx.RoundTripper, error), logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.Default()
	}
	return &Registry{newTransport: newTransport, logger: logger,
		live: map[stateKey]*HostState{}, pools: map[string]*Pool{}}
}

// Build compiles [upstreams.name] into a Pool for a new snapshot. An addr
// whose live state has the same transport settings reuses it; otherwise a
// new state with a new transport is made, starting with the health of the
// old one. Nothing the live snapshot uses is changed. Errors start with the
// key at fault ("algorithm: ..."); the caller names the section.
func (r *Registry) Build(name string, cfg config.Upstream) (*Pool, error) {
	if len(cfg.Addrs) == 0 {
		return nil, fmt.Errorf("addrs: no addr")
	}
	tk := newTransportKey(&cfg)
	r.mu.Lock()
	defer r.mu.Unlock()
	states := make([]*HostState, len(cfg.Addrs))
	var made []*HostState
	fail := func(err error) (*Pool, error) {
		for _, st := range made {
			if st.Transport != nil {
				st.Transport.CloseIdle()
			}
		}
		return nil, err
	}
	for i, addr := range cfg.Addrs {
		if j := slices.Index(cfg.Addrs[:i], addr); j >= 0 {
			states[i] = states[j] // a repeated addr shares its state
			continue
		}
		old := r.live[stateKey{name, addr}]
		if old != nil && old.tkey == tk {
			states[i] = old
			continue
		}
		st := &HostState{Upstream: name, Addr: addr, tkey: tk, log: r.logger}
		if r.newTransport != nil {
			t, err := r.newTransport(cfg, addr)
			if err != nil {
				return fail(fmt.Errorf("addrs: %s: %w", addr, err))
			}
			st.Transport = t
		}
		if old != nil {
			copyHealth(st, old)
		}
		made = append(made, st)
		states[i] = st
	}
	p, err := NewPool(name, cfg, states)
	if err != nil {
		return fail(err)
	}
	return p, nil
}

// copyHealth gives a replacement state the health of the state it replaces.
func copyHealth(dst, src *HostState) {
	dst.connFails.Store(src.connFails.Load())
	dst.passiveThreshold.Store(src.passiveThreshold.Load())
	dst.passiveCooldown.Store(src.passiveCooldown.Load())
	dst.downBy.Store(src.downBy.Load())
	dst.down.Store(src.down.Load())
}

// Commit makes pools the live set, after the snapshot holding them was
// swapped in. States no pool references any more are retired: their idle
// connections are closed. A request of the old snapshot still running on a
// retired state finishes normally (its Done closes what it returns to the
// pool). Commit also applies the passive-health settings of each pool.
func (r *Registry) Commit(pools []*Pool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := make(map[stateKey]*HostState, len(r.live))
	byName := make(map[string]*Pool, len(pools))
	for _, p := range pools {
		byName[p.Name] = p
		th, cool := int32(0), time.Duration(0)
		if p.Config.HealthCheck == "" {
			th = int32(cmp.Or(p.Config.UnhealthyThreshold, DefaultUnhealthyThreshold))
			cool = cmp.Or(p.Config.HealthCheckInterval.D(), DefaultHealthCheckInterval)
		}
		for _, h := range p.Hosts {
			st := h.HostState
			k := stateKey{p.Name, st.Addr}
			if old := r.live[k]; old != nil && old != st {
				copyHealth(st, old) // health may have changed since Build
				if st.downBy.Load() == downPassive {
					time.AfterFunc(time.Duration(st.passiveCooldown.Load()), st.passiveRetry)
				}
			}
			st.retired.Store(false) // live again (a pool built before an earlier Commit)
			st.passiveThreshold.Store(th)
			st.passiveCooldown.Store(int64(cool))
			if p.Config.HealthCheck == "" && st.downBy.Load() == downActive {
				// The check that marked it down is gone: no check means up.
				if st.SetHealthy(true) {
					r.logger.Info("upstream addr up", "upstream", p.Name, "addr", st.Addr, "reason", "health check removed")
				}
			}
			live[k] = st
		}
	}
	for k, st := range r.live {
		if live[k] != st {
			retire(st)
		}
	}
	r.live, r.pools = live, byName
}

func retire(st *HostState) {
	st.retired.Store(true)
	if st.Transport != nil {
		st.Transport.CloseIdle()
	}
}

// Discard releases the new states of pools that were built but will never
// be committed (a reload that failed after Build). States in the live set
// are left alone.
func (r *Registry) Discard(pools []*Pool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range pools {
		for _, h := range p.Hosts {
			if r.live[stateKey{p.Name, h.Addr}] != h.HostState && !h.retired.Load() {
				retire(h.HostState)
			}
		}
	}
}

// Pools returns the committed pools sorted by name.
func (r *Registry) Pools() []*Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Pool, 0, len(r.pools))
	for _, p := range r.pools {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Pool) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// AddrStatus is one addr in the admin API's GET /api/upstreams.
type AddrStatus struct {
	Addr     string `json:"addr"`
	Healthy  bool   `json:"healthy"`
	Weight   int    `json:"weight"`
	Inflight int64  `json:"inflight"`
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
}

// UpstreamStatus is one upstream in the admin API's GET /api/upstreams.
type UpstreamStatus struct {
	Name        string       `json:"name"`
	Algorithm   string       `json:"algorithm"`
	HealthCheck string       `json:"health_check,omitempty"`
	Healthy     int          `json:"healthy"`
	Addrs       []AddrStatus `json:"addrs"`
}

// Status reports every committed upstream (by name) and its addrs (in
// addrs order) with health, in-flight and counts.
func (r *Registry) Status() []UpstreamStatus {
	pools := r.Pools()
	out := make([]UpstreamStatus, 0, len(pools))
	for _, p := range pools {
		us := UpstreamStatus{Name: p.Name, Algorithm: cmp.Or(p.Config.Algorithm, RoundRobin),
			HealthCheck: p.Config.HealthCheck, Addrs: make([]AddrStatus, len(p.Hosts))}
		for i, h := range p.Hosts {
			up := h.Healthy()
			if up {
				us.Healthy++
			}
			us.Addrs[i] = AddrStatus{Addr: h.Addr, Healthy: up, Weight: h.Weight,
				Inflight: h.Inflight(), Requests: h.Requests(), Failures: h.Failures()}
		}
		out = append(out, us)
	}
	return out
}
