// Package upstream turns an [upstreams.NAME] section into a Pool: its addrs
// (Hosts), a selection policy (one file per policy) and a RoundTripper per
// addr. Live state (health, in-flight counts, pooled connections) lives in
// HostState values kept by a Registry outside the config snapshot, so a
// reload reuses them for addrs that still exist.
package upstream

import (
	"sync/atomic"

	"github.com/pingap-go/pingap/internal/httpx"
)

// HostState is the live state of one addr of one upstream. It outlives
// config snapshots: the Registry hands the same *HostState to every snapshot
// that has this (upstream, addr) pair with the same transport settings.
type HostState struct {
	Upstream string
	Addr     string

	healthy  atomic.Bool
	inflight atomic.Int64
	requests atomic.Uint64 // requests sent (probes excluded)
	failures atomic.Uint64

	// Transport sends requests to Addr.
	Transport httpx.RoundTripper
}

// Healthy reports whether the addr may receive traffic.
func (h *HostState) Healthy() bool { return h.healthy.Load() }

// SetHealthy records a health decision and reports whether it changed.
func (h *HostState) SetHealthy(v bool) (changed bool) { return h.healthy.Swap(v) != v }

// Inflight returns the number of requests in flight to the addr.
func (h *HostState) Inflight() int64 { return h.inflight.Load() }

// Requests returns the number of requests sent to the addr.
func (h *HostState) Requests() uint64 { return h.requests.Load() }

// Failures returns the number of failed round trips to the addr.
func (h *HostState) Failures() uint64 { return h.failures.Load() }

// Begin marks a request as sent to the addr; call Done when it ends.
func (h *HostState) Begin() { h.inflight.Add(1); h.requests.Add(1) }

// Done ends a request started with Begin; failed counts a transport error.
func (h *HostState) Done(failed bool) {
	h.inflight.Add(-1)
	if failed {
		h.failures.Add(1)
	}
}

// Host is one addr of a Pool as compiled in a snapshot.
type Host struct {
	*HostState
	Index  int
	Weight int
}

// Selector is a load-balancing policy. Select returns a healthy host other
// than exclude (nil: none), or nil when there is none. It must be safe for
// concurrent use, lock-free or nearly so, and allocate nothing.
type Selector interface {
	Select(c *httpx.Ctx, exclude *Host) *Host
}
