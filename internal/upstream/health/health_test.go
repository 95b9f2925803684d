package health

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/upstream"
)

// backend is a loopback HTTP server whose probe answer can be switched. It
// counts probes by answer and records what the last probe looked like.
type backend struct {
	srv    *httptest.Server
	status atomic.Int32
	delay  atomic.Int64 // time.Duration before answering
	ok     atomic.Int32 // probes answered 2xx/3xx
	bad    atomic.Int32 // probes answered otherwise
	mu     sync.Mutex
	host   string
	uri    string
	method string
	sni    string
}

func newBackend(t *testing.T, tlsOn bool) *backend {
	b := &backend{}
	b.status.Store(200)
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(b.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		b.mu.Lock()
		b.host, b.uri, b.method = r.Host, r.RequestURI, r.Method
		b.mu.Unlock()
		s := int(b.status.Load())
		if s < 400 {
			b.ok.Add(1)
		} else {
			b.bad.Add(1)
		}
		w.WriteHeader(s)
	}))
	if tlsOn {
		b.srv.TLS = &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			b.mu.Lock()
			b.sni = hi.ServerName
			b.mu.Unlock()
			return nil, nil
		}}
		b.srv.StartTLS()
	} else {
		b.srv.Start()
	}
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }
func (b *backend) probes() int  { return int(b.ok.Load() + b.bad.Load()) }

// events records onChange calls, with the backend's failing/passing probe
// counts at the moment of the transition.
type events struct {
	mu  sync.Mutex
	got []event
	b   *backend
}

type event struct {
	upstream, addr string
	healthy        bool
	ok, bad        int32
}

func (e *events) onChange(up, addr string, healthy bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev := event{upstream: up, addr: addr, healthy: healthy}
	if e.b != nil {
		ev.ok, ev.bad = e.b.ok.Load(), e.b.bad.Load()
	}
	e.got = append(e.got, ev)
}

