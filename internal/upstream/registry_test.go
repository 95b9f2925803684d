package upstream

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/httpx"
)

type fakeTransport struct {
	addr   string
	closes atomic.Int32
}

func (f *fakeTransport) RoundTrip(context.Context, *httpx.OutRequest, *httpx.Response) (httpx.RoundTripResult, error) {
	return httpx.RoundTripResult{}, errors.New("fake")
}
func (f *fakeTransport) CloseIdle() { f.closes.Add(1) }

type fakeTransports struct{ made atomic.Int32 }

func (f *fakeTransports) new(cfg config.Upstream, addr string) (httpx.RoundTripper, error) {
	if addr == "bad:1" {
		return nil, errors.New("no transport")
	}
	f.made.Add(1)
	return &fakeTransport{addr: addr}, nil
}

func closes(h *HostState) int32 { return h.Transport.(*fakeTransport).closes.Load() }

func mustBuild(t *testing.T, r *Registry, name string, cfg config.Upstream) *Pool {
	t.Helper()
	p, err := r.Build(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRegistryReuseAndRetire(t *testing.T) {
	ft := &fakeTransports{}
	r := NewRegistry(ft.new, nil)
	cfg := config.Upstream{Addrs: []string{"a:1", "b:1", "c:1"}}
	p1 := mustBuild(t, r, "web", cfg)
	r.Commit([]*Pool{p1})
	if ft.made.Load() != 3 {
		t.Fatalf("made %d transports, want 3", ft.made.Load())
	}

	// Same settings: the same states, no new transport.
	cfg.Algorithm = LeastConn // not a transport setting
	p2 := mustBuild(t, r, "web", cfg)
	for i := range p1.Hosts {
		if p2.Hosts[i].HostState != p1.Hosts[i].HostState {
			t.Fatalf("addr %d: state not reused", i)
		}
	}
	r.Commit([]*Pool{p2})
	if ft.made.Load() != 3 {
		t.Fatal("transport rebuilt without a settings change")
	}

	// b removed, d added. Build alone changes nothing live.
	b := p2.Hosts[1].HostState
	b.Begin() // a request of the old snapshot is still running on b
	cfg.Addrs = []string{"a:1", "c:1", "d:1"}
	p3 := mustBuild(t, r, "web", cfg)
	if b.Retired() || closes(b) != 0 {
		t.Fatal("Build touched live state")
	}
	if p3.Hosts[0].HostState != p1.Hosts[0].HostState || p3.Hosts[1].HostState != p1.Hosts[2].HostState {
		t.Fatal("kept addrs not reused")
	}
	r.Commit([]*Pool{p3})
	if !b.Retired() || closes(b) != 1 {
		t.Fatalf("removed addr: retired %v closes %d", b.Retired(), closes(b))
	}
	// The old request finishes normally and closes what it returned.
	b.Done(false)
	if closes(b) != 2 || b.Requests() != 1 || b.Inflight() != 0 {
		t.Fatalf("after Done: closes %d requests %d inflight %d", closes(b), b.Requests(), b.Inflight())
	}
	if p3.Hosts[0].Retired() {
		t.Fatal("kept addr retired")
	}

	// Removing the whole upstream retires all of it.
	r.Commit(nil)
	for _, h := range p3.Hosts {
		if !h.Retired() {
			t.Fatalf("%s not retired", h.Addr)
		}
	}
}

func TestRegistryTransportChangeCarriesHealth(t *testing.T) {
	ft := &fakeTransports{}
	r := NewRegistry(ft.new, nil)
	cfg := config.Upstream{Addrs: []string{"a:1", "b:1"}, HealthCheck: "tcp://x"}
	p1 := mustBuild(t, r, "web", cfg)
	r.Commit([]*Pool{p1})
	p1.Hosts[0].SetHealthy(false)

	cfg.ConnectionTimeout = config.Duration(time.Second)
	p2 := mustBuild(t, r, "web", cfg)
	if p2.Hosts[0].HostState == p1.Hosts[0].HostState {
		t.Fatal("state reused across a transport settings change")
	}
	if p2.Hosts[0].Healthy() {
		t.Fatal("health not carried over at Build")
	}
	// Health changes between Build and Commit are carried too.
	p1.Hosts[0].SetHealthy(true)
	p1.Hosts[1].SetHealthy(false)
	r.Commit([]*Pool{p2})
	if !p2.Hosts[0].Healthy() || p2.Hosts[1].Healthy() {
		t.Fatalf("Commit: health %v %v, want true false", p2.Hosts[0].Healthy(), p2.Hosts[1].Healthy())
	}
	if !p1.Hosts[0].Retired() || closes(p1.Hosts[0].HostState) != 1 {
		t.Fatal("replaced state not retired")
	}
}

func TestRegistryDiscardAndErrors(t *testing.T) {
	ft := &fakeTransports{}
	r := NewRegistry(ft.new, nil)
	p1 := mustBuild(t, r, "web", config.Upstream{Addrs: []string{"a:1"}})
	r.Commit([]*Pool{p1})
	p2 := mustBuild(t, r, "web", config.Upstream{Addrs: []string{"a:1", "b:1"}})
	r.Discard([]*Pool{p2})
	if p1.Hosts[0].Retired() || !p2.Hosts[1].Retired() || closes(p2.Hosts[1].HostState) != 1 {
		t.Fatal("Discard must retire only states that are not live")
	}
	if _, err := r.Build("web", config.Upstream{Addrs: []string{"c:1", "bad:1"}}); err == nil || !contains(err.Error(), "bad:1") {
		t.Fatalf("transport error: %v", err)
	}
	if _, err := r.Build("web", config.Upstream{}); err == nil || !contains(err.Error(), "addrs") {
		t.Fatalf("no addrs: %v", err)
	}
	if _, err := r.Build("web", config.Upstream{Addrs: []string{"a:1"}, Algorithm: "nope"}); err == nil || !contains(err.Error(), "algorithm") {
		t.Fatalf("bad algorithm: %v", err)
	}
	// Repeated addrs share one state.
	p := mustBuild(t, r, "dup", config.Upstream{Addrs: []string{"a:1", "a:1"}})
	if p.Hosts[0].HostState != p.Hosts[1].HostState {
		t.Fatal("repeated addr: two states")
	}
}

func TestRegistryStatus(t *testing.T) {
	r := NewRegistry(nil, nil)
	pa := mustBuild(t, r, "b-api", config.Upstream{Addrs: []string{"a:1", "b:1"}, Algorithm: WeightedRoundRobin, Weights: []int{3, 1}})
	pw := mustBuild(t, r, "a-web", config.Upstream{Addrs: []string{"c:1"}})
	r.Commit([]*Pool{pa, pw})
	pa.Hosts[1].SetHealthy(false)
	pa.Hosts[0].Begin()
	pa.Hosts[0].Begin()
	pa.Hosts[0].Done(true)
	st := r.Status()
	if len(st) != 2 || st[0].Name != "a-web" || st[1].Name != "b-api" {
		t.Fatalf("status order: %+v", st)
	}
	if st[0].Algorithm != RoundRobin || st[1].Healthy != 1 {
		t.Fatalf("status: %+v", st)
	}
	want := AddrStatus{Addr: "a:1", Healthy: true, Weight: 3, Inflight: 1, Requests: 2, Failures: 1}
	if st[1].Addrs[0] != want || st[1].Addrs[1].Healthy {
		t.Fatalf("addrs: %+v", st[1].Addrs)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestPassiveHealth(t *testing.T) {
	r := NewRegistry(nil, nil)
	cfg := config.Upstream{Addrs: []string{"a:1", "b:1"}, UnhealthyThreshold: 2,
		HealthCheckInterval: config.Duration(20 * time.Millisecond)}
	p := mustBuild(t, r, "web", cfg)
	r.Commit([]*Pool{p})
	a := p.Hosts[0]

	a.ReportConnectFailure()
	a.ReportSuccess() // resets the streak
	a.ReportConnectFailure()
	if !a.Healthy() {
		t.Fatal("down before threshold consecutive failures")
	}
	a.ReportConnectFailure()
	if a.Healthy() {
		t.Fatal("not down after threshold consecutive failures")
	}
	if h := p.Select(nil, nil); h != p.Hosts[1] {
		t.Fatal("down addr selected")
	}
	// Back on probation after the cooldown; one failure downs it again.
	waitFor(t, 2*time.Second, "passive retry", a.Healthy)
	a.ReportConnectFailure()
	if a.Healthy() {
		t.Fatal("probation: one failure should mark down")
	}
	waitFor(t, 2*time.Second, "second passive retry", a.Healthy)
	a.ReportSuccess()
	a.ReportConnectFailure()
	if !a.Healthy() {
		t.Fatal("success should clear probation")
	}

	// With an active check, connect failures only count.
	cfg.HealthCheck = "tcp://x"
	p2 := mustBuild(t, r, "web", cfg)
	r.Commit([]*Pool{p2})
	for range 10 {
		p2.Hosts[1].ReportConnectFailure()
	}
	if !p2.Hosts[1].Healthy() {
		t.Fatal("passive marking with an active check")
	}
	// The active check marks down; removing the check brings the addr back.
	p2.Hosts[1].SetHealthy(false)
	cfg.HealthCheck = ""
	p3 := mustBuild(t, r, "web", cfg)
	r.Commit([]*Pool{p3})
	if !p3.Hosts[1].Healthy() {
		t.Fatal("addr stays down after its health check was removed")
	}
}
