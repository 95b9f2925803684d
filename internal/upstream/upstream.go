// Package upstream turns an [upstreams.NAME] section into a Pool: its addrs
// (Hosts), a selection policy (one file per policy) and a RoundTripper per
// addr. Live state (health, in-flight counts, pooled connections) lives in
// HostState values kept by a Registry outside the config snapshot, so a
// reload reuses them for addrs that still exist.
//
// Hot path contract: Pool.Select reads only immutable slices and atomics; it
// takes no lock and allocates nothing. Health is written rarely (active
// checks in package health, passive connect-failure reports from the proxy)
// and read on every selection.
//
// How the proxy uses a pool (one retry on another addr after a connect
// failure, per the contract):
//
//	h := pool.Select(c, nil) // nil: 503
//	h.Begin()
//	_, err := h.Transport.RoundTrip(ctx, req, &c.Resp)
//	if httpx.IsConnectError(err) {
//		h.ReportConnectFailure()
//		h.Done(true)
//		if h = pool.Select(c, h); h == nil { ... 502 }
//		h.Begin() // and RoundTrip again
//	}
//	if err == nil {
//		h.ReportSuccess()
//	}
//	... stream and release the body ...
//	h.Done(err != nil)
//
// Wiring on every (re)load: Registry.Build each upstream, swap the snapshot
// in, Registry.Commit(pools), then health.Checker.Sync(pools).
package upstream

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pingap-go/pingap/internal/httpx"
)

// Why an addr is down; kept so a reload that removes a health check can
// bring back an addr that only the (now gone) check had marked down.
const (
	downNone    uint32 = iota
	downActive         // an active health check said so
	downPassive        // too many consecutive connect failures
)

// HostState is the live state of one addr of one upstream. It outlives
// config snapshots: the Registry hands the same *HostState to every snapshot
// that has this (upstream, addr) pair with the same transport settings.
//
// The zero health is "up": an addr is healthy until its checks say otherwise.
type HostState struct {
	Upstream string
	Addr     string

	// Transport sends requests to Addr. It may be nil in tests.
	Transport httpx.RoundTripper

	down     atomic.Bool
	downBy   atomic.Uint32
	inflight atomic.Int64
	requests atomic.Uint64 // requests sent (probes excluded)
	failures atomic.Uint64

	// Passive health: consecutive connect failures. passiveThreshold 0
	// turns passive marking off (an active check owns the decision).
	connFails        atomic.Int32
	passiveThreshold atomic.Int32
	passiveCooldown  atomic.Int64 // time.Duration

	retired atomic.Bool

	tkey transportKey // settings the Transport was built from; immutable
	log  *slog.Logger
}

// NewHostState returns an up state for (upstream, addr) with transport t.
// The Registry is the usual constructor; this one serves tests and tools.
func NewHostState(upstream, addr string, t httpx.RoundTripper) *HostState {
	return &HostState{Upstream: upstream, Addr: addr, Transport: t}
}

// Healthy reports whether the addr may receive traffic.
func (h *HostState) Healthy() bool { return !h.down.Load() }

// SetHealthy records an active health check's decision and reports whether
// it changed. Marking up also clears the passive failure count.
func (h *HostState) SetHealthy(v bool) (changed bool) {
	if v {
		h.connFails.Store(0)
		changed = h.down.Swap(false)
		h.downBy.Store(downNone)
		return changed
	}
	changed = !h.down.Swap(true)
	h.downBy.Store(downActive)
	return changed
}

// Inflight returns the number of requests in flight to the addr.
func (h *HostState) Inflight() int64 { return h.inflight.Load() }

// Requests returns the number of requests sent to the addr.
func (h *HostState) Requests() uint64 { return h.requests.Load() }

// Failures returns the number of failed round trips to the addr.
func (h *HostState) Failures() uint64 { return h.failures.Load() }

// Retired reports whether the state is no longer used by the live snapshot.
// Requests of an older snapshot may still run on it; they simply finish.
func (h *HostState) Retired() bool { return h.retired.Load() }

// Begin marks a request as sent to the addr; call Done when it ends.
func (h *HostState) Begin() { h.inflight.Add(1); h.requests.Add(1) }

// Done ends a request started with Begin; failed counts a transport error.
// Call it after the response body was released, so that the last request on
// a retired state closes the connection it returned to the pool.
func (h *HostState) Done(failed bool) {
	n := h.inflight.Add(-1)
	if failed {
		h.failures.Add(1)
	}
	if n == 0 && h.retired.Load() && h.Transport != nil {
		h.Transport.CloseIdle()
	}
}

// ReportConnectFailure records that a connection to the addr could not be
// made (httpx.IsConnectError). Without an active health check, the addr is
// marked down after unhealthy_threshold consecutive failures; it gets
// traffic again after a cooldown (health_check_interval, default 5s), on
// probation: one more connect failure marks it down again. With an active
// check this only counts; the check decides.
func (h *HostState) ReportConnectFailure() {
	n := h.connFails.Add(1)
	th := h.passiveThreshold.Load()
	if th <= 0 || n < th || !h.down.CompareAndSwap(false, true) {
		return
	}
	h.downBy.Store(downPassive)
	cool := time.Duration(h.passiveCooldown.Load())
	if h.log != nil {
		h.log.Warn("upstream addr down", "upstream", h.Upstream, "addr", h.Addr,
			"reason", fmt.Sprintf("%d consecutive connect failures", n), "retry_in", cool.String())
	}
	time.AfterFunc(cool, h.passiveRetry)
}

// passiveRetry puts a passively downed addr back on probation.
func (h *HostState) passiveRetry() {
	if h.downBy.Load() != downPassive || h.retired.Load() {
		return
	}
	th := h.passiveThreshold.Load()
	if th <= 0 {
		th = 1
	}
	h.connFails.Store(th - 1)
	if h.down.CompareAndSwap(true, false) {
		h.downBy.Store(downNone)
		if h.log != nil {
			h.log.Info("upstream addr up", "upstream", h.Upstream, "addr", h.Addr, "reason", "passive retry")
		}
	}
}

// ReportSuccess records a round trip that reached the addr: it resets the
// consecutive connect failure count. It only writes when there is something
// to reset, so the common case touches no shared cache line.
func (h *HostState) ReportSuccess() {
	if h.connFails.Load() != 0 {
		h.connFails.Store(0)
	}
}

// Host is one addr of a Pool as compiled in a snapshot.
type Host struct {
	*HostState
	Index  int
	Weight int
	// Metrics, when the engine sets it after Build (a per-addr handle of
	// package metrics), receives the outcome of each round trip. It is per
	// snapshot, so setting it never touches the live snapshot.
	Metrics AddrObserver
}

// AddrObserver receives the outcome of each round trip to one addr
// (metrics.AddrMetrics implements it).
type AddrObserver interface {
	Done(d time.Duration, reused, failed bool)
}

// usable reports whether h may be picked: healthy and not the excluded one.
func usable(h, exclude *Host) bool { return h != exclude && !h.down.Load() }

// Selector is a load-balancing policy. Select returns a healthy host other
// than exclude (nil: none), or nil when there is none. It must be safe for
// concurrent use, lock-free or nearly so, and allocate nothing.
type Selector interface {
	Select(c *httpx.Ctx, exclude *Host) *Host
}