func (e *events) list() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]event(nil), e.got...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func build(t *testing.T, r *upstream.Registry, name string, cfg config.Upstream) *upstream.Pool {
	t.Helper()
	p, err := r.Build(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ms(n int) config.Duration { return config.Duration(time.Duration(n) * time.Millisecond) }

func TestHTTPThresholds(t *testing.T) {
	b := newBackend(t, false)
	ev := &events{b: b}
	c := New(quietLogger(), ev.onChange)
	defer c.Stop()
	r := upstream.NewRegistry(nil, nil)
	p := build(t, r, "api", config.Upstream{Addrs: []string{b.addr()},
		HealthCheck: "http://api.internal:8080/healthz?full=1", HealthCheckInterval: ms(10),
		// A generous timeout: the exact-count assertions below need every
		// probe the backend counted to reach the checker as that result,
		// not as a client-side timeout on a loaded machine.
		HealthCheckTimeout: ms(5000), HealthyThreshold: 2, UnhealthyThreshold: 3})
	r.Commit([]*upstream.Pool{p})
	c.Sync([]*upstream.Pool{p})
	h := p.Hosts[0]

	waitFor(t, 5*time.Second, "first probes", func() bool { return b.probes() >= 3 })
	if !h.Healthy() || len(ev.list()) != 0 {
		t.Fatalf("healthy backend: healthy=%v events=%v", h.Healthy(), ev.list())
	}
	b.mu.Lock()
	if b.host != "api.internal:8080" || b.uri != "/healthz?full=1" || b.method != "GET" {
		t.Errorf("probe: host %q uri %q method %q", b.host, b.uri, b.method)
	}
	b.mu.Unlock()
	if h.Requests() != 0 {
		t.Errorf("probes counted as requests: %d", h.Requests())
	}

	b.status.Store(500)
	// The event is sent after the state flips: wait for the event.
	waitFor(t, 5*time.Second, "down", func() bool { return !h.Healthy() && len(ev.list()) >= 1 })
	e := ev.list()
	if len(e) != 1 || e[0].healthy || e[0].bad != 3 || e[0].upstream != "api" || e[0].addr != b.addr() {
		t.Fatalf("down transition: %+v, want exactly after 3 failures", e)
	}
	if p.Select(nil, nil) != nil {
		t.Fatal("down host selected")
	}

	okBefore := b.ok.Load()
	b.status.Store(302) // 3xx is healthy
	waitFor(t, 5*time.Second, "up", func() bool { return h.Healthy() && len(ev.list()) >= 2 })
	e = ev.list()
	if len(e) != 2 || !e[1].healthy || e[1].ok-okBefore != 2 {
		t.Fatalf("up transition: %+v, want exactly after 2 successes", e)
	}
}

func TestTimeoutAndSlowAddrDoesNotBlockOthers(t *testing.T) {
	slow, fast := newBackend(t, false), newBackend(t, false)
	slow.delay.Store(int64(10 * time.Second))
	c := New(quietLogger(), nil)
	defer c.Stop()
	r := upstream.NewRegistry(nil, nil)
	p := build(t, r, "api", config.Upstream{Addrs: []string{slow.addr(), fast.addr()},
		HealthCheck: "http://x/", HealthCheckInterval: ms(10), HealthCheckTimeout: ms(50),
		UnhealthyThreshold: 2, HealthyThreshold: 1})
	r.Commit([]*upstream.Pool{p})
	c.Sync([]*upstream.Pool{p})
	// While the slow addr's probes hang until their timeout, the fast one
	// keeps being probed on its own schedule.
	waitFor(t, 5*time.Second, "fast addr probed 10 times", func() bool { return fast.probes() >= 10 })
	waitFor(t, 5*time.Second, "slow addr down by timeout", func() bool { return !p.Hosts[0].Healthy() })
	if !p.Hosts[1].Healthy() {
		t.Fatal("fast addr down")
	}
	if slow.probes() != 0 {
		t.Fatalf("slow backend answered %d probes before the timeout", slow.probes())
	}
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var accepted atomic.Int32
	serve := func(ln net.Listener) {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}
	go serve(ln)
	ev := &events{}
	c := New(quietLogger(), ev.onChange)
	defer c.Stop()
	r := upstream.NewRegistry(nil, nil)
	p := build(t, r, "db", config.Upstream{Addrs: []string{addr}, HealthCheck: "tcp://db",
		HealthCheckInterval: ms(10), HealthCheckTimeout: ms(500), UnhealthyThreshold: 2, HealthyThreshold: 2})
	r.Commit([]*upstream.Pool{p})
	c.Sync([]*upstream.Pool{p})
	waitFor(t, 5*time.Second, "tcp probes", func() bool { return accepted.Load() >= 3 })
	if !p.Hosts[0].Healthy() {
		t.Fatal("listening addr down")
	}
	ln.Close()
	waitFor(t, 5*time.Second, "down after listener closed", func() bool { return !p.Hosts[0].Healthy() })

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	defer ln2.Close()
	go serve(ln2)
	waitFor(t, 5*time.Second, "up after listener back", p.Hosts[0].Healthy)
	e := ev.list()
	if len(e) != 2 || e[0].healthy || !e[1].healthy {
		t.Fatalf("events %+v", e)
	}
}

func TestSyncLifecycle(t *testing.T) {
	b1, b2 := newBackend(t, false), newBackend(t, false)
	ev := &events{b: b1}
	c := New(quietLogger(), ev.onChange)
	defer c.Stop()
	r := upstream.NewRegistry(nil, nil)
	cfg := config.Upstream{Addrs: []string{b1.addr()}, HealthCheck: "http://one/",
		HealthCheckInterval: ms(10), HealthCheckTimeout: ms(500), UnhealthyThreshold: 3}
	other := config.Upstream{Addrs: []string{b2.addr()}, HealthCheck: "http://two/",
		HealthCheckInterval: ms(10), HealthCheckTimeout: ms(500)}
	p1, q1 := build(t, r, "one", cfg), build(t, r, "two", other)
	r.Commit([]*upstream.Pool{p1, q1})
	c.Sync([]*upstream.Pool{p1, q1})

	// Two failures, then a reload with unchanged settings: the counters go
	// on, so the third failure (not a fresh three) marks the addr down.
	b1.status.Store(503)
	waitFor(t, 5*time.Second, "two failures", func() bool { return b1.bad.Load() >= 2 })
	cfg.Algorithm = upstream.LeastConn // not a check setting
	p2, q2 := build(t, r, "one", cfg), build(t, r, "two", other)
	r.Commit([]*upstream.Pool{p2, q2})
	c.Sync([]*upstream.Pool{p2, q2})
	waitFor(t, 5*time.Second, "down", func() bool { return !p2.Hosts[0].Healthy() && len(ev.list()) >= 1 })
	if e := ev.list(); len(e) != 1 || e[0].bad != 3 {
		t.Fatalf("counters reset by an unchanged Sync: %+v", e)
	}

	// Removing upstream "one": its probes stop once Sync returns, and its
	// neighbour's go on.
	q3 := build(t, r, "two", other)
	r.Commit([]*upstream.Pool{q3})
	c.Sync([]*upstream.Pool{q3})
	n1, n2 := b1.probes(), b2.probes()
	waitFor(t, 5*time.Second, "other upstream still probed", func() bool { return b2.probes() >= n2+5 })
	if got := b1.probes(); got != n1 {
		t.Fatalf("removed upstream still probed: %d -> %d", n1, got)
	}

	// An addr removed from a kept upstream stops being probed; one added
	// starts.
	b3 := newBackend(t, false)
	other.Addrs = []string{b3.addr()}
	q4 := build(t, r, "two", other)
	r.Commit([]*upstream.Pool{q4})
	c.Sync([]*upstream.Pool{q4})
	n2 = b2.probes()
	waitFor(t, 5*time.Second, "new addr probed", func() bool { return b3.probes() >= 5 })
	if got := b2.probes(); got != n2 {
		t.Fatalf("removed addr still probed: %d -> %d", n2, got)
	}

	// Dropping health_check stops the probes too.
	other.HealthCheck = ""
	q5 := build(t, r, "two", other)
	r.Commit([]*upstream.Pool{q5})
	c.Sync([]*upstream.Pool{q5})
	n3 := b3.probes()
	// A negative check needs some wait: 5 intervals with nothing arriving.
	time.Sleep(50 * time.Millisecond)
	if got := b3.probes(); got != n3 {
		t.Fatalf("probes after health_check removed: %d -> %d", n3, got)
	}

	c.Stop()
	c.Sync([]*upstream.Pool{p2}) // no-op after Stop
	n1 = b1.probes()
	time.Sleep(50 * time.Millisecond)
	if got := b1.probes(); got != n1 {
		t.Fatalf("probes after Stop: %d -> %d", n1, got)
	}
}

// TestSettingsChangeRestarts: a changed check setting restarts the check
// with fresh counters and keeps the addr's current health.
func TestSettingsChangeRestarts(t *testing.T) {
	b := newBackend(t, false)
	ev := &events{b: b}
	c := New(quietLogger(), ev.onChange)
	defer c.Stop()
	r := upstream.NewRegistry(nil, nil)
	cfg := config.Upstream{Addrs: []string{b.addr()}, HealthCheck: "http://x/a",
		HealthCheckInterval: ms(10), HealthCheckTimeout: ms(500), UnhealthyThreshold: 2}
	p := build(t, r, "u", cfg)
	r.Commit([]*upstream.Pool{p})
	c.Sync([]*upstream.Pool{p})
	b.status.Store(500)
	waitFor(t, 5*time.Second, "down", func() bool { return !p.Hosts[0].Healthy() })

	cfg.HealthCheck = "http://x/b"
	p2 := build(t, r, "u", cfg)
	r.Commit([]*upstream.Pool{p2})
	c.Sync([]*upstream.Pool{p2})
	if p2.Hosts[0].Healthy() {
		t.Fatal("restarted check reset health to up")
	}
	b.status.Store(200)
	waitFor(t, 5*time.Second, "up via new path", p2.Hosts[0].Healthy)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.uri != "/b" {
		t.Fatalf("probe path %q, want /b", b.uri)
	}
}

func TestHTTPSProbe(t *testing.T) {
	b := newBackend(t, true)
	// httptest's certificate is valid for example.com and 127.0.0.1.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cfg       config.Upstream
		wantUp    bool
		wantProbe bool
	}{
		{"verified with tls_ca", config.Upstream{HealthCheck: "https://example.com/health", TLSCA: caFile}, true, true},
		{"untrusted without tls_ca (no skip by default)", config.Upstream{HealthCheck: "https://example.com/health"}, false, false},
		{"wrong name with tls_ca", config.Upstream{HealthCheck: "https://other.test/health", TLSCA: caFile}, false, false},
		{"insecure_skip_verify", config.Upstream{HealthCheck: "https://other.test/health", InsecureSkipVerify: true}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := b.probes()
			cfg := tc.cfg
			cfg.Addrs = []string{b.addr()}
			cfg.HealthCheckInterval, cfg.HealthCheckTimeout = ms(10), ms(1000)
			cfg.UnhealthyThreshold, cfg.HealthyThreshold = 2, 1
			c := New(quietLogger(), nil)
			defer c.Stop()
			r := upstream.NewRegistry(nil, nil)
			p := build(t, r, "s", cfg)
			r.Commit([]*upstream.Pool{p})
			c.Sync([]*upstream.Pool{p})
			if tc.wantUp {
				waitFor(t, 5*time.Second, "probes answered", func() bool { return b.probes() >= before+3 })
				if !p.Hosts[0].Healthy() {
					t.Fatal("down")
				}
				b.mu.Lock()
				sni, host := b.sni, b.host
				b.mu.Unlock()
				want := "example.com"
				if cfg.InsecureSkipVerify {
					want = "other.test"
				}
				if sni != want || host != want {
					t.Fatalf("SNI %q Host %q, want %q", sni, host, want)
				}
			} else {
				waitFor(t, 5*time.Second, "down", func() bool { return !p.Hosts[0].Healthy() })
				if b.probes() != before {
					t.Fatal("request sent over an unverified connection")
				}
			}
		})
	}
}

func TestBadHealthCheckURL(t *testing.T) {
	c := New(quietLogger(), nil)
	defer c.Stop()
	r := upstream.NewRegistry(nil, nil)
	for _, hc := range []string{"ftp://x/", "://bad", "https://x/?" /* fine */} {
		p := build(t, r, "u", config.Upstream{Addrs: []string{"127.0.0.1:1"}, HealthCheck: hc,
			HealthCheckInterval: ms(10), HealthCheckTimeout: ms(100)})
		c.Sync([]*upstream.Pool{p}) // must not panic
	}
	if _, err := newProber(settings{url: "ftp://x/"}); err == nil {
		t.Fatal("ftp: want error")
	}
	if _, err := newProber(settings{url: "https://x/", tlsCA: "/nonexistent/ca.pem"}); err == nil {
		t.Fatal("missing tls_ca: want error")
	}
}
